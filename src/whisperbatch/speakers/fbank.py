"""Kaldi-style log mel filterbank features, in numpy, as the CAM++ speaker model was trained on.

The model expects exactly what `torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0)` computes,
mean-normalised over the clip. torchaudio would pull torch in at run time, and no small library computes
Kaldi's variant (povey window, DC removal and pre-emphasis per frame, Kaldi's mel scale without the
Nyquist bin), so it is written out here; `scripts/export_speaker_models.py` checks it against the
reference extractor shipped with the model.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE_HZ = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512
MEL_BINS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
_EPSILON = float(np.finfo(np.float32).eps)

Floats = npt.NDArray[np.float32]


def _mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0), dtype=np.float64)


@functools.cache
def _mel_banks() -> Floats:
    """(FFT_SIZE // 2, MEL_BINS) triangular weights on Kaldi's mel scale, from LOW_HZ to Nyquist."""
    low, high = _mel(LOW_HZ), _mel(SAMPLE_RATE_HZ / 2)
    delta = (high - low) / (MEL_BINS + 1)
    bins = np.arange(MEL_BINS, dtype=np.float64)[None, :]
    left, center, right = low + bins * delta, low + (bins + 1) * delta, low + (bins + 2) * delta
    mel = _mel(np.arange(FFT_SIZE // 2) * (SAMPLE_RATE_HZ / FFT_SIZE))[:, None]
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    weights = np.where((mel > left) & (mel < right), np.where(mel <= center, up, down), 0.0)
    return weights.astype(np.float32)


@functools.cache
def _povey_window() -> Floats:
    n = np.arange(FRAME_LENGTH, dtype=np.float64)
    return (np.power(0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1)), 0.85)).astype(np.float32)


def frame_count(samples: int) -> int:
    return 0 if samples < FRAME_LENGTH else 1 + (samples - FRAME_LENGTH) // FRAME_SHIFT


def fbank(samples: Floats) -> Floats:
    """(frames, 80) log mel energies of 16 kHz float samples in [-1, 1], 25 ms frames every 10 ms
    (only whole frames), mean-normalised over the clip as the speaker model expects."""
    count = frame_count(len(samples))
    if count == 0:
        return np.zeros((0, MEL_BINS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float32), FRAME_LENGTH)[::FRAME_SHIFT]
    frames = frames[:count] - frames[:count].mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - PREEMPHASIS * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * (1.0 - PREEMPHASIS)
    spectrum = np.fft.rfft(emphasised * _povey_window(), n=FFT_SIZE, axis=1)[:, : FFT_SIZE // 2]
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    energies = np.log(np.maximum(power @ _mel_banks(), _EPSILON))
    normalised: Floats = (energies - energies.mean(axis=0, keepdims=True)).astype(np.float32)
    return normalised
