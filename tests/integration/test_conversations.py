"""The conversations built for speaker-label tests say what their reference says: who speaks when."""

from __future__ import annotations

import itertools
import tracemalloc
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from whisperbatch.testing.conversations import (
    MIN_TURN_S,
    REPLIES,
    THRESHOLD,
    Absence,
    Conversation,
    build_conversation,
    long_conversation,
    sentences,
)
from whisperbatch.testing.speechbuilder import MARGIN_S

RATE = 16_000


def _pcm(conversation: Conversation) -> np.ndarray[Any, np.dtype[np.int16]]:
    with wave.open(str(conversation.path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _said(text: str, known: list[str]) -> bool:
    """Whether `text` is known sentences one after another."""
    if not text:
        return True
    return any(text.startswith(k) and _said(text[len(k) :].lstrip(), known) for k in known)


def test_turns_take_their_place_and_the_audio_matches(tmp_path: Path) -> None:
    conv = build_conversation(tmp_path / "c.wav", duration_s=240.0, seed=5)
    pcm = _pcm(conv)
    assert len(pcm) == 240 * RATE and conv.duration_s == 240.0
    assert set(conv.speakers) == {"Ann", "Bob", "Cid"}
    lengths = [t.end_s - t.start_s for t in conv.turns]
    assert min(lengths) >= MIN_TURN_S and max(lengths) <= 20.0
    assert min(lengths) < 2.0 and max(lengths) > 10.0  # short replies and long stretches both
    assert conv.turns[-1].end_s <= conv.duration_s
    known = [*sentences(), *REPLIES]
    for a, b in itertools.pairwise(conv.turns):
        assert a.speaker != b.speaker
        assert 0.2 - 1e-3 <= b.start_s - a.end_s <= 1.0 + 1e-3  # a pause, never an overlap
        # Silence between, past each clip's margin (the lossy corpus leaves a codec's tail in it).
        assert not pcm[
            round((a.end_s + MARGIN_S) * RATE) + 1 : round((b.start_s - MARGIN_S) * RATE) - 1
        ].any()
    for t in conv.turns:
        first, last = round(t.start_s * RATE), round(t.end_s * RATE)
        assert np.abs(pcm[first : first + 320]).max() > THRESHOLD  # audible from its start…
        assert np.abs(pcm[last - 320 : last]).max() > THRESHOLD  # …to its end (20 ms: a lossy corpus)
        assert _said(t.text, known), t.text
    assert not pcm[: round((conv.turns[0].start_s - MARGIN_S) * RATE) - 1].any()
    assert conv.script.split() == [w for w, _ in conv.words]


def test_the_same_seed_builds_the_same_conversation(tmp_path: Path) -> None:
    a = build_conversation(tmp_path / "a.wav", duration_s=60.0, seed=9)
    b = build_conversation(tmp_path / "b.wav", duration_s=60.0, seed=9)
    c = build_conversation(tmp_path / "c.wav", duration_s=60.0, seed=10)
    assert a.turns == b.turns and a.path.read_bytes() == b.path.read_bytes()
    assert a.turns != c.turns


def test_a_speaker_silent_for_ten_minutes_comes_back(tmp_path: Path) -> None:
    away = Absence("Cid", 120.0, 600.0)
    conv = build_conversation(tmp_path / "c.wav", duration_s=900.0, seed=2, absences=(away,))
    cid = [t for t in conv.turns if t.speaker == "Cid"]
    assert not [t for t in cid if t.end_s > away.start_s and t.start_s < away.end_s]
    assert any(t.end_s <= away.start_s for t in cid)
    first_after = next(t for t in conv.turns if t.start_s >= away.end_s)
    assert first_after.speaker == "Cid"
    talking = {t.speaker for t in conv.turns if away.start_s <= t.start_s < away.end_s}
    assert talking == {"Ann", "Bob"}
    # the longest stretch without Cid is the absence (plus the turns around it), not much more
    gaps = [b.start_s - a.end_s for a, b in itertools.pairwise(cid)]
    assert 600.0 <= max(gaps) < 650.0


def test_overlaps_when_asked_two_voices_at_most(tmp_path: Path) -> None:
    conv = build_conversation(tmp_path / "c.wav", duration_s=180.0, seed=4, overlap_share=0.5)
    overlaps = [a.end_s - b.start_s for a, b in itertools.pairwise(conv.turns) if b.start_s < a.end_s]
    assert len(overlaps) >= 5
    assert all(0.2 - 1e-3 <= o <= 0.5 + 1e-3 for o in overlaps)
    for a, _, c in zip(conv.turns, conv.turns[1:], conv.turns[2:], strict=False):
        assert c.start_s >= a.end_s


def test_absences_must_leave_two_speakers(tmp_path: Path) -> None:
    both = (Absence("Bob", 30.0, 60.0), Absence("Cid", 30.0, 60.0))
    with pytest.raises(ValueError, match="fewer than two"):
        build_conversation(tmp_path / "c.wav", duration_s=120.0, seed=1, absences=both)
    with pytest.raises(ValueError, match="not in the conversation"):
        build_conversation(tmp_path / "c.wav", duration_s=120.0, seed=1, absences=(Absence("Dee", 0, 1),))


def test_an_hour_is_written_without_holding_it_in_memory(tmp_path: Path) -> None:
    build_conversation(tmp_path / "warm.wav", duration_s=10.0, seed=1)  # the voices, synthesised once
    tracemalloc.start()
    try:
        conv = long_conversation(tmp_path / "hour.wav", seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30e6  # the hour's samples are 115 MB
    assert conv.path.stat().st_size == 44 + 3600 * RATE * 2
    assert conv.turns[-1].end_s > 3500.0
    (away,) = conv.absences
    assert (away.speaker, away.start_s, away.length_s) == ("Cid", 1200, 600.0)
    cid = [t for t in conv.turns if t.speaker == "Cid"]
    assert not [t for t in cid if away.start_s < t.end_s and t.start_s < away.end_s]
    assert next(t for t in conv.turns if t.start_s >= away.end_s).speaker == "Cid"
