"""Probe, decode, find speech, and cut recordings into chunks an engine accepts.

Why it is shaped this way:
- pydub decodes a whole file into memory (an hour of 44.1 kHz stereo is ~635 MB, peaking near 2 GB),
  so ffmpeg decodes straight to 16 kHz mono s16le (what Whisper uses anyway) and we read it through a
  pipe in blocks. Only the window being planned (about one chunk) is ever held, so memory does not
  grow with the recording's length.
- Speech is found by Silero VAD (speech.py), scored as the PCM streams past; cuts go in pauses near
  the target chunk length, at the pause's quietest point, and long stretches without speech are never
  uploaded: that saves money and removes what Whisper hallucinates on, even under fan noise or hum.
- Chunks are encoded from the decoded PCM (`_export`) by encoder threads of their own while the next
  ones are decoded and scored, so speech detection and encoding run side by side. One that still
  encodes over the upload cap is split again at its quietest point.
- Nothing here needs ffprobe: `ffmpeg -i` reports duration and streams on stderr.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is not on PATH; it only writes WAVs here, which needs none.
    warnings.simplefilter("ignore", RuntimeWarning)
    from pydub import AudioSegment

from .errors import AudioError, DecodeError, FFmpegMissing
from .models import AudioInfo, Chunk, Span
from .speech import (
    FRAME_SAMPLES,
    FRAMES_PER_S,
    SAMPLE_RATE,
    WARMUP_FRAMES,
    frame_dbfs,
    frame_speech_probs,
    quietest_frame,
    speech_spans,
    voiced_frames,
)

AUDIO_SUFFIXES = frozenset(
    {".m4a", ".mp3", ".wav", ".webm", ".mp4", ".mpeg", ".mpga", ".ogg", ".oga", ".flac", ".aac", ".opus"}
)
# Room for the multipart envelope and form fields (model, prompt, …) around the file part.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
_READ_BLOCK_S = 30


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def find_ffmpeg(explicit: str | None = None) -> str:
    """A system ffmpeg when present (usually newer, more codecs), else the imageio-ffmpeg one."""
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe: str = imageio_ffmpeg.get_ffmpeg_exe()
        return exe
    except (ImportError, RuntimeError) as e:
        raise FFmpegMissing() from e


_KNOWN_REASONS = (
    ("moov atom not found", "truncated or still being copied (moov atom not found)"),
    ("invalid data found", "not a readable audio file (invalid data)"),
    ("end of file", "truncated (unexpected end of file)"),
)


def _ffmpeg_reason(stderr: str) -> str:
    """ffmpeg's most telling complaint in plain words, without its `[in#0 @ 0x…]` prefixes or our path."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    for needle, plain in _KNOWN_REASONS:
        if any(needle in ln.lower() for ln in lines):
            return plain
    last = lines[-1] if lines else "ffmpeg failed"
    return last.split(": ", 1)[-1] if last.startswith("/") else last


def check_readable(path: Path) -> int:
    """The file's size, or AudioError saying in a word why it cannot be read."""
    if path.is_symlink() and not path.exists():
        try:
            path.stat()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise AudioError(path, f"symbolic link loop (to {os.readlink(path)})") from e
        raise AudioError(path, f"broken link (to {os.readlink(path)})")
    if not path.exists():
        raise AudioError(path, "no such file")
    if not path.is_file():
        raise AudioError(path, "not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise AudioError(
            path, "permission denied" if isinstance(e, PermissionError) else str(e.strerror)
        ) from e
    return path.stat().st_size


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)[^\n]*?(\d+) Hz(?:, ([\w.() ]+))?")
_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")


