"""Probing and cutting real audio with the real ffmpeg."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, assemble
from whisperbatch.audio import (
    SAMPLE_RATE,
    Chunker,
    ChunkParams,
    frame_dbfs,
    probe,
    speech_spans,
    speech_threshold,
)
from whisperbatch.errors import AudioError, DecodeError


@pytest.mark.parametrize(
    ("name", "seconds"),
    [
        ("talk.m4a", 8.94),
        ("morning.mp3", 8.04),
        ("fox.wav", 8.94),
        ("morning.webm", 8.04),
        ("german.m4a", 8.17),
    ],
)
def test_probe_without_ffprobe(ffmpeg: str, name: str, seconds: float) -> None:
    info = probe(SAMPLES / name, ffmpeg)
    assert abs(info.duration_s - seconds) < 0.1
    assert info.size_bytes == (SAMPLES / name).stat().st_size
    assert info.sample_rate_hz in (16000, 44100, 48000)


def test_probe_rejects_non_audio(ffmpeg: str, tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        probe(tmp_path / "missing.wav", ffmpeg)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    with pytest.raises(DecodeError, match=r"junk\.wav: "):
        probe(junk, ffmpeg)


def _chunks(path: Path, ffmpeg: str, tmp_path: Path, **params: object) -> list:  # type: ignore[type-arg]
    work = tmp_path / "chunks"
    work.mkdir(exist_ok=True)
    return list(Chunker(path, ffmpeg=ffmpeg, workdir=work, params=ChunkParams(**params)).chunks())  # type: ignore[arg-type]


def test_cuts_land_in_silences_near_target_and_offsets_are_exact(ffmpeg: str, tmp_path: Path) -> None:
    rec = tmp_path / "dense.wav"
    onsets = assemble(rec, [True] * 30, ffmpeg)  # 5 minutes of speech with 2.8 s pauses
    chunks = _chunks(rec, ffmpeg, tmp_path, target_s=60.0, max_s=90.0, suffix=".wav")
    assert 3 <= len(chunks) <= 6
    for a, b in itertools.pairwise(chunks):
        assert b.offset_s >= a.offset_s + a.duration_s - 1e-9  # no overlap
    for c in chunks:
        assert c.duration_s <= 90.0
        # every chunk starts just before an onset: cuts were made in pauses, not mid-word
        assert any(0 <= o - c.offset_s <= 0.5 for o in onsets), c.offset_s
        assert c.path.suffix == ".wav" and c.path.stat().st_size == c.size_bytes


def test_long_silences_are_not_chunked(ffmpeg: str, tmp_path: Path) -> None:
    rec = tmp_path / "sparse.wav"
    onsets = assemble(rec, [False, True] + [False] * 20 + [True], ffmpeg)
    chunks = _chunks(rec, ffmpeg, tmp_path, suffix=".wav")
    assert len(chunks) == 2
    assert sum(c.duration_s for c in chunks) < 20
    assert [round(c.offset_s + c.speech[0].start_s, 1) for c in chunks] == [round(o, 1) for o in onsets]


def test_speech_without_pauses_is_cut_at_the_cap(ffmpeg: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(SAMPLE_RATE * 100) * 3000).astype(np.int16)  # 100 s, never quiet
    import wave

    rec = tmp_path / "noise.wav"
    with wave.open(str(rec), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(noise.tobytes())
    chunks = _chunks(rec, ffmpeg, tmp_path, target_s=20.0, max_s=30.0, suffix=".wav")
    assert all(c.duration_s <= 30.0 for c in chunks)
    assert abs(sum(c.duration_s for c in chunks) - 100.0) < 0.05  # nothing lost at the forced cuts


def test_speech_spans_join_short_gaps() -> None:
    db = np.full(300, -90.0)
    db[10:50] = -20  # 0.1-0.5 s
    db[70:100] = -20  # gap of 0.2 s: same utterance
    db[200:260] = -20  # gap of 1 s: a new one
    assert speech_spans(db, -40.0, min_silence_frames=50) == [(10, 100), (200, 260)]
    assert speech_spans(np.full(10, -np.inf), -40.0, 50) == []


def test_adaptive_threshold_follows_loudness() -> None:
    loud = frame_dbfs((np.sin(np.arange(16000) / 5) * 20000).astype(np.int16))
    quiet = frame_dbfs((np.sin(np.arange(16000) / 5) * 300).astype(np.int16))
    assert -38.0 < speech_threshold(loud, None) <= -35.0
    assert speech_threshold(quiet, None) < -55.0  # a softly spoken file is not thrown away as silence
    assert speech_threshold(quiet, -42.0) == -42.0
