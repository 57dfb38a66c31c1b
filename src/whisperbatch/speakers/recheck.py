"""Short turns heard again on their own.

Inside one 10-s window the segmentation model sometimes takes two voices for one local speaker: a
one-second reply between two turns of another voice then gets that voice's label, and no embedding of
the window can tell, since the reply's frames were never apart. Once the turns are known, each short
turn standing alone (no other voice over it) is embedded from its own audio and moved to the voice it
clearly sounds like. Long turns are left as they are: their label rests on many excerpts already.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..audio.decode import PcmReader
from ..errors import Stopped
from .embed import QUANTUM, embed
from .fbank import SAMPLE_RATE_HZ

SHORT_S = (1.0, 4.0)  # turns this long are heard again
MARGIN = 0.15  # how much more alike another voice must be to take the turn
READ_SAMPLES = 60 * SAMPLE_RATE_HZ
PENDING = 16

Turn = tuple[float, float, int]  # start_s, end_s, voice


@dataclass(frozen=True)
class _TurnAudio:
    index: int  # of the turn
    samples: npt.NDArray[np.float32]


def recheck(
    path: Path,
    ffmpeg: str,
    turns: list[Turn],
    voices: npt.NDArray[np.float32],
    models: str | None,
    stop: threading.Event,
) -> list[Turn]:
    """`turns` with each short lone turn given the voice its own audio is clearly nearest."""
    wanted = [
        i
        for i in range(len(turns))
        if _alone(turns, i) and SHORT_S[0] <= turns[i][1] - turns[i][0] <= SHORT_S[1]
    ]
    if not wanted or len(voices) < 2:
        return turns
    out = list(turns)
    batch: list[_TurnAudio] = []
    for heard in _cut(path, ffmpeg, [(i, turns[i][0], turns[i][1]) for i in wanted], stop):
        batch.append(heard)
        if len(batch) == PENDING:
            _move(out, batch, voices, models)
            batch = []
    _move(out, batch, voices, models)
    return out


def _alone(turns: list[Turn], i: int) -> bool:
    a, b, _ = turns[i]
    return not any(
        j != i and min(b, t[1]) - max(a, t[0]) > 0.1
        for j, t in enumerate(turns[max(0, i - 3) : i + 4], max(0, i - 3))
    )


def _cut(
    path: Path, ffmpeg: str, spans: list[tuple[int, float, float]], stop: threading.Event
) -> Iterator[_TurnAudio]:
    """Each span's samples, the middle whole half seconds of it, decoding the recording once, in order."""
    reader = PcmReader(path, ffmpeg)
    ok = False
    try:
        block = np.empty(READ_SAMPLES, dtype=np.int16)
        buffered = np.zeros(0, dtype=np.float32)
        base = 0
        done = False
        for index, start_s, end_s in sorted(spans, key=lambda s: s[1]):
            a, b = round(start_s * SAMPLE_RATE_HZ), round(end_s * SAMPLE_RATE_HZ)
            keep = (b - a) // QUANTUM * QUANTUM
            a, b = a + (b - a - keep) // 2, a + (b - a - keep) // 2 + keep
            while True:
                cut = min(max(0, a - base), len(buffered))  # nothing before this span is needed again
                buffered, base = buffered[cut:], base + cut
                if done or base + len(buffered) >= b:
                    break
                if stop.is_set():
                    raise Stopped(f"{path}: stopped while labelling speakers")
                got = reader.read_into(block)
                done = got < len(block)
                buffered = np.concatenate([buffered, block[:got].astype(np.float32) / 32768.0])
            if base <= a and b <= base + len(buffered) and keep > 0:
                yield _TurnAudio(index, buffered[a - base : b - base].copy())
        ok = done  # read to its end: a failed decode says so; else ffmpeg is stopped before its end
    finally:
        reader.close(check=ok)


def _move(
    turns: list[Turn], batch: list[_TurnAudio], voices: npt.NDArray[np.float32], models: str | None
) -> None:
    if not batch:
        return
    similarity = embed([h.samples for h in batch], models) @ voices.T
    for heard, row in zip(batch, similarity, strict=True):
        start, end, voice = turns[heard.index]
        best = int(np.argmax(row))
        if best != voice and row[best] - row[voice] >= MARGIN:
            turns[heard.index] = (start, end, best)