def _hms(m: re.Match[str]) -> float:
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def probe(path: Path, ffmpeg: str) -> AudioInfo:
    """Duration and stream facts from `ffmpeg -i`; a file with no audio stream is a DecodeError."""
    size = check_readable(path)
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    audio = _AUDIO.search(proc.stderr)
    if audio is None:
        if "Stream #" in proc.stderr:
            raise DecodeError(path, "no audio stream in file", stderr=proc.stderr)
        reason = _ffmpeg_reason(proc.stderr)
        if not reason.startswith(("truncated", "not a readable")):
            reason = f"not a readable audio file ({reason})"
        raise DecodeError(path, reason, stderr=proc.stderr)
    channels = {"mono": 1, "stereo": 2}.get((audio.group(3) or "").strip().split(" ")[0])
    dur = _DURATION.search(proc.stderr)
    duration_s = _hms(dur) if dur else _measure_duration(path, ffmpeg)
    return AudioInfo(
        path=path,
        duration_s=duration_s,
        size_bytes=size,
        sample_rate_hz=int(audio.group(2)),
        channels=channels,
        codec=audio.group(1),
    )


def _measure_duration(path: Path, ffmpeg: str) -> float:
    """For streams that carry no duration (recorder WebM): decode to nowhere and read the clock."""
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-vn", "-f", "null", "-"],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    times = list(_TIME.finditer(proc.stderr))
    if proc.returncode != 0 or not times:
        raise DecodeError(
            path, f"cannot measure duration ({_ffmpeg_reason(proc.stderr)})", stderr=proc.stderr
        )
    return _hms(times[-1])


def _widen_pipe(fd: int) -> None:
    """Let ffmpeg decode a whole read block ahead while the last one is scored: a Linux pipe holds
    64 KiB (2 s of 16 kHz PCM) unless asked for more, up to /proc/sys/fs/pipe-max-size (1 MiB by
    default, 32 s). Elsewhere, or where the system refuses, the pipe keeps its size."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setpipe, _READ_BLOCK_S * SAMPLE_RATE * 2 + 4096)


class PcmReader:
    """ffmpeg decoding one file to 16 kHz mono s16le, read block by block through a pipe."""

    def __init__(self, path: Path, ffmpeg: str) -> None:
        self.path = path
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE)]
        cmd += ["-f", "s16le", "-"]
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise FFmpegMissing() from e
        _widen_pipe(cast(io.BufferedReader, self._proc.stdout).fileno())

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` (int16) from the pipe without allocating; returns samples read (fewer at the end)."""
        stdout = cast(io.BufferedReader, self._proc.stdout)
        view = memoryview(cast(bytearray, out)).cast("B")
        got = 0
        while got < len(view):
            k = stdout.readinto(view[got:])
            if not k:
                break
            got += k
        return got // 2

    def close(self, *, check: bool = True) -> None:
        """Wait for ffmpeg; a failed decode (corrupt, truncated) becomes a DecodeError naming the file."""
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if not check:
            self._proc.kill()
        code = self._proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        if check and code != 0:
            raise DecodeError(self.path, f"cannot decode audio ({_ffmpeg_reason(err)})", stderr=err)


@dataclass(frozen=True)
class ChunkParams:
    """How to cut: lengths in seconds, the byte cap for one upload, and the file type to export."""

    target_s: float = 600.0
    max_s: float = 900.0
    min_silence_s: float = 0.5
    skip_silence_s: float = 5.0
    vad_threshold: float = 0.5
    # Frames louder than this count as speech whatever VAD says (None: VAD alone decides).
    energy_dbfs: float | None = None
    pad_s: float = 0.4
    max_bytes: int | None = None
    suffix: str = ".mp3"
    bitrate: str = "64k"


@dataclass(frozen=True)
class _Cut:
    start_frame: int
    end_frame: int
    spans: tuple[tuple[int, int], ...]


