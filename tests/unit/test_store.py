"""The job store's contract: what every backend must do, tested through the `JobStore` protocol alone.

Here `opener` opens an SQLite file; tests/integration/test_store_postgres.py runs the same tests on a
database on a real PostgreSQL server the tests start.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from whisperbatch.models import (
    CostLine,
    EngineResult,
    JobState,
    Segment,
    Span,
    Spend,
    Task,
    Transcript,
    Usage,
    Word,
)
from whisperbatch.store import MIGRATIONS, JobStore, SqliteStore, queries
from whisperbatch.store.migrations import migration_sql

Opener = Callable[[], JobStore]


@pytest.fixture(params=["sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens (or reopens) one store of the given backend."""
    return lambda: SqliteStore(tmp_path / "state.sqlite3")


@pytest.fixture()
def store(opener: Opener) -> Iterator[JobStore]:
    s = opener()
    yield s
    s.close()


def _enqueue(store: JobStore, key: str, path: str = "/rec/a.m4a", run_id: str | None = None) -> None:
    store.enqueue(key, "sha-" + key, Task.TRANSCRIBE, Path(path), 100, 1, run_id=run_id)


def _result(text: str) -> EngineResult:
    """An answer as the engine gives it, with words and usage, as the store must keep it."""
    segment = Segment(0.0, 1.5, text, words=(Word(0.0, 1.5, text, 0.9),), avg_logprob=-0.2)
    return EngineResult(text=text, segments=(segment,), language="en", usage=Usage(seconds=1.5))


