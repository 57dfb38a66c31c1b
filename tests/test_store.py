"""The job store's contract: what every backend must do, tested through the `JobStore` protocol alone.

`store` is parametrised by backend, so a new backend runs the same tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from whisperbatch.models import CostLine, JobState, Spend, Task
from whisperbatch.store import JobStore, SqliteStore

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


def _enqueue(store: JobStore, key: str, path: str = "/rec/a.m4a") -> None:
    store.enqueue(key, "sha-" + key, Task.TRANSCRIBE, Path(path), 100, 1)


def test_enqueue_is_idempotent_and_remembers_the_file(store: JobStore) -> None:
    first = store.enqueue("k1", "sha", Task.TRANSCRIBE, Path("/rec/a.m4a"), 100, 7)
    again = store.enqueue("k1", "sha", Task.TRANSCRIBE, Path("/rec/renamed.m4a"), 100, 8)
    assert first.id == again.id and again.state is JobState.QUEUED and again.path == Path("/rec/a.m4a")
    assert store.seen(Path("/rec/a.m4a"), 100, 7) == "k1"
    assert store.seen(Path("/rec/a.m4a"), 100, 9) is None  # another version of the file
    assert [j.key for j in store.jobs()] == ["k1"] and store.jobs(JobState.DONE) == []


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


def test_an_expired_or_orphaned_lease_is_taken_over(store: JobStore) -> None:
    _enqueue(store, "k1")
    assert store.claim("host:1:a", lease_s=0.01) is not None
    time.sleep(0.05)
    taken = store.claim("host:2:b", lease_s=30)
    assert taken is not None and taken.lease_owner == "host:2:b" and taken.attempts == 2
    # A lease still valid is taken over when its owner is known to be gone.
    assert store.claim("host:3:c", lease_s=30, alive=lambda owner: True) is None
    orphan = store.claim("host:3:c", lease_s=30, alive=lambda owner: owner != "host:2:b")
    assert orphan is not None and orphan.lease_owner == "host:3:c"


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
    store.finish("k2", '{"t": 1}', 0.25)
    done = store.job("k2")
    assert done is not None and done.state is JobState.DONE and done.transcript == '{"t": 1}'
    assert done.usd == 0.25 and done.lease_owner is None
    _enqueue(store, "k3")
    claimed = store.claim("me", lease_s=30)
    assert claimed is not None and claimed.key == "k3"
    store.fail("k3", "not audio")
    assert [j.key for j in store.jobs(JobState.FAILED)] == ["k3"]
    assert store.retry_failed(["nope"]) == 0
    assert store.retry_failed() == 1
    back = store.job("k3")
    assert back is not None and back.state is JobState.QUEUED and back.attempts == 0 and back.error is None


def test_chunk_results_are_kept_until_the_job_is_redone(store: JobStore) -> None:
    _enqueue(store, "k1")
    store.save_chunk_result("k1", 0, 0.0, 600.0, '{"text": "a"}')
    store.save_chunk_result("k1", 1, 600.0, 412.5, '{"text": "b"}')
    assert store.chunk_result("k1", 1, 600.0, 412.5) == '{"text": "b"}'
    assert store.chunk_result("k1", 1, 600.0, 400.0) is None  # cut elsewhere: not the same chunk
    store.save_chunk_result("k1", 1, 600.0, 412.5, '{"text": "c"}')
    assert store.chunk_result("k1", 1, 600.0, 412.5) == '{"text": "c"}'
    store.redo("k1", Path("/rec/b.m4a"))
    redone = store.job("k1")
    assert redone is not None and redone.path == Path("/rec/b.m4a") and redone.state is JobState.QUEUED
    assert store.chunk_result("k1", 0, 0.0, 600.0) is None


def _line(file: str, usd: float) -> CostLine:
    return CostLine(file, 60.0, 1.0, "openai", "whisper-1", 0.006, usd, usd, Task.TRANSCRIBE)


def test_the_ledger_grows_a_row_per_file_and_keeps_its_state(store: JobStore) -> None:
    row = store.record_cost("run-1", _line("a.m4a", 0.002), Spend.RUNNING)
    assert store.record_cost("run-1", _line("a.m4a", 0.004), Spend.RUNNING, row) == row
    store.record_cost("run-1", _line("b.m4a", 0.006), Spend.DONE)
    store.record_cost("run-0", _line("c.m4a", 0.001), Spend.RUNNING)  # a run killed outright
    assert [(r.line.file, r.line.usd, r.state) for r in store.ledger()] == [
        ("a.m4a", 0.004, Spend.RUNNING),
        ("b.m4a", 0.006, Spend.DONE),
        ("c.m4a", 0.001, Spend.RUNNING),
    ]
    assert store.total_spent_usd() == pytest.approx(0.011)
    # A run's own files in progress are reserved separately, not counted twice.
    assert store.total_spent_usd(except_running_in="run-1") == pytest.approx(0.007)
    store.record_cost("run-1", _line("a.m4a", 0.004), Spend.UNFINISHED, row)
    assert store.total_spent_usd(except_running_in="run-1") == pytest.approx(0.011)


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