def _plan_one(db: np.ndarray, probs: np.ndarray, p: ChunkParams, eof: bool) -> _Cut | int | None:
    """Decide the next chunk in a window of frame loudness (`db`) and speech probability (`probs`).

    Returns a `_Cut`, or an int: frames at the window's start that hold no speech and can be
    dropped, or None when the window is too short to decide and more audio is needed.
    """
    fps = FRAMES_PER_S
    pad, max_f, target_f = int(p.pad_s * fps), int(p.max_s * fps), int(p.target_s * fps)
    lookahead = int((p.skip_silence_s + p.min_silence_s) * fps) + pad
    voiced = voiced_frames(probs, p.vad_threshold)
    if p.energy_dbfs is not None:
        voiced |= db > p.energy_dbfs
    spans = speech_spans(voiced, int(p.min_silence_s * fps))
    n = len(db)
    if not spans:
        return n if eof else max(0, n - lookahead)
    start = max(0, spans[0][0] - pad)
    if start > 0:
        return start
    # A full window decides; a shorter one only where it already shows the whole cut (the speech after
    # it has begun), so the first chunk goes out without waiting for `max_s` of audio to be scored.
    decided = eof or n >= max_f + lookahead
    taken: list[tuple[int, int]] = []
    end = None
    for s, e in spans:
        if taken and (s - taken[-1][1] > p.skip_silence_s * fps or taken[-1][1] >= target_f):
            decided = True
            break  # a long silence, or long enough already: cut in this gap
        if e + pad > max_f:
            if taken:
                decided = True
                break
            if not (decided or n >= max_f):
                return None
            # One stretch of speech longer than the cap: cut at its quietest 100 ms near the cap.
            end = quietest_frame(db, int(max_f * 0.75), min(max_f, n))
            taken.append((s, end))
            decided = True
            break
        taken.append((s, e))
    if not decided:
        return None
    if end is None:
        last_end = taken[-1][1]
        nxt = next((s for s, _ in spans if s >= last_end), n)
        # A short pause is cut at its quietest point; a long one keeps `pad` of it on each side.
        end = quietest_frame(db, last_end, nxt) if nxt - last_end <= 2 * pad else min(last_end + pad, n)
    return _Cut(start, end, tuple(taken))


def _codec_args(suffix: str, bitrate: str) -> list[str]:
    """ffmpeg's output options for a chunk of this type. MP3 uses LAME's fastest quality setting
    (`-q 7`): it halves the encoding, the largest CPU cost of preparing chunks, and kept the same
    markers and cues with no higher word error rate than LAME's default on the accuracy benchmark
    (see README)."""
    if suffix == ".wav":
        return ["-c:a", "pcm_s16le"]
    if suffix == ".mp3":
        return ["-b:a", bitrate, "-compression_level", "7"]
    return ["-b:a", bitrate]


def _export(pcm: np.ndarray, path: Path, p: ChunkParams, ffmpeg: str, path_for_errors: Path) -> int:
    """Write one chunk's samples as `p.suffix`: a WAV through pydub (no encoder needed), anything else
    by an ffmpeg process reading the samples from a pipe (no temporary WAV between us and it).

    Why a process per chunk and not PyAV in-process: the LAME inside PyAV's wheel measured 2.6x slower
    than ffmpeg's on the same 10 minutes, and a process costs some 15 ms to start. One streaming
    encoder cannot be cut where the speech detection decides afterwards without re-muxing MP3 frames.
    """
    fmt = p.suffix.lstrip(".")
    if fmt == "wav":
        segment = AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=SAMPLE_RATE, channels=1)
        segment.export(str(path), format="wav")
        return path.stat().st_size
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    cmd += ["-i", "pipe:0", *_codec_args(p.suffix, p.bitrate), str(path)]
    try:
        proc = subprocess.run(cmd, input=pcm.data.cast("B"), capture_output=True, check=False)
    except OSError as e:
        raise FFmpegMissing() from e
    if proc.returncode != 0:
        path.unlink(missing_ok=True)
        err = proc.stderr.decode("utf-8", "replace")
        raise AudioError(path_for_errors, f"cannot encode chunk as {fmt} ({_ffmpeg_reason(err)})", stderr=err)
    return path.stat().st_size


