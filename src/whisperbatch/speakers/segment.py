"""Who speaks when inside each 10 s window: pyannote segmentation-3.0, decoded from its powerset.

The model reads 10 s of audio and gives each ~17 ms frame one of 7 classes: nobody, one of three
speakers local to the window, or two of them at once. Local speakers mean nothing across windows; the
embedding of each one's speech is what ties them to the recording's speakers (`cluster.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..audio.decode import PcmReader
from .runtime import SEGMENTATION, SegmentationSpec, run

# Powerset classes of segmentation-3.0 (3 local speakers, at most 2 at once) as speaker sets.
POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8
)
LOCAL_SPEAKERS = 3
BATCH = 2  # windows per run: more only hold more memory (80 filters over 10 s each), for little speed
READ_SAMPLES = 60 * 16_000


@dataclass(frozen=True)
class Window:
    """One window's audio and, once segmented, its local speakers' activity per frame."""

    start_sample: int
    samples: npt.NDArray[np.float32]  # window_samples long, zero-padded past the recording's end
    activity: npt.NDArray[np.uint8]  # (frames, LOCAL_SPEAKERS), 1 where that local speaker talks
    # (frames, LOCAL_SPEAKERS): how sure the model is that each talks, to weigh windows against each other
    confidence: npt.NDArray[np.float16]


def windows(reader: PcmReader, spec: SegmentationSpec, step_samples: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, float32 samples) of each window, every `step_samples`, the last one ending where
    the recording does; only a window's worth of audio (and one read block) is held at a time."""
    size = spec.window_samples
    block = np.empty(READ_SAMPLES, dtype=np.int16)
    buffered = np.zeros(0, dtype=np.float32)
    base = 0  # sample index of buffered[0]
    start, done = 0, False
    while True:
        while not done and base + len(buffered) < start + size:
            got = reader.read_into(block)
            done = got < len(block)
            buffered = np.concatenate([buffered, block[:got].astype(np.float32) / 32768.0])
        total = base + len(buffered)
        if start + size <= total:
            yield start, buffered[start - base : start - base + size]
            if done and start + size == total:
                return
            start += step_samples
            if done and start + size > total:
                start = max(0, total - size) if total > size else start
                if total <= size:
                    return
        else:  # shorter than one window: one window, zero-padded
            if start == 0:
                yield 0, np.pad(buffered, (0, size - len(buffered)))
            return
        cut = min(start, total) - base
        buffered, base = buffered[cut:], base + cut


def segment(batch: list[tuple[int, np.ndarray]], models: str | Path | None) -> list[Window]:
    """Local speakers' activity in each window of `batch`."""
    waveforms = np.stack([samples for _, samples in batch])[:, None, :]
    log_probs = run(models, SEGMENTATION, {"waveforms": waveforms})
    classes = np.argmax(log_probs, axis=-1)
    confidence = (np.exp(log_probs) @ POWERSET.astype(np.float32)).astype(np.float16)
    return [
        Window(start, samples, POWERSET[classes[i]], confidence[i])
        for i, (start, samples) in enumerate(batch)
    ]


def segmented(
    path: Path, ffmpeg: str, spec: SegmentationSpec, step_samples: int, models: str | Path | None
) -> Iterator[Window]:
    """Every window of the recording at `path`, segmented, decoded as it goes. Raises DecodeError."""
    reader = PcmReader(path, ffmpeg)
    ok = False
    try:
        batch: list[tuple[int, np.ndarray]] = []
        for item in windows(reader, spec, step_samples):
            batch.append((item[0], item[1].copy()))
            if len(batch) == BATCH:
                yield from segment(batch, models)
                batch = []
        if batch:
            yield from segment(batch, models)
        ok = True
    finally:
        reader.close(check=ok)
