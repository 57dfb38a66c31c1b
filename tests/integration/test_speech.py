"""Speech detection on real audio: Silero VAD under noise, quiet speakers, loud noise alone."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from conftest import FOX_ONSET_S, SAMPLES, read_pcm
from whisperbatch.audio import Chunker, ChunkParams
from whisperbatch.speech import (
    SAMPLE_RATE,
    frame_speech_probs,
    voiced_frames,
)


def _fox(ffmpeg: str) -> np.ndarray:
    return read_pcm(SAMPLES / "fox.wav", ffmpeg).astype(np.float64)


def _noise_bed(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Pink noise plus 50 Hz hum with two harmonics, together at about `dbfs` RMS."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    pink = np.fft.irfft(spectrum, n)
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    level = 32768 * 10 ** (dbfs / 20)
    return pink / np.sqrt(np.mean(pink**2)) * level * 0.7 + hum / np.sqrt(np.mean(hum**2)) * level * 0.7


def _write(path: Path, x: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.clip(x, -32768, 32767).astype(np.int16).tobytes())
    return path


def test_speech_under_noise_and_a_quiet_speaker_are_found_and_noise_alone_is_skipped(
    ffmpeg: str, tmp_path: Path
) -> None:
    fox = _fox(ffmpeg)
    quiet = fox * 10 ** (-20 / 20)  # the same voice 20 dB softer, barely above the noise bed
    bed = _noise_bed(60.0, -48.0)
    starts_s = [2.0, 40.0]  # 20+ s of noise alone between the two voices
    mix = bed.copy()
    for at, voice in zip(starts_s, (fox, quiet), strict=True):
        i = int(at * SAMPLE_RATE)
        mix[i : i + len(voice)] += voice
    rec = _write(tmp_path / "noisy.wav", mix)
    work = tmp_path / "chunks"
    work.mkdir()
    chunks = list(Chunker(rec, ffmpeg=ffmpeg, workdir=work, params=ChunkParams(suffix=".wav")).chunks())
    heard = [(c.offset_s + s.start_s, c.offset_s + s.end_s) for c in chunks for s in c.speech]
    for at in starts_s:
        onset = at + FOX_ONSET_S
        assert any(abs(a - onset) < 0.3 for a, _ in heard), (onset, heard)
    # Only the two voices are uploaded: the noise bed between and after them is skipped.
    assert sum(c.duration_s for c in chunks) < 2 * len(fox) / SAMPLE_RATE
    assert not any(a < 30.0 < b for a, b in heard)


def test_vad_ignores_loud_noise_that_an_energy_threshold_takes_for_speech(ffmpeg: str) -> None:
    bed = _noise_bed(10.0, -30.0).astype(np.int16)
    voiced = voiced_frames(frame_speech_probs(bed), 0.5)
    assert voiced.mean() < 0.05