def old_database(path: Path, count: int) -> sqlite3.Connection:
    """An SQLite store as an older whisperbatch left it: the first `count` migrations applied."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, sql in MIGRATIONS[:count]:
        db.executescript(";".join(migration_sql(sql, pk="INTEGER PRIMARY KEY", real="REAL")))
        db.execute("INSERT INTO schema_migrations VALUES (?, 0)", (name,))
    return db


def _transcript(text: str) -> Transcript:
    segment = Segment(0.0, 1.5, text, words=(Word(0.0, 1.5, text),))
    return Transcript((segment,), "en", 1.5, "openai", "whisper-1", Task.TRANSCRIBE, gaps=(Span(2.0, 3.0),))


def test_enqueue_is_idempotent_and_remembers_the_file(store: JobStore) -> None:
    first = store.enqueue("k1", "sha", Task.TRANSCRIBE, Path("/rec/a.m4a"), 100, 7, options={"x": 1})
    again = store.enqueue("k1", "sha", Task.TRANSCRIBE, Path("/rec/renamed.m4a"), 100, 8, run_id="r2")
    assert first.id == again.id and again.state is JobState.QUEUED and again.path == Path("/rec/a.m4a")
    assert again.options == {"x": 1} and again.run_id == "r2"  # the run that asked last may run it
    assert store.seen(Path("/rec/a.m4a"), 100, 7) == "sha"
    assert store.seen(Path("/rec/a.m4a"), 100, 9) is None  # another version of the file
    assert [j.key for j in store.jobs()] == ["k1"] and store.jobs(JobState.DONE) == []
    assert [j.key for j in store.jobs(run_id="r2")] == ["k1"] and store.jobs(run_id="r1") == []


def test_the_latest_jobs_come_newest_first_up_to_the_limit(store: JobStore) -> None:
    for key in ("k1", "k2", "k3", "k4"):
        _enqueue(store, key, f"/rec/{key}.m4a")
    store.fail("k3", "boom")
    assert [j.key for j in store.latest_jobs(None, 3)] == ["k4", "k3", "k2"]
    assert [j.key for j in store.latest_jobs(JobState.QUEUED, 10)] == ["k4", "k2", "k1"]
    assert [j.key for j in store.latest_jobs(JobState.FAILED, 10)] == ["k3"]


def test_a_listed_job_is_everything_but_its_transcript(store: JobStore) -> None:
    _enqueue(store, "k1")
    claimed = store.claim("w1", 30)
    assert claimed is not None
    store.job_started("k1", 12.5)
    store.chunk_done("k1", 6.0)
    store.finish("k1", _transcript("hello"), 0.01)
    whole = store.job("k1")
    assert whole is not None and whole.transcript is not None
    (listed,) = store.latest_jobs(None, 10)
    assert listed.transcript is None
    assert listed == dataclasses.replace(whole, _transcript_json=None)


def test_a_job_is_claimed_once_and_its_lease_is_renewed(store: JobStore) -> None:
    _enqueue(store, "k1")
    job = store.claim("host:1:a", lease_s=30)
    assert job is not None and job.state is JobState.RUNNING and job.attempts == 1
    assert job.lease_owner == "host:1:a" and job.lease_expires is not None
    assert store.claim("host:2:b", lease_s=30) is None  # held
    before = job.lease_expires
    time.sleep(0.01)
    store.renew("host:1:a", lease_s=60)
    renewed = store.job("k1")
    assert renewed is not None and renewed.lease_expires is not None and renewed.lease_expires > before


def test_a_run_claims_only_its_own_jobs(store: JobStore) -> None:
    _enqueue(store, "theirs", run_id="watch")
    _enqueue(store, "mine", "/rec/b.m4a", run_id="run-1")
    job = store.claim("me", lease_s=30, run_id="run-1")
    assert job is not None and job.key == "mine"
    assert store.claim("me", lease_s=30, run_id="run-1") is None
    other = store.claim("worker", lease_s=30)  # a worker takes any job
    assert other is not None and other.key == "theirs"


def test_a_watcher_claims_its_folders_jobs_and_those_it_admitted(store: JobStore) -> None:
    _enqueue(store, "elsewhere", "/rec/b.m4a", run_id="enqueue")
    _enqueue(store, "sibling", "/inbox_old/a.m4a", run_id="enqueue")  # a name that only starts alike
    _enqueue(store, "inside", "/inbox/sub/a.m4a", run_id="enqueue")
    _enqueue(store, "admitted", "/rec/c.m4a", run_id="watch-1")  # the same content as a file in /inbox
    taken = [store.claim("w", lease_s=30, run_id="watch-1", folder=Path("/inbox")) for _ in range(3)]
    assert [j.key if j else None for j in taken] == ["inside", "admitted", None]


def test_outputs_are_recorded_with_the_recording_and_job_that_wrote_them(store: JobStore) -> None:
    assert store.outputs([Path("/out/talk.txt")]) == {}
    store.record_outputs([Path("/out/talk.txt"), Path("/out/talk.srt")], Path("/a/talk.m4a"), "k1")
    store.record_outputs([Path("/out/talk.srt")], Path("/b/talk.m4a"), "k2")  # written again, by another
    found = store.outputs([Path(f"/out/talk.{ext}") for ext in ("txt", "srt", "vtt")])
    assert {p.name: (r.source.parent.name, r.job_key) for p, r in found.items()} == {
        "talk.txt": ("a", "k1"),
        "talk.srt": ("b", "k2"),
    }
    many = [Path(f"/out/{i}.txt") for i in range(1200)]  # more than one statement's parameters
    store.record_outputs(many, Path("/a/many.m4a"), "k3")
    assert len(store.outputs(many)) == 1200


def test_a_failed_job_can_forget_what_was_stored_for_it(store: JobStore) -> None:
    _enqueue(store, "k1")
    store.save_chunk_result("k1", 0, 0.0, 10.0, _result("a"))
    store.fail("k1", "kept")
    assert store.chunk_result("k1", 0, 0.0, 10.0) == _result("a")
    store.fail("k1", "changed", forget=True)
    job = store.job("k1")
    assert job is not None and job.state is JobState.FAILED and job.error == "changed"
    assert store.chunk_result("k1", 0, 0.0, 10.0) is None


def test_an_expired_or_orphaned_lease_is_taken_over(store: JobStore) -> None:
    import socket

    _enqueue(store, "k1")
    assert store.claim("host:1:a", lease_s=0.01) is not None
    time.sleep(0.05)
    here = socket.gethostname()
    taken = store.claim(f"{here}:2:b", lease_s=30)
    assert taken is not None and taken.lease_owner == f"{here}:2:b" and taken.attempts == 2
    # A lease still valid is taken over when its owner on this host is known to be gone.
    assert store.claim(f"{here}:3:c", lease_s=30, alive=lambda owner: True) is None
    orphan = store.claim(f"{here}:3:c", lease_s=30, alive=lambda owner: owner != f"{here}:2:b")
    assert orphan is not None and orphan.lease_owner == f"{here}:3:c"


def test_concurrent_claims_never_take_a_job_twice(opener: Opener) -> None:
    """Four connections (as four worker processes would have) drain 40 jobs at once."""
    setup = opener()
    for i in range(40):
        _enqueue(setup, f"k{i:02d}", f"/rec/{i}.m4a")
    taken: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        own = opener()
        try:
            while (job := own.claim(name, lease_s=30)) is not None:
                with lock:
                    taken.append(job.key)
                own.finish(job.key, _transcript(job.key), 0.0)
        finally:
            own.close()

    workers = [threading.Thread(target=work, args=(f"host:{i}:w",)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(taken) == [f"k{i:02d}" for i in range(40)]
    assert len(setup.jobs(JobState.DONE)) == 40
    setup.close()


def test_requeue_finish_fail_and_retry(store: JobStore) -> None:
    for key in ("k1", "k2"):
        _enqueue(store, key)
    job = store.claim("me", lease_s=30)
    assert job is not None
    store.requeue(job.key, delay_s=3600, error="server busy")
    later = store.job(job.key)
    assert later is not None and later.state is JobState.QUEUED and later.error == "server busy"
    other = store.claim("me", lease_s=30)  # the delayed job is not due; the next one is
    assert other is not None and other.key == "k2"
    store.requeue(other.key, refund_attempt=True)  # a stop is not an attempt
    refunded = store.job("k2")
    assert refunded is not None and refunded.attempts == 0
    again = store.claim("me", lease_s=30)
    assert again is not None and again.key == "k2"
    store.finish("k2", _transcript("t"), 0.25)
    done = store.job("k2")
    assert done is not None and done.state is JobState.DONE and done.transcript == _transcript("t")
    assert done.usd == 0.25 and done.lease_owner is None
    _enqueue(store, "k3")
    claimed = store.claim("me", lease_s=30)
    assert claimed is not None and claimed.key == "k3"
    store.fail("k3", "not audio")
    assert [j.key for j in store.jobs(JobState.FAILED)] == ["k3"]
    assert store.retry_failed(["nope"]) == 0
    assert store.retry_failed([]) == 0
    assert store.retry_failed() == 1
    back = store.job("k3")
    assert back is not None and back.state is JobState.QUEUED and back.attempts == 0 and back.error is None


def test_chunk_results_are_kept_until_the_job_is_redone(store: JobStore) -> None:
    _enqueue(store, "k1")
    store.save_chunk_result("k1", 0, 0.0, 600.0, _result("a"))
    store.save_chunk_result("k1", 1, 600.0, 412.5, _result("b"))
    assert store.chunk_result("k1", 1, 600.0, 412.5) == _result("b")
    assert store.chunk_result("k1", 1, 600.0, 400.0) is None  # cut elsewhere: not the same chunk
    store.save_chunk_result("k1", 1, 600.0, 412.5, _result("c"))
    assert store.chunk_result("k1", 1, 600.0, 412.5) == _result("c")
    store.save_answer("k1", "2@1012.5+30.000 first", _result("d"))
    assert store.answer("k1", "2@1012.5+30.000 first") == _result("d")
    assert store.answer("k1", "2@1012.5+30.000 again") is None and store.answer("k2", "x") is None
    store.redo("k1", Path("/rec/b.m4a"), options={"format": "vtt"})
    redone = store.job("k1")
    assert redone is not None and redone.path == Path("/rec/b.m4a") and redone.state is JobState.QUEUED
    assert redone.options == {"format": "vtt"}  # the asking run's outputs
    assert store.chunk_result("k1", 0, 0.0, 600.0) is None
    assert store.answer("k1", "2@1012.5+30.000 first") is None


def test_a_done_job_reopened_for_a_translation_keeps_its_transcript(store: JobStore) -> None:
    _enqueue(store, "k1")
    assert store.claim("host:1:a", lease_s=30) is not None
    store.save_chunk_result("k1", 0, 0.0, 60.0, _result("a"))
    store.finish("k1", _transcript("a"), 0.006)
    store.save_translation("t-de", "k1", "de", "gpt-5.4-mini", ["Hallo"])
    assert store.translation("t-de") == ["Hallo"] and store.translation("t-fr") is None
    store.reopen("k1", Path("/rec/a.m4a"), options={"translate_to": "fr"}, run_id="r2")
    job = store.job("k1")
    assert job is not None and job.state is JobState.QUEUED and job.run_id == "r2"
    assert job.transcript == _transcript("a") and job.options == {"translate_to": "fr"}
    assert store.chunk_result("k1", 0, 0.0, 60.0) is not None and store.translation("t-de") is not None
    # --force forgets everything the job made: chunks, transcript, translations.
    store.redo("k1", Path("/rec/a.m4a"), options={})
    job = store.job("k1")
    assert job is not None and job.transcript is None
    assert store.chunk_result("k1", 0, 0.0, 60.0) is None and store.translation("t-de") is None


def test_the_ledger_keeps_transcription_and_translation_apart(store: JobStore) -> None:
    line = CostLine(
        "a.m4a",
        60.0,
        1.0,
        "openai",
        "gpt-transcribe",
        0.0045,
        0.0145,
        0.0045,
        Task.TRANSCRIBE,
        transcribe_usd=0.0045,
        translate_model="gpt-5.4-mini",
        translate_to="de",
        translate_input_tokens=1000,
        translate_output_tokens=2000,
        translate_usd=0.01,
    )
    unknown = dataclasses.replace(line, file="b.m4a", translate_model="llama3", translate_usd=None)
    row = store.record_cost("run-1", dataclasses.replace(line, translate_usd=0.0), Spend.RUNNING)
    store.record_cost("run-1", line, Spend.DONE, row=row)
    store.record_cost("run-1", unknown, Spend.DONE)
    assert [r.line for r in store.ledger()] == [line, unknown]


def test_an_unknown_price_stays_unknown_and_its_known_part_counts(store: JobStore) -> None:
    """A model without a known price is NULL in the ledger, not 0; a budget counts what is known of a
    row (a translation priced while its transcription is not)."""
    unknown = CostLine("a.m4a", 60.0, 1.0, "openai", "my-whisper", None, None, None, transcribe_usd=None)
    translated = dataclasses.replace(
        unknown, file="b.m4a", translate_model="gpt-5.4-mini", translate_usd=0.002
    )
    store.record_cost("run-1", unknown, Spend.DONE)
    store.record_cost("run-1", translated, Spend.DONE)
    assert [r.line for r in store.ledger()] == [unknown, translated]
    _enqueue(store, "k")
    check = store.reserve_budget("k", "run-1", 0.001, limit_usd=0.010, this_run_only=True)
    assert check.granted and check.left_usd == pytest.approx(0.008)


def _line(file: str, usd: float) -> CostLine:
    return CostLine(file, 60.0, 1.0, "openai", "whisper-1", 0.006, usd, usd, Task.TRANSCRIBE)


def test_the_ledger_grows_a_row_per_file_and_keeps_its_state(store: JobStore) -> None:
    row = store.record_cost("run-1", _line("a.m4a", 0.002), Spend.RUNNING, job_key="ka")
    assert store.record_cost("run-1", _line("a.m4a", 0.004), Spend.RUNNING, row=row) == row
    store.record_cost("run-1", _line("b.m4a", 0.006), Spend.DONE)
    store.record_cost("run-0", _line("c.m4a", 0.001), Spend.RUNNING)  # a run killed outright
    assert [(r.line.file, r.line.usd, r.state, r.job_key) for r in store.ledger()] == [
        ("a.m4a", 0.004, Spend.RUNNING, "ka"),
        ("b.m4a", 0.006, Spend.DONE, None),
        ("c.m4a", 0.001, Spend.RUNNING, None),
    ]


def test_budget_counts_spent_and_committed_once(store: JobStore) -> None:
    """The $0.010 case: after a $0.006 file, a $0.003 file fits, and a further $0.003 does not."""
    for key in ("a", "b", "c", "d"):
        _enqueue(store, key, f"/rec/{key}.m4a")
    assert store.reserve_budget("a", "svc", 0.006, limit_usd=0.010, this_run_only=False).granted
    row = store.record_cost("svc", _line("a.m4a", 0.004), Spend.RUNNING, job_key="a")  # part paid, held
    # While a is in progress its reservation stands for it: 0.010 - 0.006 left, not 0.010 - 0.010.
    held = store.reserve_budget("b", "svc", 0.005, limit_usd=0.010, this_run_only=False)
    assert not held.granted and held.left_usd == pytest.approx(0.004)
    store.record_cost("svc", _line("a.m4a", 0.006), Spend.DONE, job_key="a", row=row)
    store.release_budget("a")
    fits = store.reserve_budget("b", "svc", 0.003, limit_usd=0.010, this_run_only=False)
    assert fits.granted and fits.left_usd == pytest.approx(0.004)
    store.record_cost("svc", _line("b.m4a", 0.003), Spend.DONE, job_key="b")
    store.release_budget("b")
    refused = store.reserve_budget("c", "svc", 0.003, limit_usd=0.010, this_run_only=False)
    assert not refused.granted and refused.left_usd == pytest.approx(0.001)
    # A one-off run's budget counts only that run's spend.
    assert store.reserve_budget("d", "run-2", 0.003, limit_usd=0.005, this_run_only=True).granted
    assert not store.reserve_budget("c", "run-2", 0.003, limit_usd=0.005, this_run_only=True).granted


def test_an_old_database_upgrades_in_place(tmp_path: Path) -> None:
    """A database from before jobs carried runs and options gets migration 004 and keeps its rows."""
    path = tmp_path / "old.sqlite3"
    db = old_database(path, 3)
    db.execute(
        "INSERT INTO jobs (key, content_sha256, task, path, state, created_at, updated_at)"
        " VALUES ('old', 'sha', 'transcribe', '/rec/a.m4a', 'done', 0, 0)"
    )
    db.execute(
        "INSERT INTO ledger (run_id, recorded_at, file, task, engine, model, audio_s, billed_min,"
        " usd_per_min, usd, api_equivalent_usd) VALUES ('r', 0, 'a.m4a', 'transcribe', 'openai',"
        " 'whisper-1', 60, 1, 0.006, 0.006, 0.006)"
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        old = store.job("old")
        assert old is not None and old.state is JobState.DONE and old.options == {} and old.run_id is None
        assert store.migrate() == []
        assert [r.line.transcribe_usd for r in store.ledger()] == [0.006]  # an old row's usd: transcription
    finally:
        store.close()


def test_a_ledger_from_before_unknown_prices_upgrades_with_its_rows(tmp_path: Path) -> None:
    """Migration 006 rebuilds the ledger with nullable prices: its rows keep their order and values,
    and new rows, priced or not, follow them."""
    path = tmp_path / "old.sqlite3"
    db = old_database(path, 5)
    for file, usd in (("a.m4a", 0.006), ("b.m4a", 0.003)):
        db.execute(
            "INSERT INTO ledger (run_id, recorded_at, file, task, engine, model, audio_s, billed_min,"
            " usd_per_min, usd, api_equivalent_usd, transcribe_usd, job_key, state) VALUES ('r', 0, ?,"
            " 'transcribe', 'openai', 'whisper-1', 60, 1, 0.006, ?, ?, ?, 'k', 'done')",
            (file, usd, usd, usd),
        )
    db.commit()
    db.close()
    store = SqliteStore(path)
    try:
        unknown = dataclasses.replace(_line("c.m4a", 0.0), usd_per_min=None, usd=None, transcribe_usd=None)
        store.record_cost("r2", unknown, Spend.DONE)
        rows = store.ledger()
        assert [(r.line.file, r.line.usd, r.job_key) for r in rows] == [
            ("a.m4a", 0.006, "k"),
            ("b.m4a", 0.003, "k"),
            ("c.m4a", None, None),
        ]
        assert rows[0].line == dataclasses.replace(_line("a.m4a", 0.006), transcribe_usd=0.006)
        assert store.migrate() == []
    finally:
        store.close()


def test_reopening_keeps_everything_and_applies_no_migration_twice(opener: Opener) -> None:
    first = opener()
    _enqueue(first, "k1")
    first.record_cost("run-1", _line("a.m4a", 0.5), Spend.DONE)
    first.close()
    again = opener()
    try:
        assert [j.key for j in again.jobs()] == ["k1"]
        assert [r.line.usd for r in again.ledger()] == [0.5]
        assert again.migrate() == []
    finally:
        again.close()


def test_an_idle_worker_wakes_when_a_job_is_enqueued(opener: Opener) -> None:
    """PostgreSQL: LISTEN/NOTIFY ends the wait (with a 10-minute timeout it would otherwise hang the
    test); SQLite: the wait is a short poll."""
    waiter, sender = opener(), opener()
    woke = threading.Event()
    waiter.wait_for_work(0.01)  # starts listening

    def wait() -> None:
        waiter.wait_for_work(600)
        woke.set()

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    _enqueue(sender, "k1")
    assert woke.wait(120)
    assert waiter.claim("host:1:a", lease_s=30) is not None
    waiter.close()
    sender.close()


def test_sqlite_wakes_its_own_idle_workers_at_once(tmp_path: Path) -> None:
    """Another process's commit is seen at the next poll; a job this process enqueues (a run admitting
    files while its workers already wait) ends their wait without one (a 10-minute poll here)."""
    store = SqliteStore(tmp_path / "state.sqlite3", poll_s=600)
    woke = threading.Event()

    def wait() -> None:
        store.wait_for_work(600)
        woke.set()

    threading.Thread(target=wait, daemon=True).start()
    for i in range(600):  # an enqueue before the waiter is asleep goes unheard: enqueue until it wakes
        _enqueue(store, f"k{i}")
        if woke.wait(0.2):
            break
    assert woke.is_set()
    store.close()


def test_every_cost_line_field_has_its_ledger_column() -> None:
    """The ledger's statements name each column: a field added to `CostLine` must be added to them."""
    fields = {f.name for f in dataclasses.fields(CostLine)}
    assert fields <= set(queries.INSERT_COST.names) and fields <= set(queries.UPDATE_COST.names)


def test_every_sqlite_statement_is_valid_sql(tmp_path: Path) -> None:
    """Each named statement SQLite runs compiles against the migrated schema (EXPLAIN runs nothing)."""
    store = SqliteStore(tmp_path / "state.sqlite3")
    try:
        statements = [v for v in vars(queries).values() if isinstance(v, queries.Query) and v.sqlite]
        assert len(statements) > 30
        db = sqlite3.connect(tmp_path / "state.sqlite3")
        for query in statements:
            text = (query.sqlite or "").format_map({name: f":{name}" for name in query.names})
            db.execute("EXPLAIN " + text, dict.fromkeys(query.names))
        db.close()
    finally:
        store.close()
