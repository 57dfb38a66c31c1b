"""Where speech is: Silero VAD decides what is speech, energy decides where exactly to cut.

Why it is shaped this way:
- An energy threshold cannot tell a voice from fan noise, hum or traffic under it, and a fixed one
  throws away a quiet speaker. Silero VAD (the ONNX model shipped inside faster-whisper, so it works
  offline) can, does not care how loud the speaker is, and is cheap enough to score every
  frame.
- faster-whisper's `get_speech_timestamps` wants the whole recording as one float array; the chunker
  streams (memory stays flat for hours of audio), so the model is run block by block here, each block
  primed with a second of the audio before it, and Silero's hysteresis (start at `threshold`, end
  below `threshold - 0.15`, as `get_speech_timestamps` does) is applied over the streaming window.
- Silero scores 32 ms windows; scores are spread onto 10 ms frames so the chunker keeps one unit.
- Energy still picks the cut point inside a pause (the quietest 100 ms), so a cut never falls inside a
  word even where VAD's edges are a little early or late.
- `uncovered` checks an engine's answer against the speech found here: speech that no word or
  segment covers is the symptom of a model that skipped words, and is asked again, then reported.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .models import Segment, Span

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 160  # 10 ms at 16 kHz
FRAMES_PER_S = SAMPLE_RATE // FRAME_SAMPLES
VAD_WINDOW_SAMPLES = 512  # what Silero scores at 16 kHz
VAD_CONTEXT_SAMPLES = 64  # the end of the window before, which the model sees too
WARMUP_FRAMES = FRAMES_PER_S  # each block is primed with this much earlier audio
NEG_THRESHOLD_GAP = 0.15


def frame_dbfs(samples: np.ndarray) -> np.ndarray:
    """Loudness of each whole 10 ms frame in dBFS (digital silence is -inf)."""
    n = len(samples) // FRAME_SAMPLES
    x = samples[: n * FRAME_SAMPLES].astype(np.float32).reshape(n, FRAME_SAMPLES)
    rms = np.sqrt(np.mean(x * x, axis=1))
    with np.errstate(divide="ignore"):
        db: np.ndarray = 20 * np.log10(rms / 32768.0)
    return db


@functools.cache
def _vad_session() -> Any:
    """Silero VAD as faster-whisper ships it, loaded with onnxruntime alone.

    Why not `faster_whisper.vad.get_vad_model()`: importing faster_whisper pulls in CTranslate2, PyAV and
    tokenizers, which the openai engine never uses; the model file and the call are the same.
    """
    import onnxruntime

    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("faster-whisper is not installed: it carries the Silero VAD model")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=opts)


def _silero(x: np.ndarray) -> np.ndarray:
    """Speech probability per 512-sample window of float32 `x` (a multiple of 512 long): faster-whisper's
    `SileroVADModel.__call__`, without writing into its input."""
    windows = x.reshape(-1, VAD_WINDOW_SAMPLES)
    context = np.roll(windows[:, -VAD_CONTEXT_SAMPLES:], 1, axis=0)
    context[0] = 0.0
    batch = np.concatenate([context, windows], axis=1)
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    outputs = []
    for i in range(0, len(batch), 10_000):
        out, h, c = _vad_session().run(None, {"input": batch[i : i + 10_000], "h": h, "c": c})
        outputs.append(out)
    probs: np.ndarray = np.concatenate(outputs, axis=0).reshape(-1)
    return probs


def frame_speech_probs(pcm: np.ndarray, warmup_frames: int = 0) -> np.ndarray:
    """Silero's speech probability for each whole 10 ms frame of int16 `pcm` after its first
    `warmup_frames` frames, which only prime the model (they get no score of their own)."""
    frames = len(pcm) // FRAME_SAMPLES
    if frames <= warmup_frames:
        return np.zeros(0, dtype=np.float32)
    x = pcm[: frames * FRAME_SAMPLES].astype(np.float32) / 32768.0
    probs = _silero(np.pad(x, (0, -len(x) % VAD_WINDOW_SAMPLES)))
    centres = np.arange(warmup_frames, frames) * FRAME_SAMPLES + FRAME_SAMPLES // 2
    out: np.ndarray = probs[np.minimum(centres // VAD_WINDOW_SAMPLES, len(probs) - 1)]
    return out


def voiced_frames(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Silero's hysteresis: speech starts at a frame scoring >= threshold and lasts while frames score
    at least `threshold - 0.15`."""
    strong = probs >= threshold
    weak = probs >= max(threshold - NEG_THRESHOLD_GAP, 0.01)
    voiced = np.zeros(len(probs), dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], weak.astype(np.int8), [0]))))
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        hits = np.flatnonzero(strong[start:end])
        if hits.size:
            voiced[start + int(hits[0]) : end] = True
    return voiced


def speech_spans(
    voiced: np.ndarray, min_silence_frames: int, min_speech_frames: int = 8
) -> list[tuple[int, int]]:
    """Runs of voiced frames as [start, end) frame indices, joined across gaps shorter than a silence."""
    if not voiced.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], voiced.astype(np.int8), [0]))))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    merged: list[tuple[int, int]] = [runs[0]]
    for start, end in runs[1:]:
        if start - merged[-1][1] < min_silence_frames:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [(s, e) for s, e in merged if e - s >= min_speech_frames]


def quietest_frame(db: np.ndarray, lo: int, hi: int) -> int:
    """The frame in [lo, hi) at the centre of the quietest 100 ms: where a cut disturbs no word."""
    hi = min(max(hi, lo + 1), len(db))
    if hi <= lo:
        return min(lo, len(db))
    window = np.nan_to_num(db[lo:hi], neginf=-200.0)
    smooth = np.convolve(window, np.ones(10) / 10, mode="same") if len(window) >= 10 else window
    return lo + int(np.argmin(smooth))


# ---- is every stretch of speech covered by text? --------------------------------------------------

MIN_GAP_S = 1.0  # speech shorter than this without text is not worth asking about again
WORD_REACH_S = 0.4  # a word's times are approximate: it covers this much either side
SEGMENT_SLACK_S = 5.0  # a segment may run this much past the speech under it before it is suspect


def _covered(segments: Sequence[Segment]) -> list[tuple[float, float]]:
    """What text covers: each word (widened a little) where there are words, else whole segments."""
    spans: list[tuple[float, float]] = []
    for seg in segments:
        if seg.words:
            spans.extend((w.start_s - WORD_REACH_S, w.end_s + WORD_REACH_S) for w in seg.words)
        elif seg.text.strip():
            spans.append((seg.start_s, seg.end_s))
    return sorted(spans)


def uncovered(speech: Sequence[Span], segments: Sequence[Segment], min_s: float = MIN_GAP_S) -> list[Span]:
    """Stretches of at least `min_s` inside detected speech that no word or segment covers."""
    cover = _covered(segments)
    gaps: list[Span] = []
    for span in speech:
        at = span.start_s
        for start, end in cover:
            if end <= at:
                continue
            if start >= span.end_s:
                break
            if start - at >= min_s:
                gaps.append(Span(at, start))
            at = max(at, end)
        if span.end_s - at >= min_s:
            gaps.append(Span(at, span.end_s))
    return gaps


def overlong(speech: Sequence[Span], segments: Sequence[Segment], slack_s: float = SEGMENT_SLACK_S) -> bool:
    """A segment that runs far past the speech under it: the model lost its timestamps."""
    for seg in segments:
        under = sum(max(0.0, min(seg.end_s, s.end_s) - max(seg.start_s, s.start_s)) for s in speech)
        if seg.end_s - seg.start_s > under + slack_s:
            return True
    return False
