"""A job's progress and its cancel in the store: counters every host reads, the ETA they give, and a
cancel that ends a queued job at once and marks a running one for its worker.

The tests that take a store run on PostgreSQL too (tests/integration/test_store_postgres.py)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from unit.test_store import _transcript
from unit.test_store import opener as opener  # the store contract's fixtures
from unit.test_store import store as store
from whisperbatch.errors import Cancelled
from whisperbatch.jobs.progress import JobProgress
from whisperbatch.models import JobState, Task
from whisperbatch.pipeline import ChunkDone, ChunksCounted, FileStarted
from whisperbatch.pipeline.turns import Turns
from whisperbatch.store import CANCELLED, Job, JobStore, SqliteStore


def _enqueue(store: JobStore, key: str) -> None:
    store.enqueue(key, "sha-" + key, Task.TRANSCRIBE, Path(f"/rec/{key}.m4a"), 100, 1)


def _job(store: JobStore, key: str) -> Job:
    job = store.job(key)
    assert job is not None
    return job


def test_a_run_counts_its_chunks_and_the_next_run_counts_afresh(store: JobStore) -> None:
    _enqueue(store, "k1")
    fresh = _job(store, "k1")
    assert (fresh.chunks_done, fresh.chunks_total, fresh.audio_s, fresh.started_at) == (0, None, None, None)
    assert fresh.progress is None and fresh.eta_s(0.0) is None and not fresh.cancel_requested
    assert store.claim("host:1:a", lease_s=30) is not None
    store.job_started("k1", 120.0)
    assert store.chunk_done("k1", 30.0) is False
    assert store.chunk_done("k1", 45.5) is False
    store.chunks_counted("k1", 4)
    running = _job(store, "k1")
    assert (running.chunks_done, running.chunks_total, running.audio_s) == (2, 4, 120.0)
    assert running.audio_done_s == 75.5 and running.started_at is not None
    assert running.progress == 75.5 / 120.0
    store.requeue("k1", refund_attempt=True)  # stopped: the counts stay until it runs again
    assert _job(store, "k1").chunks_done == 2
    assert store.claim("host:1:a", lease_s=30) is not None
    again = _job(store, "k1")
    assert (again.chunks_done, again.audio_done_s, again.chunks_total) == (0, 0.0, None)
    assert again.started_at is None
    assert again.audio_s == 120.0  # the same content: as long as before
    store.finish("k1", _transcript("t"), 0.1)
    assert _job(store, "k1").progress == 1.0


def test_eta_goes_at_the_pace_since_the_run_began() -> None:
    job = Job(1, "k", "sha", Task.TRANSCRIBE, Path("/a.m4a"), JobState.RUNNING, 1, None, None, 0.0)
    started = dataclasses.replace(job, audio_s=600.0, started_at=1000.0)
    assert started.eta_s(1010.0) is None  # nothing done yet: no pace to go by
    halfway = dataclasses.replace(started, audio_done_s=200.0, chunks_done=5)
    assert halfway.eta_s(1040.0) == 80.0  # 200 s of audio in 40 s: 400 s left take 80 s
    assert halfway.progress == 1 / 3
    assert dataclasses.replace(halfway, audio_done_s=650.0).eta_s(1040.0) == 0.0
    assert dataclasses.replace(halfway, state=JobState.QUEUED).eta_s(1040.0) is None
    counted = dataclasses.replace(job, chunks_done=3, chunks_total=4)  # not probed: by chunks
    assert counted.progress == 0.75


def test_a_queued_job_is_cancelled_at_once_and_a_finished_one_is_left(store: JobStore) -> None:
    for key in ("done", "queued"):
        _enqueue(store, key)
    assert store.cancel("nope") is None
    finished = store.claim("host:1:a", lease_s=30)
    assert finished is not None and finished.key == "done"
    store.finish("done", _transcript("t"), 0.0)
    cancelled = store.cancel("queued")
    assert cancelled is not None and cancelled.state is JobState.FAILED and cancelled.error == CANCELLED
    assert cancelled.cancelled and not cancelled.cancel_requested
    assert store.claim("host:1:a", lease_s=30) is None  # nothing left to run
    kept = store.cancel("done")
    assert kept is not None and kept.state is JobState.DONE and not kept.cancelled
    assert store.retry_failed(["queued"]) == 1  # a cancelled job can be asked for again
    assert _job(store, "queued").state is JobState.QUEUED


def test_a_running_job_is_marked_and_its_worker_sees_it(store: JobStore) -> None:
    for key in ("mine", "theirs", "also-mine"):
        _enqueue(store, key)
    assert store.claim("host:1:a", lease_s=30) is not None
    assert store.claim("host:2:b", lease_s=30) is not None
    assert store.claim("host:1:a", lease_s=30) is not None
    assert store.cancels("host:1:a") == []
    for key in ("mine", "theirs"):
        asked = store.cancel(key)
        assert asked is not None and asked.state is JobState.RUNNING and asked.cancel_requested
    assert store.cancels("host:1:a") == ["mine"] and store.cancels("host:2:b") == ["theirs"]
    assert store.chunk_done("mine", 10.0) is True  # told on its next chunk, too
    assert store.chunk_done("also-mine", 10.0) is False
    store.fail("mine", CANCELLED)
    assert store.cancels("host:1:a") == []
    assert store.retry_failed(["mine"]) == 1  # asked for again, it runs: the cancel is forgotten
    rerun = store.claim("host:1:a", lease_s=30)
    assert rerun is not None and rerun.key == "mine" and not rerun.cancel_requested


def _chunk_done(job: Job, index: int, covered_s: float) -> ChunkDone:
    end_s = 20.0 * (index + 1)
    return ChunkDone(job.path, job.key, index, end_s, covered_s, duration_s=60.0, uploaded=True)


def test_the_jobs_running_here_are_counted_and_stopped_by_a_cancel_from_anywhere(store: JobStore) -> None:
    """A cancel asked here stops its job at once; one asked elsewhere, when a chunk of the job is
    answered or the lease's heartbeat looks."""
    for key in ("here", "on-chunk", "on-heartbeat"):
        _enqueue(store, key)
    jobs = [store.claim("host:1:a", lease_s=30) for _ in range(3)]
    here, on_chunk, on_heartbeat = (j for j in jobs if j is not None)
    progress = JobProgress(store)
    with (
        progress.running(here) as stop_here,
        progress.running(on_chunk) as stop_on_chunk,
        progress.running(on_heartbeat) as stop_on_heartbeat,
    ):
        progress.record(FileStarted(here.path, here.key, 60.0))
        progress.record(_chunk_done(here, 0, 20.0))
        progress.record(ChunksCounted(here.path, here.key, 3))
        counted = _job(store, "here")
        assert (counted.chunks_done, counted.chunks_total, counted.audio_done_s, counted.audio_s) == (
            1,
            3,
            20.0,
            60.0,
        )
        asked = progress.cancel("here")
        assert asked is not None and asked.cancel_requested and stop_here.is_set()
        assert not stop_on_chunk.is_set() and not stop_on_heartbeat.is_set()
        store.cancel("on-chunk")  # elsewhere: seen on the job's next chunk
        progress.record(_chunk_done(on_chunk, 0, 20.0))
        assert stop_on_chunk.is_set() and not stop_on_heartbeat.is_set()
        store.cancel("on-heartbeat")
        progress.look("host:1:a")
        assert stop_on_heartbeat.is_set()
    store.requeue("here")
    again = store.claim("host:1:a", lease_s=30)
    assert again is not None and again.key == "here"
    with progress.running(again) as stop:  # a cancel asked before this worker took it
        assert stop.is_set()


def test_progress_that_cannot_be_kept_does_not_stop_the_job(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    _enqueue(store, "k1")
    job = _job(store, "k1")
    store.close()  # every statement now fails
    JobProgress(store).record(_chunk_done(job, 0, 20.0))


def test_a_file_waiting_for_its_turn_stops_when_its_job_is_cancelled() -> None:
    """A job claimed, its chunks ready, but behind another file at `-j 1`, is not left to wait its turn."""
    turns, stop, cancel = Turns(1), threading.Event(), threading.Event()

    def check() -> None:
        if cancel.is_set():
            raise Cancelled("b.m4a: cancelled")

    with turns.queue(1) as first, turns.queue(2) as second:
        first(stop, check)
        cancel.set()
        with pytest.raises(Cancelled):
            second(stop, check)
