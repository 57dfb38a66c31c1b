"""Running jobs until done or told to stop: one loop for one-off runs, the watcher and workers.

`serve` is that loop: it owns the signals (Ctrl-C and SIGTERM alike), calls the source of jobs (the
watcher's `tick`, or nothing), and ends when the command's condition holds. On the first signal no
new work starts and the loop says what it is waiting for; requests still in flight after the grace
period, or at a second signal, are abandoned (their cost goes in the ledger). Either way this
process's jobs go back to the queue, so the next run, or another worker, resumes them from their
stored chunks. The watcher's guarantees (once per content, restarts, half-copied files) come from
`jobs.py` and `watcher.py`; this module only decides when to stop.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import writers
from .errors import StoreError, WhisperbatchError
from .jobs import JobRunner
from .models import FileResult, JobState, RunSummary
from .pipeline import FileFinished
from .watcher import FolderWatcher, is_candidate


@dataclass(frozen=True)
class Interruption:
    """A run stopped by Ctrl-C or SIGTERM."""

    signum: int
    # Files left in progress when requests in flight were abandoned, and files never started (both
    # empty if the run wound down within the grace period).
    unfinished: tuple[Path, ...] = ()
    not_started: tuple[Path, ...] = ()

    @property
    def abandoned(self) -> bool:
        """Requests were left in flight: the process must exit without waiting for them."""
        return bool(self.unfinished)


def serve(
    runner: JobRunner,
    *,
    done: Callable[[], bool],
    tick: Callable[[], None] = lambda: None,
    grace_s: float,
    poll_s: float = 0.2,
) -> Interruption | None:
    """Run `runner`'s workers, calling `tick` every `poll_s`, until `done()` or a signal; `done()` is
    also asked at once and whenever the last busy worker finishes, so a run ends with its last job.
    Call from the main thread (signal handlers can only be set there)."""
    signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # a signal, or None: look again now
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: signals.put(signum)) for sig in watched}
    runner.on_idle = lambda: signals.put(None)
    signals.put(None)  # workers that went idle before on_idle was set are seen here
    first: int | None = None
    deadline = math.inf
    try:
        while True:
            try:
                signum = signals.get(timeout=poll_s)
            except queue.Empty:
                signum = None
            if first is None and signum is None:
                tick()
                if done():
                    runner.wind_down(grace_s)
                    return None
            elif first is None and signum is not None:
                first = signum
                runner.stop.set()
                deadline = time.monotonic() + grace_s
                runner.say(_waiting_line(first, runner.in_flight(), grace_s))
            elif first is None:
                continue
            elif signum is not None or time.monotonic() > deadline:
                unfinished = tuple(runner.abandon())
                runner.wind_down(0.0)
                return Interruption(first, unfinished)
            elif not runner.busy():
                runner.wind_down(0.0)
                return Interruption(first)
    finally:
        runner.on_idle = lambda: None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _waiting_line(signum: int, in_flight: dict[Path, int], grace_s: float) -> str:
    name = signal.Signals(signum).name
    waiting = {path: n for path, n in in_flight.items() if n}  # files between requests give nothing up
    if not waiting:
        return f"stopping ({name}): no new work"
    requests = sum(waiting.values())
    files = ", ".join(str(p) for p in waiting)
    return (
        f"stopping ({name}): no new work; {requests} request(s) in flight for {files} are given up after "
        f"{grace_s:.0f} s (again to stop now); their cost goes in the ledger"
    )


def run_files(
    runner: JobRunner, files: Sequence[Path], *, force: bool
) -> tuple[RunSummary, Interruption | None]:
    """A one-off run: each file becomes a job of this run, the workers run them, and the run ends when
    all have ended or the budget, quota or key stopped it. Raises UnwritableOutput before any work.

    Files become jobs (each is hashed for its key) in a thread of their own while the workers already
    run the first ones: a batch of large recordings does not wait for every hash before the first
    upload. A signal stops the admitting too; files never admitted are "not started"."""
    pipeline = runner.pipeline
    pipeline.plan_outputs(files)
    pipeline.check_writable(files, runner.task)
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
                    job = runner.admit(path, force=force)
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
    interruption = serve(runner, done=ended, grace_s=runner.settings.shutdown_grace_s)
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
        engine=pipeline.engine.name,
        model=pipeline.engine.model,
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
        runner.write_from_store(job, path)
        return runner.from_store.get(path) or _done(runner, path)
    if job is not None and job.state is JobState.FAILED:
        return FileResult(source=path, error=job.error)
    how = "not finished" if key in sent else "not started"
    result = FileResult(source=path, error=f"{path}: {how}: the run was stopped")
    if interruption is None or not interruption.abandoned:
        runner.on_event(FileFinished(result))
    return result


def _done(runner: JobRunner, path: Path) -> FileResult:
    """An input whose outputs were there already, or were written from the stored transcript."""
    return FileResult(source=path, outputs=tuple(runner.pipeline.output_paths(path, runner.task)))


class Service:
    """`watch`: settled files in a folder become jobs; workers (unless `--no-work`) run them."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        root: Path,
        recursive: bool = False,
        polling: bool = False,
        force: bool = False,
        once: bool = False,
    ) -> None:
        self.runner = runner
        self.root = root
        self.recursive = recursive
        self.force = force
        settings = runner.settings
        self.watcher = FolderWatcher(
            root, settle_s=settings.settle_s, recursive=recursive, polling=polling, rescan_s=settings.rescan_s
        )
        # --once: a file still changing this long after it was found is reported, not waited for.
        self.give_up_s = max(30.0, 5 * settings.settle_s) if once else None
        self.unsettled: list[Path] = []
        self.working = True

    def start(self, *, work: bool = True) -> None:
        """Raises UnwritableOutput, before watching, when outputs could not be written."""
        writers.check_writable(self.runner.settings.out_dir or self.root)
        self.watcher.start()
        if not self.recursive:
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and is_candidate(p)):
                self.runner.say(f"{folder}: a folder, not a recording; skipped (--recursive looks inside)")
        self.working = work
        if work:
            self.runner.start()

    def tick(self) -> None:
        """Admit whatever has settled; called regularly by `serve`."""
        ready = self.watcher.poll()
        if ready:
            # With --out-dir, recordings anywhere in the tree share one folder: one walk per batch.
            tree = list(self.watcher.files()) if self.runner.settings.out_dir else []
            self.runner.pipeline.plan_outputs(ready, tree)
        for path in ready:
            try:
                self.runner.admit(path, force=self.force)
            except WhisperbatchError as e:
                self.runner.say(f"{e}, skipped")
        if self.give_up_s is not None:
            for path in self.watcher.tracker.give_up(self.give_up_s):
                self.unsettled.append(path)
                self.runner.say(
                    f"failed: {path}: still being written after {self.give_up_s:.0f} s, not taken"
                )

    def settled(self) -> bool:
        """Nothing settling, and (unless only enqueueing) nothing running or runnable queued (for --once)."""
        return not self.watcher.tracker.pending and (not self.working or self.runner.idle())

    def stop(self) -> None:
        self.watcher.stop()
