"""The one worker loop, for every command that runs jobs.

A worker holds a lease on each job it runs and renews it; a job whose lease ran out, or whose owner on
this host is gone, is taken over. Every job's requests go through the runner's one `Gate`, whatever
options the job was made with, so `-j` bounds the requests in flight for the whole process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import writers
from ..engines import EngineOptions, select_engine
from ..engines.base import Engine
from ..errors import (
    AudioError,
    BudgetExceeded,
    Cancelled,
    ConfigError,
    FatalEngineError,
    RetriesExhausted,
    SourceChanged,
    Stopped,
    StoreError,
    WhisperbatchError,
    cause_chain,
)
from ..models import FileResult, JobState, Task
from ..pipeline import (
    Event,
    FileFinished,
    Gate,
    GateOptions,
    Notice,
    OutputBook,
    Pipeline,
    files_preparing,
)
from ..policy import Budget, RetryPolicy, require_prices
from ..scratch import pid_alive
from ..store import CANCELLED, Job, JobStore
from ..translate import Translator
from .admission import Admission, error_file
from .content import holds
from .mode import RunMode
from .options import JobOptions, JobSetup
from .pauses import STORE_RETRY_S, Pauses
from .progress import JobProgress

# An idle worker looks for work again after this long at most (a job whose retry delay ran out wakes
# nobody); PostgreSQL's NOTIFY wakes it at once when a job is enqueued, SQLite's store polls sooner.
IDLE_WAIT_S = 5.0
_CHANGED = "changed while it was transcribed: no outputs written; run it again for what it holds now"


def new_run_id() -> str:
    """A run's name in the ledger: when it started, and a random tail."""
    return time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]


