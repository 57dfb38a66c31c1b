"""Voice embeddings: CAM++ over Kaldi filterbanks of a local speaker's clean speech.

From each window, each local speaker's frames where it talks alone are gathered (longest stretches
first) into one excerpt of at most `max_s`; shorter than `min_s` gives too unsteady an embedding to
trust, and that speaker is left to the windows around it. Excerpts are cut to whole half seconds, so
a batch holds excerpts of one length (no padding shifts the model's statistics pooling) and the model
sees few shapes. Batches are small: a larger one is hardly faster and holds more memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .fbank import SAMPLE_RATE_HZ, fbank
from .runtime import EMBEDDING, SegmentationSpec, run
from .segment import Window

QUANTUM = SAMPLE_RATE_HZ // 2
BATCH = 4


@dataclass(frozen=True)
class Excerpt:
    """A local speaker's clean speech in one window."""

    window: int  # index of its window
    local: int  # its local speaker
    samples: npt.NDArray[np.float32]


def runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def excerpts(
    index: int, window: Window, spec: SegmentationSpec, min_s: float, max_s: float, owned: slice = slice(None)
) -> list[Excerpt]:
    """Each local speaker's clean speech in the `owned` frames of `window`, as one excerpt, where there
    is enough of it."""
    alone = window.activity.sum(axis=1) == 1
    inside = np.zeros(len(alone), dtype=bool)
    inside[owned] = True
    alone &= inside
    found = []
    step = spec.frame_step_s * SAMPLE_RATE_HZ
    for local in range(window.activity.shape[1]):
        stretches = sorted(runs(alone & (window.activity[:, local] == 1)), key=lambda r: r[0] - r[1])
        pieces, total = [], 0
        for first, last in stretches:
            a = int(first * step)
            b = min(int(last * step + spec.frame_duration_s * SAMPLE_RATE_HZ), len(window.samples))
            piece = window.samples[a:b][: int(max_s * SAMPLE_RATE_HZ) - total]
            pieces.append(piece)
            total += len(piece)
            if total >= max_s * SAMPLE_RATE_HZ:
                break
        usable = total // QUANTUM * QUANTUM
        if usable >= min_s * SAMPLE_RATE_HZ:
            found.append(Excerpt(index, local, np.concatenate(pieces)[:usable]))
    return found


def embed(
    samples_list: Sequence[npt.NDArray[np.float32]], models: str | Path | None
) -> npt.NDArray[np.float32]:
    """(n, 192) unit-length embeddings, in the order given; same-length inputs are batched."""
    out = np.zeros((len(samples_list), 192), dtype=np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, samples in enumerate(samples_list):
        by_length[len(samples)].append(i)
    for indices in by_length.values():
        for k in range(0, len(indices), BATCH):
            part = indices[k : k + BATCH]
            out[part] = run(models, EMBEDDING, {"fbank": np.stack([fbank(samples_list[i]) for i in part])})
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out
