"""A one-off run (`transcribe`, `translate`): the files given become jobs of this run, the workers run
them, and the run ends when all have ended or the budget, quota or key stopped it; each input is
reported on, whatever became of it."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import StoreError, WhisperbatchError
from ..models import FileResult, JobState, RunSummary
from ..pipeline import FileFinished
from .loop import Interruption, serve
from .runner import JobRunner


def run_files(
    runner: JobRunner, files: Sequence[Path], *, force: bool
) -> tuple[RunSummary, Interruption | None]:
    """A one-off run: each file becomes a job of this run, the workers run them, and the run ends when
    all have ended or the budget, quota or key stopped it. Raises UnwritableOutput before any work.

    Files become jobs (each is hashed for its key) in a thread of their own while the workers already
    run the first ones: a batch of large recordings does not wait for every hash before the first
    upload. A signal stops the admitting too; files never admitted are "not started"."""
    runner.outputs.plan(files)
    runner.outputs.check_writable(files, runner.task)
    keys: dict[Path, str] = {}
    told: dict[Path, FileResult] = {}
    admitted = threading.Event()
    failure: list[BaseException] = []

    def admit_all() -> None:
        try:
            for path in files:
                if runner.stop.is_set():
                    return
                try:
                    job = runner.admission.admit(path, force=force)
                except StoreError:  # no file can become a job: the run ends, saying why
                    raise
                except WhisperbatchError as e:
                    told[path] = FileResult(source=path, error=str(e))
                    runner.on_event(FileFinished(told[path]))
                    continue
                if job is None:  # up to date
                    told[path] = _done(runner, path)
                else:
                    keys[path] = job.key
        except BaseException as e:  # the store failed: raised from the main thread below
            failure.append(e)
            runner.stop.set()
        finally:
            admitted.set()

    def ended() -> bool:
        if not admitted.is_set() or runner.busy():
            return False
        if runner.paused_reason is not None or failure:
            return True
        mine = set(keys.values())
        ours = runner.store.jobs(run_id=runner.run_id)  # each of this run's jobs not done at admission
        return all(j.state in (JobState.DONE, JobState.FAILED) for j in ours if j.key in mine)

    runner.start()
    admission = threading.Thread(target=admit_all, name="wb-admit", daemon=True)
    admission.start()
    interruption = serve(runner, done=ended, grace_s=runner.options.shutdown_grace_s)
    admission.join()
    if failure:
        raise failure[0]
    sent = runner.sent()
    results = tuple(
        told.get(path) or _outcome(runner, path, keys.get(path), interruption, sent) for path in files
    )
    if interruption is not None and interruption.abandoned:
        waiting = {j.key for j in runner.store.jobs(JobState.QUEUED, run_id=runner.run_id)}
        not_started = tuple(
            p
            for p in files
            if p not in told and (p not in keys or (keys[p] in waiting and keys[p] not in sent))
        )
        interruption = dataclasses.replace(interruption, not_started=not_started)
    summary = RunSummary(
        results=results,
        stopped_reason=runner.paused_reason,
        engine=runner.pipeline.engine.name,
        model=runner.pipeline.engine.model,
    )
    return summary, interruption


def _outcome(
    runner: JobRunner, path: Path, key: str | None, interruption: Interruption | None, sent: set[str]
) -> FileResult:
    """What became of one input of a one-off run (`key` None: stopped before it became a job; `sent`:
    the jobs with a request sent); an input left unfinished is told (as an event)."""
    ran = None if key is None else runner.results.get(key)
    if ran is not None and ran.source == path:
        return ran
    job = None if key is None else runner.store.job(key)
    if job is not None and job.state is JobState.DONE:  # by another name or process: outputs from the store
        runner.admission.write_from_store(job, path)
        return runner.admission.from_store.get(path) or _done(runner, path)
    if job is not None and job.state is JobState.FAILED:
        return FileResult(source=path, error=job.error)
    how = "not finished" if key in sent else "not started"
    result = FileResult(source=path, error=f"{path}: {how}: the run was stopped")
    if interruption is None or not interruption.abandoned:
        runner.on_event(FileFinished(result))
    return result


def _done(runner: JobRunner, path: Path) -> FileResult:
    """An input whose outputs were there already, or were written from the stored transcript."""
    return FileResult(source=path, outputs=tuple(runner.outputs.output_paths(path, runner.task)))
