"""A job's progress and its cancel, in a real job runner over SQLite against the loopback server: the
progress every host reads moves as chunks are answered, and a job cancelled from another connection
(a server that runs no jobs itself) stops before its next request, keeps what it paid for, and leaves
the runner's other jobs to finish."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import copy_sample, wait_for
from whisperbatch.audio import Chunker, find_ffmpeg
from whisperbatch.config import load_settings
from whisperbatch.engines import select_engine
from whisperbatch.jobs import SERVICE
from whisperbatch.models import JobState, Spend, Task
from whisperbatch.pipeline import Event, FileFinished
from whisperbatch.session import Session
from whisperbatch.store import CANCELLED, Job, JobStore, open_store
from whisperbatch.testing import FakeOpenAI


def _job(store: JobStore, key: str) -> Job:
    job = store.job(key)
    assert job is not None
    return job


def test_a_cancelled_job_stops_before_its_next_request_and_keeps_what_it_paid(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At `-j 1` a recording of several chunks is answered two chunks in, its third request held at the
    server: its progress shows two chunks done. Cancelled from another connection, it sends no other
    request once the third is answered, and ends failed "cancelled" with its three answers stored and
    billed; the next job goes on. Asked for again, it sends only the chunks it had not paid for."""
    for name, value in {**api_env, "WHISPERBATCH_CONCURRENCY": "1"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({})
    store = open_store(settings.store_options())
    elsewhere = open_store(settings.store_options())  # a server that runs no jobs: only the store
    engine = select_engine(settings.engine_options(), Task.TRANSCRIBE)
    events: list[Event] = []
    runner = Session(settings, find_ffmpeg(), engine, store, Task.TRANSCRIBE, None).runner(
        SERVICE, on_event=events.append
    )
    long, short = (copy_sample(name, tmp_path / "in") for name in ("script.ogg", "talk.m4a"))
    params = runner.pipeline.chunks.params
    chunks_total = len(list(Chunker(long, ffmpeg=find_ffmpeg(), workdir=tmp_path, params=params).plan()))
    assert chunks_total >= 5
    runner.outputs.plan([long, short])
    cancelled, other = (runner.admission.admit(f, force=False) for f in (long, short))
    assert cancelled is not None and other is not None
    fake_openai.hold_after = 2
    runner.start()
    try:
        wait_for(
            lambda: fake_openai.arrived == 3 and _job(store, cancelled.key).chunks_done == 2, "2 answers"
        )
        running = _job(elsewhere, cancelled.key)
        assert running.state is JobState.RUNNING and running.chunks_total is None
        assert running.audio_s is not None and 0 < running.audio_done_s <= running.audio_s
        assert running.progress is not None and 0 < running.progress < 1
        eta_s = running.eta_s(time.time())
        assert eta_s is not None and eta_s > 0

        asked = elsewhere.cancel(cancelled.key)
        assert asked is not None and asked.cancel_requested and asked.state is JobState.RUNNING
        fake_openai.release()
        wait_for(lambda: _job(store, other.key).state is JobState.DONE, "the other job done")
        ended = _job(elsewhere, cancelled.key)
        assert ended.state is JobState.FAILED and ended.error == CANCELLED and ended.cancelled
        assert ended.chunks_done == 3
        sent = fake_openai.count - 1  # the other job sent one
        assert sent == 3 < chunks_total
        (row,) = [r for r in store.ledger() if r.job_key == cancelled.key]
        assert row.state is Spend.UNFINISHED and row.line.billed_min > 0
        told = [e.result for e in events if isinstance(e, FileFinished) and e.result.source == long]
        assert [r.error for r in told] == [f"{long}: cancelled"]
        assert short.with_suffix(".txt").exists() and not long.with_suffix(".txt").exists()

        assert elsewhere.retry_failed([cancelled.key]) == 1  # asked for again: resumes, nothing paid twice
        wait_for(lambda: _job(store, cancelled.key).state is JobState.DONE, "the cancelled job redone")
        assert fake_openai.count - 1 == chunks_total
        done = _job(store, cancelled.key)
        assert done.chunks_total == chunks_total and done.chunks_done == chunks_total and done.progress == 1.0
    finally:
        runner.wind_down(1.0)
        runner.close()
        elsewhere.close()
        store.close()
