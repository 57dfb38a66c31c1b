"""The job runner in-process against the loopback server: a run ends with its last job, and the next
files are prepared while every request slot is busy."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from conftest import copy_sample, wait_for
from whisperbatch.audio import find_ffmpeg
from whisperbatch.config import Settings, load_settings
from whisperbatch.engines import select_engine
from whisperbatch.jobs import ONE_OFF, JobRunner, serve
from whisperbatch.models import JobState, Task
from whisperbatch.session import Session
from whisperbatch.store import open_store
from whisperbatch.testing import FakeOpenAI, unauthorized


def test_a_run_ends_with_its_last_job_not_at_the_next_poll(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` looks again as soon as the last busy worker finishes: with a 10-minute poll, a run of one
    job still ends once the job is done."""
    for name, value in api_env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({})
    store = open_store(settings.store_options())
    engine = select_engine(settings.engine_options(), Task.TRANSCRIBE)
    runner = Session(settings, find_ffmpeg(), engine, store, Task.TRANSCRIBE, None).runner(ONE_OFF)
    f = copy_sample("talk.m4a", tmp_path / "in")
    runner.outputs.plan([f])
    job = runner.admission.admit(f, force=False)
    assert job is not None
    runner.start()

    def done() -> bool:
        ours = store.job(job.key)
        return not runner.busy() and ours is not None and ours.state is JobState.DONE

    # Without the look on idle this waits out the poll, and pytest-timeout fails the test.
    assert serve(runner, done=done, grace_s=1.0, poll_s=600) is None
    assert f.with_suffix(".txt").exists() and fake_openai.count == 1
    store.close()


@pytest.mark.parametrize("answer", ["transcript", "key refused"])
def test_the_next_files_are_prepared_while_every_request_slot_is_busy(
    answer: str,
    api_env: dict[str, str],
    fake_openai: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At `-j 1` the one request slot waits on the server for the first recording while the next ones
    are claimed and their chunks encoded, so the next request does not wait on audio; requests in
    flight stay at one. A refused key stops them all before another request goes out. Under a
    budget, files at once stay at `-j`."""
    for name, value in {**api_env, "WHISPERBATCH_CONCURRENCY": "1"}.items():
        monkeypatch.setenv(name, value)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    settings = load_settings({})
    store = open_store(settings.store_options())
    engine = select_engine(settings.engine_options(), Task.TRANSCRIBE)

    def runner_for(s: Settings) -> JobRunner:
        return Session(s, find_ffmpeg(), engine, store, Task.TRANSCRIBE, None).runner(ONE_OFF)

    assert runner_for(dataclasses.replace(settings, budget_usd=5.0)).files_at_once() == 1
    runner = runner_for(settings)
    assert runner.files_at_once() > 2
    files = [copy_sample(name, tmp_path / "in") for name in ("talk.m4a", "morning.mp3", "script.ogg")]
    runner.outputs.plan(files)
    keys = [job.key for f in files if (job := runner.admission.admit(f, force=False)) is not None]
    fake_openai.hold_after = 0
    runner.start()

    def folders_with_chunks() -> int:
        return len({p.parent for p in scratch.rglob("chunk-*.mp3")})

    ready = "every recording's chunks, with one request held"
    wait_for(lambda: folders_with_chunks() == 3 and fake_openai.arrived >= 1, ready)
    assert fake_openai.arrived == 1
    if answer == "key refused":
        fake_openai.inject(unauthorized())
    fake_openai.release()

    def states() -> list[JobState | None]:
        return [job.state if (job := store.job(key)) else None for key in keys]

    assert serve(runner, done=runner.idle, grace_s=1.0) is None
    if answer == "transcript":
        assert states() == [JobState.DONE] * 3
        assert all(f.with_suffix(".txt").exists() for f in files)
        assert [u.status for u in fake_openai.uploads] == [200] * fake_openai.arrived
    else:
        assert fake_openai.arrived == 1 and runner.paused_reason and "401" in runner.paused_reason
        assert states() == [JobState.QUEUED] * 3  # the next run resumes them, no attempt counted
        assert not any(f.with_suffix(".txt").exists() for f in files)
    store.close()
