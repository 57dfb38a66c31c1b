"""Chunks encoded from decoded PCM for upload, and encoded chunks cut again for a second request."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is not on PATH; it only writes WAVs here, which needs none.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from ..errors import AudioError, FFmpegMissing
from ..models import Chunk, Span
from ..speech import SAMPLE_RATE
from .decode import PcmReader
from .ffmpeg import ffmpeg_reason
from .plan import ChunkParams, halves

# Room for the multipart envelope and form fields (model, prompt, …) around the file part.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


def codec_args(suffix: str, bitrate: str) -> list[str]:
    """ffmpeg's output options for a chunk of this type. MP3 uses LAME's fastest quality setting
    (`-q 7`): encoding is the largest CPU cost of preparing chunks, and at 64 kbps mono the fastest
    setting loses nothing a transcription model hears (bench/accuracy.py compares it with the default)."""
    if suffix == ".wav":
        return ["-c:a", "pcm_s16le"]
    if suffix == ".mp3":
        return ["-b:a", bitrate, "-compression_level", "7"]
    return ["-b:a", bitrate]


def export(pcm: np.ndarray, path: Path, p: ChunkParams, ffmpeg: str, path_for_errors: Path) -> int:
    """Write one chunk's samples as `p.suffix`: a WAV through pydub (no encoder needed), anything else
    by an ffmpeg process reading the samples from a pipe (no temporary WAV between us and it).

    Why a process per chunk and not PyAV in-process: the LAME inside PyAV's wheel is much slower than
    ffmpeg's, and starting a process is cheap next to encoding a chunk. One streaming
    encoder cannot be cut where the speech detection decides afterwards without re-muxing MP3 frames.
    """
    fmt = p.suffix.lstrip(".")
    if fmt == "wav":
        segment = AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=SAMPLE_RATE, channels=1)
        segment.export(str(path), format="wav")
        return path.stat().st_size
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    cmd += ["-i", "pipe:0", *codec_args(p.suffix, p.bitrate), str(path)]
    try:
        proc = subprocess.run(cmd, input=pcm.data.cast("B"), capture_output=True, check=False)
    except OSError as e:
        raise FFmpegMissing() from e
    if proc.returncode != 0:
        path.unlink(missing_ok=True)
        err = proc.stderr.decode("utf-8", "replace")
        raise AudioError(path_for_errors, f"cannot encode chunk as {fmt} ({ffmpeg_reason(err)})", stderr=err)
    return path.stat().st_size


def cut_chunk(chunk: Chunk, span: Span, *, ffmpeg: str, bitrate: str = "64k") -> Chunk:
    """A stretch of an encoded chunk as a chunk of its own, to ask about that stretch alone.

    The new chunk's `offset_s` is relative to `chunk` (the caller shifts its segments by it), and its
    speech is the whole stretch.
    """
    start = max(0.0, span.start_s)
    duration = min(chunk.duration_s, span.end_s) - start
    path = chunk.path.with_name(f"{chunk.path.stem}-at{round(start * 1000)}{chunk.path.suffix}")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-ss", f"{start:.3f}", "-t", f"{duration:.3f}"]
    cmd += ["-i", str(chunk.path), "-ac", "1", "-ar", str(SAMPLE_RATE)]
    cmd += [*codec_args(chunk.path.suffix, bitrate), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        raise AudioError(chunk.path, f"cannot cut {start:.1f}-{start + duration:.1f} s", stderr=proc.stderr)
    return Chunk(
        index=chunk.index,
        offset_s=start,
        duration_s=duration,
        path=path,
        size_bytes=path.stat().st_size,
        speech=(Span(0.0, duration),),
    )


def halve(chunk: Chunk, *, ffmpeg: str, bitrate: str = "64k") -> tuple[Chunk, Chunk]:
    """An encoded chunk that a server refused as too large (its cap lower than the one cut for), as two
    chunks cut where `Chunker` cuts a piece over the cap. As with `cut_chunk`, their `offset_s` is
    relative to `chunk`. Raises AudioError when the chunk is too short to be cut."""
    reader = PcmReader(chunk.path, ffmpeg)
    pcm = np.empty(int((chunk.duration_s + 1.0) * SAMPLE_RATE), dtype=np.int16)  # room for codec padding
    try:
        pcm = pcm[: reader.read_into(pcm)]
    finally:
        reader.close()
    if len(pcm) < 2 * SAMPLE_RATE:
        raise AudioError(
            chunk.path, f"{chunk.size_bytes} bytes for {len(pcm) / SAMPLE_RATE:.1f} s: too short to cut"
        )
    mid, left, right = halves(pcm, chunk.speech)
    params = ChunkParams(suffix=chunk.path.suffix, bitrate=bitrate)
    parts = []
    for tag, start, samples, speech in (("a", 0, pcm[:mid], left), ("b", mid, pcm[mid:], right)):
        path = chunk.path.with_name(f"{chunk.path.stem}{tag}{chunk.path.suffix}")
        size = export(samples, path, params, ffmpeg, chunk.path)
        parts.append(Chunk(chunk.index, start / SAMPLE_RATE, len(samples) / SAMPLE_RATE, path, size, speech))
    return parts[0], parts[1]
