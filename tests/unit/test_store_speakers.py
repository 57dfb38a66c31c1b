"""The store's speaker contract (`SpeakerBook`): registered voices and each recording's stored
diarization. Part of the store's contract like tests/unit/test_store.py, whose `opener` and `store`
these tests take: here over an SQLite file, in tests/integration/test_store_postgres.py over a
database on a real PostgreSQL server."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from unit.test_store import Opener, _enqueue, _transcript, old_database
from unit.test_store import opener as opener  # the contract's fixtures
from unit.test_store import store as store
from whisperbatch.store import MIGRATIONS, JobStore, SqliteStore

# Floats whose shortest repr is long or whose exponent is far from 1: each must come back bit for bit.
ALICE = (1 / 3, -math.pi, 2.5e-17, 0.1, -0.0, 1e300, 0.12345678901234568)
BOB = (0.5, -0.25, 1 / 7)


def test_voices_are_listed_by_name_with_their_voiceprint_exactly(store: JobStore) -> None:
    assert store.voices() == []
    before = datetime.now(UTC)
    assert store.add_voice("Bob", BOB, "bob.wav", replace=False)
    assert store.add_voice("Alice", ALICE, "alice.m4a", replace=False)
    voices = store.voices()
    assert [v.name for v in voices] == ["Alice", "Bob"]
    alice = voices[0]
    assert alice.embedding == ALICE and alice.source == "alice.m4a"
    assert [math.copysign(1, x) for x in alice.embedding] == [math.copysign(1, x) for x in ALICE]
    assert before.timestamp() - 1 <= alice.created_at.timestamp() <= time.time() + 1
    assert alice.created_at.tzinfo is not None


def test_a_registered_name_is_refused_unless_replaced(store: JobStore) -> None:
    assert store.add_voice("Alice", ALICE, "alice.m4a", replace=False)
    assert not store.add_voice("Alice", BOB, "other.m4a", replace=False)
    [kept] = store.voices()
    assert kept.embedding == ALICE and kept.source == "alice.m4a"
    assert store.add_voice("Alice", BOB, "other.m4a", replace=True)
    [replaced] = store.voices()
    assert replaced.embedding == BOB and replaced.source == "other.m4a"
    assert replaced.created_at >= kept.created_at
    # Replacing a name not yet registered registers it.
    assert store.add_voice("Carol", ALICE, "carol.ogg", replace=True)
    assert [v.name for v in store.voices()] == ["Alice", "Carol"]


def test_a_voice_is_removed_by_name_and_an_unknown_name_says_so(store: JobStore) -> None:
    store.add_voice("Alice", ALICE, "alice.m4a", replace=False)
    store.add_voice("Bob", BOB, "bob.wav", replace=False)
    assert not store.remove_voice("alice")  # names are exact
    assert store.remove_voice("Alice")
    assert [v.name for v in store.voices()] == ["Bob"]
    assert not store.remove_voice("Alice")


def test_voices_are_shared_by_every_store_on_the_same_database(opener: Opener) -> None:
    """Two stores on one database (on PostgreSQL: two hosts) see each other's voices at once."""
    here, there = opener(), opener()
    try:
        assert here.add_voice("Alice", ALICE, "alice.m4a", replace=False)
        assert [(v.name, v.embedding) for v in there.voices()] == [("Alice", ALICE)]
        assert not there.add_voice("Alice", BOB, "bob.wav", replace=False)
        assert there.add_voice("Bob", BOB, "bob.wav", replace=False)
        assert [v.name for v in here.voices()] == ["Alice", "Bob"]
        assert there.remove_voice("Alice")
        assert [v.name for v in here.voices()] == ["Bob"]
    finally:
        here.close()
        there.close()


def test_voices_outlive_the_store_that_added_them(opener: Opener) -> None:
    first = opener()
    first.add_voice("Alice", ALICE, "alice.m4a", replace=False)
    first.close()
    again = opener()
    try:
        assert [(v.name, v.embedding, v.source) for v in again.voices()] == [("Alice", ALICE, "alice.m4a")]
    finally:
        again.close()


def _diarization(label: str) -> str:
    return json.dumps({"turns": [[0.0, 1.25, label]], "voiceprints": {label: list(BOB)}})


def test_speaker_labels_are_kept_by_their_key_and_saved_again_over(store: JobStore) -> None:
    _enqueue(store, "k1")
    assert store.speaker_labels("k1:speakers:a") is None
    store.save_speaker_labels("k1:speakers:a", "k1", _diarization("Speaker 1"))
    store.save_speaker_labels("k1:speakers:b", "k1", _diarization("Alice"))
    assert store.speaker_labels("k1:speakers:a") == _diarization("Speaker 1")
    assert store.speaker_labels("k1:speakers:b") == _diarization("Alice")
    store.save_speaker_labels("k1:speakers:a", "k1", _diarization("Speaker 2"))
    assert store.speaker_labels("k1:speakers:a") == _diarization("Speaker 2")


def test_speaker_labels_stay_when_a_job_is_reopened_and_go_when_it_is_redone(store: JobStore) -> None:
    """Labels added to a recording already transcribed keep what was stored; `--force` redoes them."""
    for key in ("k1", "k2"):
        _enqueue(store, key)
        store.finish(key, _transcript("a"), 0.006)
        store.save_speaker_labels(f"{key}:speakers:a", key, _diarization("Speaker 1"))
    store.reopen("k1", Path("/rec/a.m4a"), options={"diarize": True})
    assert store.speaker_labels("k1:speakers:a") == _diarization("Speaker 1")
    store.redo("k1", Path("/rec/a.m4a"), options={"diarize": True})
    assert store.speaker_labels("k1:speakers:a") is None
    assert store.speaker_labels("k2:speakers:a") == _diarization("Speaker 1")  # another job's stay


def test_a_database_from_before_speaker_labels_upgrades_in_place(tmp_path: Path) -> None:
    """A database with every migration up to 009 gets 010 (voices, speaker labels) and keeps its jobs."""
    path = tmp_path / "old.sqlite3"
    db = old_database(path, 9)
    db.execute(
        "INSERT INTO jobs (key, content_sha256, task, path, state, created_at, updated_at)"
        " VALUES ('old', 'sha', 'transcribe', '/rec/a.m4a', 'done', 0, 0)"
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        assert store.job("old") is not None
        assert store.voices() == []
        assert store.add_voice("Alice", ALICE, "alice.m4a", replace=False)
        store.save_speaker_labels("old:speakers:a", "old", _diarization("Alice"))
        assert store.speaker_labels("old:speakers:a") == _diarization("Alice")
        assert store.migrate() == []
    finally:
        store.close()
    applied = sqlite3.connect(path).execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
    assert [name for (name,) in applied] == [name for name, _ in MIGRATIONS]
