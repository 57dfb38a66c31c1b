"""One recording streamed into chunks: decoded, planned and encoded side by side.

Chunks are encoded from the decoded PCM by encoder threads of their own while the next ones are
decoded and scored, so speech detection and encoding run side by side. One that still encodes over the
upload cap is split again at its quietest point.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np

from ..errors import AudioError
from ..models import Chunk, Span
from ..speech import FRAME_SAMPLES, FRAMES_PER_S, SAMPLE_RATE, WARMUP_FRAMES, frame_dbfs, frame_speech_probs
from .decode import READ_BLOCK_S, PcmReader
from .encode import UPLOAD_OVERHEAD_BYTES, export
from .ffmpeg import usable_cores
from .plan import ChunkParams, Cut, halves, plan_one


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
        # One buffer for the whole file, sized for the largest window plan_one can ask for: no
        # per-block reallocation, so the allocator sees one steady allocation instead of a growing
        # series of ~30 MB ones (which glibc keeps in its heap after raising its mmap threshold).
        p, fps, block = self.p, FRAMES_PER_S, READ_BLOCK_S * SAMPLE_RATE
        lookahead = int((p.skip_silence_s + p.min_silence_s) * fps) + int(p.pad_s * fps)
        cap_frames = int(p.max_s * fps) + lookahead + block // FRAME_SAMPLES + 2
        buf = np.empty(cap_frames * FRAME_SAMPLES, dtype=np.int16)
        db = np.empty(cap_frames, dtype=np.float64)
        probs = np.empty(cap_frames, dtype=np.float32)
        n = nf = 0  # valid samples in buf, frames measured in db
        buf_start = 0  # absolute sample index of buf[0]
        eof = False
        while True:
            decision = plan_one(db[:nf], probs[:nf], self.p, eof)
            if isinstance(decision, Cut):
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
        size = export(pcm, path, self.p, self.ffmpeg, self.path)
        limit = None if self.p.max_bytes is None else self.p.max_bytes - UPLOAD_OVERHEAD_BYTES
        if limit is not None and size > limit:
            path.unlink()
            if len(pcm) < 2 * SAMPLE_RATE:
                raise AudioError(self.path, f"a 1-second chunk encodes to {size} bytes, over the upload cap")
            mid, left, right = halves(pcm, speech)
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


def _shift(arr: np.ndarray, by: int, used: int) -> None:
    """Move arr[by:used] to the front in place (memoryview assignment is a memmove: no temporary)."""
    if by and used > by:
        mv = memoryview(cast(bytearray, arr))
        mv[: used - by] = mv[by:used]
