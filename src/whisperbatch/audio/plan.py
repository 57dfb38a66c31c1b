"""Where chunks are cut, decided on frame loudness and speech probability alone.

Speech is found by Silero VAD (speech.py), scored as the PCM streams past; cuts go in pauses near the
target chunk length, at the pause's quietest point, and long stretches without speech are never
uploaded: that saves money and removes what Whisper hallucinates on, even under fan noise or hum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import Span
from ..speech import (
    FRAME_SAMPLES,
    FRAMES_PER_S,
    SAMPLE_RATE,
    frame_dbfs,
    quietest_frame,
    speech_spans,
    voiced_frames,
)


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
class Cut:
    start_frame: int
    end_frame: int
    spans: tuple[tuple[int, int], ...]


def plan_one(db: np.ndarray, probs: np.ndarray, p: ChunkParams, eof: bool) -> Cut | int | None:
    """Decide the next chunk in a window of frame loudness (`db`) and speech probability (`probs`).

    Returns a `Cut`, or an int: frames at the window's start that hold no speech and can be
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
    return Cut(start, end, tuple(taken))


def halves(pcm: np.ndarray, speech: tuple[Span, ...]) -> tuple[int, tuple[Span, ...], tuple[Span, ...]]:
    """Where a piece too large for one upload is cut in two, and each half's speech (relative to it)."""
    mid = quietest_split(pcm)
    at_s = mid / SAMPLE_RATE
    left = tuple(Span(s.start_s, min(s.end_s, at_s)) for s in speech if s.start_s < at_s)
    right = tuple(Span(max(0.0, s.start_s - at_s), s.end_s - at_s) for s in speech if s.end_s > at_s)
    return mid, left, right


def quietest_split(pcm: np.ndarray) -> int:
    """Sample index of the quietest 100 ms in the middle half, so a re-split lands in a pause if any."""
    db = frame_dbfs(pcm)
    return quietest_frame(db, len(db) // 4, 3 * len(db) // 4) * FRAME_SAMPLES