def owner_alive(owner: str) -> bool:
    """Whether the process named in a lease still runs (only knowable on this host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease's expiry
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # a previous life of this very pid (containers restart as pid 1): not us
    return pid_alive(pid)


@dataclass(frozen=True)
class RunnerOptions:
    """What the runner is run with, for every job it runs (configuration builds it)."""

    gate: GateOptions  # requests in flight for the whole process
    policy: RetryPolicy  # requests' retries, and runs of a whole file in the run's mode
    budget_usd: float | None
    pause_s: float  # a service's queue pauses this long after a fatal answer
    lease_s: float
    shutdown_grace_s: float  # after a stop, how long workers may finish what they can


class JobRunner:
    """Runs jobs in `mode`: a one-off run takes only the jobs it admitted; a watcher (`folder`) those
    and the jobs of recordings in its folder; a worker any job.

    `engine` and `own` are the run's own; a job that was enqueued with other options (by `enqueue` or
    another host's watcher) gets a pipeline built from `setup_for(its options)` on first use, sharing
    the gate.
    """

    def __init__(
        self,
        options: RunnerOptions,
        engine: Engine,
        own: JobSetup,
        *,
        setup_for: Callable[[JobOptions], JobSetup],
        store: JobStore,
        ffmpeg: str,
        task: Task,
        mode: RunMode,
        on_event: Callable[[Event], None] = lambda e: None,
        engine_for: Callable[[EngineOptions, Task], Engine] = select_engine,
        folder: Path | None = None,
    ) -> None:
        self.options, self.own, self.setup_for = options, own, setup_for
        self.store, self.ffmpeg, self.task = store, ffmpeg, task
        self.mode, self.folder, self.on_event, self.engine_for = mode, folder, on_event, engine_for
        self.run_id = new_run_id()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()  # the one stop signal: no new job, chunk or attempt starts
        self.policy = options.policy
        self.budget = Budget(store, options.budget_usd, self.run_id, this_run_only=mode.own_jobs_only)
        self.pauses = Pauses(mode, options.pause_s, self.say)
        self.gate = Gate(
            options.gate,
            store=store,
            run_id=self.run_id,
            policy=self.policy,
            stop=self.stop,
            on_event=on_event,
            halted=self.pauses.halted,
            on_fatal=self.pauses.fatal,
        )
        self.book = OutputBook(store, on_event)
        self.progress = JobProgress(store)  # each running job's progress in the store, and its cancel
        self.pipeline = self._new_pipeline(own, engine)
        self.outputs = self.pipeline.outputs  # where the run's own recordings' outputs go
        self._pipelines: dict[tuple[str, Task], Pipeline] = {(own.options.to_json(), task): self.pipeline}
        self._pipelines_lock = threading.Lock()
        self.admission = Admission(
            self.pipeline, own.options, store=store, task=task, mode=mode, run_id=self.run_id, say=self.say
        )
        self.results: dict[str, FileResult] = {}  # jobs that ended in this process (`reports_inputs`)
        self.failed_keys: set[str] = set()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.on_idle: Callable[[], None] = lambda: None  # called when the last busy worker finishes
        self._claiming = threading.Lock()  # a claim, or a pause and the requeue that goes with it

    def say(self, message: str) -> None:
        self.on_event(Notice(message))

    def _new_pipeline(self, setup: JobSetup, engine: Engine) -> Pipeline:
        return Pipeline(
            setup.stages,
            engine,
            gate=self.gate,
            book=self.book,
            ffmpeg=self.ffmpeg,
            store=self.store,
            budget=self.budget,
            translator=None if setup.translation is None else Translator.from_options(setup.translation),
            on_event=self._event,
        )

    def _event(self, event: Event) -> None:
        """A pipeline's event: in its job's row in the store, then told."""
        self.progress.record(event)
        self.on_event(event)

    def cancel(self, key: str) -> Job | None:
        """Cancel a job (`JobQueue.cancel`): queued, it fails at once; running here, it stops before its
        next request; running elsewhere, its worker stops it when it next hears from the store."""
        return self.progress.cancel(key)

    def pipeline_for(self, job: Job) -> Pipeline:
        """The pipeline for a job's own options (raises ConfigError when this host cannot run them, or
        cannot price them under its budget: a job may name another model than this host's)."""
        options = JobOptions.from_dict(job.options) or self.own.options
        with self._pipelines_lock:
            pipeline = self._pipelines.get((options.to_json(), job.task))
            if pipeline is None:
                setup = self.setup_for(options)
                pipeline = self._new_pipeline(setup, self.engine_for(setup.engine, job.task))
                self._pipelines[(options.to_json(), job.task)] = pipeline
        chat = None if pipeline.translator is None else pipeline.translator.info
        try:
            require_prices(self.options.budget_usd, pipeline.engine.info, chat)
        except ConfigError as e:
            raise ConfigError(f"{job.path}: not started: {e}") from e
        return pipeline

    # ---- workers -----------------------------------------------------------------------------------

    def files_at_once(self) -> int:
        """Files in progress at once: `concurrency`, and with a server as many more as are prepared at
        once, plus one waiting to be. Their chunks are decoded, scored and encoded while every request
        slot is busy, so a slot that frees finds the next file's chunk ready instead of idling while it
        is prepared. Not under a budget, where each file in progress holds its worst-case reservation,
        and not with the local engine, whose requests are this host's own work."""
        ahead = files_preparing() + 1
        server = self.pipeline.engine.parallel_chunks and self.options.budget_usd is None
        return self.options.gate.concurrency + (ahead if server else 0)

    def start(self, workers: int | None = None) -> None:
        for i in range(self.files_at_once() if workers is None else workers):
            threading.Thread(target=self._worker, name=f"wb-worker-{i}", daemon=True).start()
        threading.Thread(target=self._heartbeat, name="wb-lease", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self.stop.wait(self.options.lease_s / 3):
            try:
                self.store.renew(self.owner, self.options.lease_s)
                self.progress.look(self.owner)
            except Exception as e:  # the store is away: leases may lapse, the work goes on
                self.say(f"cannot renew leases ({type(e).__name__}: {e}); trying again")

    def _worker(self) -> None:
        while not self.stop.is_set():
            with self._busy_lock:  # counted as busy from before the claim, so idle() never sees a gap
                self._busy += 1
            job = None
            try:
                with self._claiming:
                    if not self.pauses.paused():
                        job = self.store.claim(
                            self.owner,
                            self.options.lease_s,
                            owner_alive,
                            run_id=self.run_id if self.mode.own_jobs_only or self.folder else None,
                            folder=self.folder,
                        )
                if job is not None:
                    self.run_job(job)
            except StoreError as e:  # a full disk, a damaged file, a server gone
                self.pauses.fatal(e)
                if not self.mode.ends_on_fatal:
                    self.say(f"job store error ({e}); trying again in {STORE_RETRY_S:.0f} s")
                    self.stop.wait(STORE_RETRY_S)
            except Exception as e:  # the store is away (a restarted server, the network)
                self.say(f"job store error ({type(e).__name__}: {e}); trying again in {STORE_RETRY_S:.0f} s")
                self.stop.wait(STORE_RETRY_S)
            finally:
                with self._busy_lock:
                    self._busy -= 1
                    idle = self._busy == 0
                if idle:
                    self.on_idle()
            if job is None and not self.stop.is_set():
                self.store.wait_for_work(IDLE_WAIT_S)

    def run_job(self, job: Job) -> None:
        """Run one claimed job to its end: done, failed, or back in the queue (stopped, paused, later)."""
        path = job.path
        try:
            if job.cancel_requested:  # asked while another worker held it
                raise Cancelled(f"{path}: cancelled")
            pipeline = self.pipeline_for(job)
            if not path.exists():
                raise AudioError(path, "file disappeared before it was processed, or is not readable here")
            version = holds(self.store, job, "changed since it was queued; not sent")
            with self.progress.running(job) as cancel:
                result = pipeline.process_file(
                    path,
                    job.task,
                    job.key,
                    order=job.id,
                    unchanged=lambda: holds(self.store, job, _CHANGED, unless=version),
                    cancel=cancel,
                )
        except Cancelled as e:  # its paid answers stay stored, and in the ledger
            self._failed(job, e)
            return
        except Stopped:
            with contextlib.suppress(StoreError):  # a failed store: the lease lapses, the next run resumes it
                self.store.requeue(job.key, refund_attempt=True)
            return
        except StoreError as e:  # not the file's fault: nothing more can be kept, so nothing is sent
            self.pauses.fatal(e)
            with contextlib.suppress(StoreError):
                self.store.requeue(job.key, refund_attempt=True)
            return
        except (BudgetExceeded, FatalEngineError) as e:
            with self._claiming:  # paused before the job is back in the queue: no worker here takes it
                self.pauses.pause(str(e), seconds=self.pauses.length_s(e))
                self.store.requeue(job.key, refund_attempt=True)
            # A one-off run ends here: it says why once, with the reason it stopped, and this file, as
            # every file left, is told as not finished (or not started).
            return
        except RetriesExhausted as e:
            delay = self.policy.job_delay_s(job.attempts)
            if delay is None:
                self._failed(job, e)
            else:
                self.store.requeue(job.key, delay_s=delay, error=str(e))
                self.say(f"{path}: {e}; will try the file again in {delay:.0f} s")
            return
        except SourceChanged as e:  # its answers may be of other audio: not kept for its content
            self._failed(job, e, forget=True)
            return
        except WhisperbatchError as e:
            self._failed(job, e)
            return
        except Exception as e:  # a bug must not take the service down; the job says what happened
            self._failed(job, WhisperbatchError(f"{path}: internal error ({type(e).__name__}: {e})"))
            return
        self._finished(job, result)

    def _finished(self, job: Job, result: FileResult) -> None:
        """A job done: in the store with its transcript, told, and written for its recording's other names."""
        self.pauses.resumed()
        assert result.transcript is not None and result.cost is not None
        self.store.finish(job.key, result.heard or result.transcript, result.cost.usd)
        if self.mode.error_files:
            error_file(job.path).unlink(missing_ok=True)
        kept = result.chunks_total - result.chunks_uploaded
        if kept:
            self.say(f"{job.path}: resumed: {kept} of {result.chunks_total} chunks kept")
        self._tell(job.key, result)
        finished = self.store.job(job.key)
        for extra in sorted(self.admission.extra_paths.pop(job.key, set())):
            if finished is not None:
                self.admission.write_from_store(finished, extra)

    def _failed(self, job: Job, error: WhisperbatchError, *, forget: bool = False) -> None:
        reason = CANCELLED if isinstance(error, Cancelled) else str(error)
        self.store.fail(job.key, reason, forget=forget)
        self.failed_keys.add(job.key)
        if self.mode.error_files:
            with contextlib.suppress(WhisperbatchError):  # the reason is in the store and the log either way
                writers.atomic_write_text(error_file(job.path), reason + "\n")
        self._tell(job.key, FileResult(source=job.path, error=str(error), causes=cause_chain(error)))

    def _tell(self, key: str, result: FileResult) -> None:
        """A job ended here: say so, and keep its result for a one-off run's summary (a service, which
        runs for months, keeps none)."""
        if self.mode.reports_inputs:
            self.results[key] = result
        self.on_event(FileFinished(result))

    # ---- how the run stands ------------------------------------------------------------------------

    @property
    def paused_reason(self) -> str | None:
        """Why the queue is paused (None: it is not)."""
        return self.pauses.reason

    def busy(self) -> bool:
        with self._busy_lock:
            return self._busy > 0

    def idle(self) -> bool:
        """No worker busy and nothing runnable queued for this runner (or its queue is paused)."""
        if self.busy():
            return False
        queued = self.store.jobs(JobState.QUEUED, run_id=self.run_id if self.mode.own_jobs_only else None)
        if self.folder is not None:  # as `claim` takes them
            queued = [j for j in queued if j.run_id == self.run_id or j.path.is_relative_to(self.folder)]
        return not queued or self.pauses.paused()

    def in_flight(self) -> dict[Path, int]:
        return self.gate.in_flight()

    def sent(self) -> set[str]:
        """Jobs this process has sent a request for (one whose file was only prepared is not started)."""
        return self.gate.sent()

    def abandon(self) -> list[Path]:
        """Give up requests in flight (their cost goes in the ledger); returns the files left unfinished."""
        return self.gate.abandon()

    def wind_down(self, grace_s: float) -> None:
        """After a stop: let workers finish what they can for `grace_s`, then put this process's jobs
        back in the queue (without counting the attempt), so the next run or another worker resumes them."""
        self.stop.set()
        deadline = time.monotonic() + grace_s
        while self.busy() and time.monotonic() < deadline:  # idle workers may sleep on: not awaited
            time.sleep(0.05)
        with contextlib.suppress(StoreError):  # a failed store: the leases lapse, the next run resumes
            for job in self.store.jobs(JobState.RUNNING):
                if job.lease_owner == self.owner:
                    self.store.requeue(job.key, refund_attempt=True)

    def close(self) -> None:
        self.gate.close()
        with self._pipelines_lock:
            for pipeline in self._pipelines.values():
                pipeline.close()