class Chunker:
    """Cuts one recording into chunks, streaming: call `chunks()` and consume them in order."""

    def __init__(self, path: Path, *, ffmpeg: str, workdir: Path, params: ChunkParams) -> None:
        self.path = path
        self.ffmpeg = ffmpeg
        self.workdir = workdir
        self.p = params
        self.decoded_s = 0.0  # audio decoded so far: less than the declared duration if truncated

    def chunks(self) -> Iterator[Chunk]:
        """The chunks, encoded for upload, in order. Chunks are encoded while the next ones are decoded
        and scored, by two encoders where there are two cores (MP3 encoding takes more CPU than speech
        detection), with at most one more encode pending, so neither waits on the other."""
        pending: deque[Future[list[Chunk]]] = deque()
        encoders = min(2, usable_cores())
        index = 0

        def numbered(done: Future[list[Chunk]]) -> Iterator[Chunk]:
            nonlocal index
            for chunk in done.result():  # a piece split for the byte cap gives more than one
                yield replace(chunk, index=index)
                index += 1

        with ThreadPoolExecutor(encoders, thread_name_prefix="wb-encode") as encoder:
            try:
                for n, (pcm, start_sample, speech) in enumerate(self._pieces()):
                    stem = f"chunk-{n:05d}"
                    pending.append(encoder.submit(self._emit, stem, pcm.copy(), start_sample, speech))
                    while pending and (len(pending) > encoders + 1 or pending[0].done()):
                        yield from numbered(pending.popleft())
                while pending:
                    yield from numbered(pending.popleft())
            finally:
                for fut in pending:
                    fut.cancel()

    def plan(self) -> Iterator[Span]:
        """Where the chunks would be, without encoding any: what a run would upload (for `estimate`)."""
        for pcm, start_sample, _ in self._pieces():
            yield Span(start_sample / SAMPLE_RATE, (start_sample + len(pcm)) / SAMPLE_RATE)

    def _pieces(self) -> Iterator[tuple[np.ndarray, int, tuple[Span, ...]]]:
        """Each chunk's samples (valid until the next one is asked for), first sample and speech."""
        reader = PcmReader(self.path, self.ffmpeg)
        ok = False
        try:
            yield from self._stream(reader)
            ok = True
        finally:
            reader.close(check=ok)

    def _stream(self, reader: PcmReader) -> Iterator[tuple[np.ndarray, int, tuple[Span, ...]]]:
        # One buffer for the whole file, sized for the largest window _plan_one can ask for: no
        # per-block reallocation, so the allocator sees one steady allocation instead of a growing
        # series of ~30 MB ones (which glibc keeps in its heap after raising its mmap threshold).
        p, fps, block = self.p, FRAMES_PER_S, _READ_BLOCK_S * SAMPLE_RATE
        lookahead = int((p.skip_silence_s + p.min_silence_s) * fps) + int(p.pad_s * fps)
        cap_frames = int(p.max_s * fps) + lookahead + block // FRAME_SAMPLES + 2
        buf = np.empty(cap_frames * FRAME_SAMPLES, dtype=np.int16)
        db = np.empty(cap_frames, dtype=np.float64)
        probs = np.empty(cap_frames, dtype=np.float32)
        n = nf = 0  # valid samples in buf, frames measured in db
        buf_start = 0  # absolute sample index of buf[0]
        eof = False
        while True:
            decision = _plan_one(db[:nf], probs[:nf], self.p, eof)
            if isinstance(decision, _Cut):
                a, b = decision.start_frame * FRAME_SAMPLES, decision.end_frame * FRAME_SAMPLES
                speech = tuple(
                    Span((s - decision.start_frame) / FRAMES_PER_S, (e - decision.start_frame) / FRAMES_PER_S)
                    for s, e in decision.spans
                )
                yield buf[a:b], buf_start + a, speech
                drop_frames = decision.end_frame
            elif decision:
                drop_frames = decision  # leading stretch with no speech: skipped, never uploaded
            elif eof:
                return
            else:
                got = reader.read_into(buf[n : n + block])
                self.decoded_s += got / SAMPLE_RATE
                eof = got < block
                n += got
                whole = n // FRAME_SAMPLES
                db[nf:whole] = frame_dbfs(buf[nf * FRAME_SAMPLES : whole * FRAME_SAMPLES])
                warm = min(nf, WARMUP_FRAMES)
                probs[nf:whole] = frame_speech_probs(buf[(nf - warm) * FRAME_SAMPLES : n], warm)
                nf = whole
                continue
            drop = drop_frames * FRAME_SAMPLES
            _shift(buf, drop, n)
            _shift(db, drop_frames, nf)
            _shift(probs, drop_frames, nf)
            n, nf, buf_start = n - drop, nf - drop_frames, buf_start + drop

    def _emit(self, stem: str, pcm: np.ndarray, start_sample: int, speech: tuple[Span, ...]) -> list[Chunk]:
        """Export one piece as `stem`; if it encodes over the byte cap, split it at its quietest point
        and export each half. The chunks' `index` is set by `chunks()`, which numbers them in order."""
        path = self.workdir / f"{stem}{self.p.suffix}"
        size = _export(pcm, path, self.p, self.ffmpeg, self.path)
        limit = None if self.p.max_bytes is None else self.p.max_bytes - UPLOAD_OVERHEAD_BYTES
        if limit is not None and size > limit:
            path.unlink()
            if len(pcm) < 2 * SAMPLE_RATE:
                raise AudioError(self.path, f"a 1-second chunk encodes to {size} bytes, over the upload cap")
            mid, left, right = _halves(pcm, speech)
            return [
                *self._emit(f"{stem}a", pcm[:mid], start_sample, left),
                *self._emit(f"{stem}b", pcm[mid:], start_sample + mid, right),
            ]
        chunk = Chunk(
            index=-1,
            offset_s=start_sample / SAMPLE_RATE,
            duration_s=len(pcm) / SAMPLE_RATE,
            path=path,
            size_bytes=size,
            speech=speech,
        )
        return [chunk]


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
    cmd += [*_codec_args(chunk.path.suffix, bitrate), str(path)]
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
    mid, left, right = _halves(pcm, chunk.speech)
    params = ChunkParams(suffix=chunk.path.suffix, bitrate=bitrate)
    parts = []
    for tag, start, samples, speech in (("a", 0, pcm[:mid], left), ("b", mid, pcm[mid:], right)):
        path = chunk.path.with_name(f"{chunk.path.stem}{tag}{chunk.path.suffix}")
        size = _export(samples, path, params, ffmpeg, chunk.path)
        parts.append(Chunk(chunk.index, start / SAMPLE_RATE, len(samples) / SAMPLE_RATE, path, size, speech))
    return parts[0], parts[1]


def _halves(pcm: np.ndarray, speech: tuple[Span, ...]) -> tuple[int, tuple[Span, ...], tuple[Span, ...]]:
    """Where a piece too large for one upload is cut in two, and each half's speech (relative to it)."""
    mid = _quietest_split(pcm)
    at_s = mid / SAMPLE_RATE
    left = tuple(Span(s.start_s, min(s.end_s, at_s)) for s in speech if s.start_s < at_s)
    right = tuple(Span(max(0.0, s.start_s - at_s), s.end_s - at_s) for s in speech if s.end_s > at_s)
    return mid, left, right


def _quietest_split(pcm: np.ndarray) -> int:
    """Sample index of the quietest 100 ms in the middle half, so a re-split lands in a pause if any."""
    db = frame_dbfs(pcm)
    return quietest_frame(db, len(db) // 4, 3 * len(db) // 4) * FRAME_SAMPLES


def _shift(arr: np.ndarray, by: int, used: int) -> None:
    """Move arr[by:used] to the front in place (memoryview assignment is a memmove: no temporary)."""
    if by and used > by:
        mv = memoryview(cast(bytearray, arr))
        mv[: used - by] = mv[by:used]
