"""Probing and cutting real audio with the real ffmpeg."""

from __future__ import annotations

import itertools
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLES, assemble, read_pcm
from whisperbatch.audio import SAMPLE_RATE, UPLOAD_OVERHEAD_BYTES, Chunker, ChunkParams, probe
from whisperbatch.errors import AudioError, DecodeError
from whisperbatch.pipeline import ahead


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


def _heard_s(path: Path, ffmpeg: str) -> float:
    """How long a chunk decodes to, which is what a server hears. Not the `Duration:` ffmpeg prints for
    an MP3, which is estimated from the bit rate, and which ffmpeg 5.1 (Debian's) counts with the
    encoder's delay and padding: some 0.1 s more than the samples the LAME header says to play."""
    return len(read_pcm(path, ffmpeg)) / SAMPLE_RATE


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
    found = [c.offset_s + c.speech[0].start_s for c in chunks]
    assert all(abs(f - o) <= 0.15 for f, o in zip(found, onsets, strict=True)), found


def test_speech_without_pauses_is_cut_at_the_cap(ffmpeg: str, tmp_path: Path) -> None:
    import wave

    pcm = read_pcm(SAMPLES / "fox.wav", ffmpeg)
    loud = np.flatnonzero(np.abs(pcm) > 300)
    talk = np.tile(pcm[loud[0] : loud[-1]], 14)  # ~100 s of speech, no pause longer than espeak's own
    rec = tmp_path / "talk.wav"
    with wave.open(str(rec), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(talk.tobytes())
    chunks = _chunks(rec, ffmpeg, tmp_path, target_s=20.0, max_s=30.0, suffix=".wav")
    assert all(c.duration_s <= 30.0 for c in chunks)
    total = len(talk) / SAMPLE_RATE
    assert sum(c.duration_s for c in chunks) > total - 3.0  # only pauses between chunks are left out
    for a, b in itertools.pairwise(chunks):
        assert b.offset_s >= a.offset_s + a.duration_s - 1e-9


def test_chunks_are_prepared_ahead_of_the_consumer(ffmpeg: str, tmp_path: Path) -> None:
    """While the first chunk is still being asked about, the next is already decoded and encoded."""
    path = tmp_path / "talk.wav"
    assemble(path, [True] * 18, ffmpeg)  # 3 minutes of speech with 2.8 s pauses
    params = ChunkParams(target_s=60.0, max_s=90.0, suffix=".mp3")
    prepared = ahead(Chunker(path, ffmpeg=ffmpeg, workdir=tmp_path, params=params).chunks(), 1)
    with closing(prepared):
        first = next(prepared)
        nxt = tmp_path / "chunk-00001.mp3"
        for _ in range(600):  # liveness, not speed: give up after a minute
            if nxt.exists() and nxt.stat().st_size > 0:
                break
            time.sleep(0.1)
        assert nxt.exists(), "the next chunk was not prepared while the first was held"
        rest = list(prepared)
    assert [c.index for c in (first, *rest)] == list(range(len(rest) + 1)) and len(rest) >= 2
    assert _heard_s(first.path, ffmpeg) == pytest.approx(first.duration_s, abs=0.02)


def test_chunks_over_the_byte_cap_are_split_and_numbered_in_order(ffmpeg: str, tmp_path: Path) -> None:
    """Pieces are encoded side by side; one that encodes over the cap is halved at a quiet point, and
    the chunks still come out numbered in order, back to back, each under the cap."""
    path = tmp_path / "talk.wav"
    assemble(path, [True] * 18, ffmpeg)  # 3 minutes of speech with 2.8 s pauses
    cap = UPLOAD_OVERHEAD_BYTES + 200_000  # a 60-s chunk at 64 kbit/s is some 480 kB
    params = ChunkParams(target_s=60.0, max_s=90.0, suffix=".mp3", max_bytes=cap)
    chunks = list(Chunker(path, ffmpeg=ffmpeg, workdir=tmp_path, params=params).chunks())
    assert [c.index for c in chunks] == list(range(len(chunks))) and len(chunks) >= 6
    assert len({c.path for c in chunks}) == len(chunks)
    for a, b in itertools.pairwise(chunks):
        assert b.offset_s >= a.offset_s + a.duration_s - 1e-9
    for c in chunks:
        assert c.size_bytes == c.path.stat().st_size <= cap - UPLOAD_OVERHEAD_BYTES
        assert _heard_s(c.path, ffmpeg) == pytest.approx(c.duration_s, abs=0.02)
    split = [c for c in chunks if c.path.stem.endswith(("a", "b"))]
    assert split, "no piece was split for the cap"
