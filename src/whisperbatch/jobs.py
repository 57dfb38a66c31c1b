"""Every run is jobs: a recording becomes a job in the store, and one runner's workers run jobs.

`transcribe`, `translate`, `watch` and `worker` differ only in where jobs come from and when the
process exits; this module is what they share:

- **A job is its content and options.** Its key is the recording's SHA-256 plus task, engine, model,
  language and prompt: the same recording under two names, dropped again or run again, is one job,
  transcribed once; other names of it get their outputs from the stored transcript, with no upload.
  The job also keeps its output options (`JobOptions`), so a worker on another host runs it alike.
  The language a chat model translates into is an option, not part of the key: translating one
  recording into three languages transcribes it once (a done job is queued again to translate).
- **Nothing paid for is lost.** Each chunk's result is stored as it arrives, before anything else can
  fail, so a run stopped any way at all (Ctrl-C, `kill -9`, a quota stop) resumes by uploading only
  the chunks still missing, and says how many it kept.
- **Leases.** A worker holds a lease on each job it runs and renews it; a job whose lease ran out, or
  whose owner on this host is gone, is taken over.
- **One policy.** One `RetryPolicy`, one `Budget`, one stop signal. A one-off run (`one_off`) runs
  only its own jobs, tries each file once, scopes its budget to itself and ends when a fatal error or
  the budget stops it; the service (a watcher runs its folder's jobs, a worker any job) tries a file
  again later, counts its budget over the whole ledger and pauses its queue instead.
- **Outputs are a job's.** The store records which recording and job wrote each output, so outputs are
  up to date only when this very recording (content and options) wrote them, and a recording that
  changed while it was transcribed gets none (`SourceChanged`) and keeps nothing of that run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import audio, writers
from .config import Settings
from .engines import EngineOptions, select_engine
from .engines.base import Engine
from .errors import (
    AudioError,
    BudgetExceeded,
    ConfigError,
    FatalEngineError,
    RetriesExhausted,
    SourceChanged,
    Stopped,
    StoreError,
    WhisperbatchError,
    cause_chain,
)
from .models import FileResult, JobState, Task
from .pipeline import Event, FileFinished, Notice, Pipeline, files_preparing, new_run_id
from .policy import Budget, require_prices
from .scratch import pid_alive
from .store import Job, JobStore
from .translate import Translator

ERROR_SUFFIX = ".error.txt"
STORE_RETRY_S = 5.0  # a worker that cannot reach the store tries again after this long
# An idle worker looks for work again after this long at most (a job whose retry delay ran out wakes
# nobody); PostgreSQL's NOTIFY wakes it at once when a job is enqueued, SQLite's store polls sooner.
IDLE_WAIT_S = 5.0


@dataclass(frozen=True)
class JobOptions:
    """What a job is run with, kept in the store so any worker runs it as it was asked for."""

    engine: str
    model: str
    language: str | None = None
    prompt: str | None = None
    format: str = "txt,srt"
    out_dir: str | None = None
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: int | None = None
    translate_to: str | None = None  # a chat model translates the transcript into this language
    translate_model: str | None = None

    @classmethod
    def of(cls, settings: Settings, engine: Engine, translate_to: str | None = None) -> JobOptions:
        return cls(
            engine=engine.name,
            model=engine.model,
            language=settings.language,
            prompt=settings.prompt,
            format=settings.format,
            out_dir=None if settings.out_dir is None else str(settings.out_dir.absolute()),
            max_line_width=settings.max_line_width,
            max_line_count=settings.max_line_count,
            max_words_per_line=settings.max_words_per_line,
            translate_to=translate_to,
            translate_model=settings.translate_model if translate_to else None,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOptions | None:
        """None for jobs made before options were kept (they run with the runner's own settings)."""
        return cls(**data) if data else None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    def settings(self, base: Settings) -> Settings:
        """`base` (this host's key, URL, concurrency, paths) with the job's own options."""
        fields = dataclasses.asdict(self)
        fields["out_dir"] = None if self.out_dir is None else Path(self.out_dir)
        for name in ("translate_to", "translate_model"):  # the host's own unless the job translates
            if fields[name] is None:
                del fields[name]
        return dataclasses.replace(base, **fields)

    def key(self, sha256: str, task: Task) -> str:
        """The job key: content plus whatever changes the transcript (not the output format)."""
        identity = json.dumps(
            [str(task), self.engine, self.model, self.language, self.prompt], separators=(",", ":")
        )
        return hashlib.sha256(f"{sha256}|{identity}".encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Version:
    """What tells one version of a file from the next without reading it: a write changes its size,
    mtime or ctime, and a file renamed over it has another inode."""

    dev: int = 0
    inode: int = 0
    size_bytes: int = -1
    mtime_ns: int = 0
    ctime_ns: int = 0

    @classmethod
    def of(cls, st: os.stat_result) -> Version:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


_CHANGED = "changed while it was transcribed: no outputs written; run it again for what it holds now"


def error_file(path: Path) -> Path:
    """Where the service writes a failed recording's reason: `<name>.error.txt` beside it."""
    return path.with_name(path.name + ERROR_SUFFIX)


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


class JobRunner:
    """The one worker loop, for every command that runs jobs.

    `engine` and `settings` are the run's own; a job that was enqueued with other options (by
    `enqueue` or another host's watcher) gets a pipeline built for them on first use. A one-off run
    takes only the jobs it admitted; a watcher (`folder`) those and the jobs of recordings in its
    folder; a worker any job.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        store: JobStore,
        ffmpeg: str,
        task: Task,
        one_off: bool,
        on_event: Callable[[Event], None] = lambda e: None,
        engine_for: Callable[[EngineOptions, Task], Engine] = select_engine,
        translate_to: str | None = None,
        folder: Path | None = None,
    ) -> None:
        self.settings = settings
        self.folder = folder
        self.store = store
        self.ffmpeg = ffmpeg
        self.task = task
        self.one_off = one_off
        self.on_event = on_event
        self.engine_for = engine_for
        self.run_id = new_run_id()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()  # the one stop signal: no new job, chunk or attempt starts
        self.policy = settings.retry_policy(job_max_attempts=1 if one_off else None)
        self.budget = Budget(store, settings.budget_usd, self.run_id, this_run_only=one_off)
        self.options = JobOptions.of(settings, engine, translate_to)
        self.pipeline = self._new_pipeline(settings, engine, translating=translate_to is not None)
        self._pipelines: dict[tuple[str, Task], Pipeline] = {(self.options.to_json(), task): self.pipeline}
        self._pipelines_lock = threading.Lock()
        self.results: dict[str, FileResult] = {}  # a one-off run's jobs that ended in this process
        self.extra_paths: dict[str, set[Path]] = {}  # other names of a job's recording
        self.from_store: dict[Path, FileResult] = {}  # a one-off run's inputs written from the store
        self.failed_keys: set[str] = set()
        self.paused_reason: str | None = None
        self._paused_until = 0.0
        self._halt_until = 0.0  # requests held back until then (`halted`)
        self._pause_lock = threading.Lock()
        self._forced: set[str] = set()  # with --force, each job is redone once per run or service life
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.on_idle: Callable[[], None] = lambda: None  # called when the last busy worker finishes
        self._claiming = threading.Lock()  # a claim, or a pause and the requeue that goes with it

    def say(self, message: str) -> None:
        self.on_event(Notice(message))

    def _new_pipeline(self, settings: Settings, engine: Engine, *, translating: bool) -> Pipeline:
        return Pipeline(
            settings,
            engine,
            ffmpeg=self.ffmpeg,
            store=self.store,
            on_event=self.on_event,
            run_id=self.run_id,
            stop=self.stop,
            budget=self.budget,
            policy=self.policy,
            translator=Translator.from_options(settings.translation_options()) if translating else None,
            halted=self.halted,
            on_fatal=self._fatal,
        )

    def pipeline_for(self, job: Job) -> Pipeline:
        """The pipeline for a job's own options (raises ConfigError when this host cannot run them, or
        cannot price them under its budget: a job may name another model than this host's)."""
        options = JobOptions.from_dict(job.options) or self.options
        with self._pipelines_lock:
            pipeline = self._pipelines.get((options.to_json(), job.task))
            if pipeline is None:
                settings = options.settings(self.settings)
                engine = self.engine_for(settings.engine_options(), job.task)
                pipeline = self._new_pipeline(settings, engine, translating=options.translate_to is not None)
                self._pipelines[(options.to_json(), job.task)] = pipeline
        chat = None if pipeline.translator is None else pipeline.translator.info
        try:
            require_prices(pipeline.settings.budget_usd, pipeline.engine.info, chat)
        except ConfigError as e:
            raise ConfigError(f"{job.path}: not started: {e}") from e
        return pipeline

    # ---- admission: a recording becomes a job ------------------------------------------------------

    def admit(self, path: Path, *, force: bool) -> Job | None:
        """Find or create `path`'s job; a recording already transcribed gets its outputs now, from the
        stored transcript. Its outputs' names must be planned first (`Pipeline.plan_outputs`).
        Returns None when its outputs are up to date (written from this very job); raises AudioError
        when it cannot be read, OutputError when its outputs could not be written."""
        pipeline = self.pipeline
        audio.check_readable(path)
        pipeline.check_names(path, self.task)
        try:
            st = path.stat()
            sha = self.store.seen(path, st.st_size, st.st_mtime_ns) or file_sha256(path)
            key = self.options.key(sha, self.task)
            if not force and pipeline.up_to_date(path, self.task, key):
                if self.one_off:
                    self.say(f"{path}: outputs are up to date, skipped (use --force to redo)")
                return None
            job = self.store.enqueue(
                key,
                sha,
                self.task,
                path,
                st.st_size,
                st.st_mtime_ns,
                options=self.options.as_dict(),
                run_id=self.run_id,
            )
        except OSError as e:
            raise AudioError(path, f"cannot read ({e.strerror or e})") from e
        if force and job.state in (JobState.DONE, JobState.FAILED) and key not in self._forced:
            self._forced.add(key)
            self.store.redo(key, path, options=self.options.as_dict(), run_id=self.run_id)
            self.say(f"{path}: done again from the start (--force)")
        elif job.state is JobState.DONE and self.write_from_store(job, path) is None:
            self.store.reopen(key, path, options=self.options.as_dict(), run_id=self.run_id)
            self.say(f"{path}: transcribed before; translating into {self.options.translate_to}, no upload")
        elif job.state is JobState.FAILED and self.one_off:  # asked for again: tried again, for this file
            self.store.reopen(key, path, options=self.options.as_dict(), run_id=self.run_id)
        elif job.state is JobState.FAILED:
            if not error_file(path).exists():
                same = "" if job.path == path else f"same recording as {job.path}, which "
                self.say(f"{path}: {same}failed before ({job.error}); `whisperbatch retry` requeues it")
        elif job.path != path:
            self.extra_paths.setdefault(key, set()).add(path)
        elif not self.one_off:
            self.say(f"{path}: picked up")
        return self.store.job(key)

    def write_from_store(self, job: Job, path: Path) -> tuple[Path, ...] | None:
        """Outputs for `path` from job's stored transcript (nothing sent); () when none were written, None
        when this run asks for a translation the store does not have yet."""
        pipeline = self.pipeline
        if job.transcript is None or pipeline.up_to_date(path, job.task, job.key):
            return ()
        try:
            result = pipeline.write_stored(path, job.task, job.key, job.transcript, same_as=job.path)
        except WhisperbatchError as e:
            self.say(f"{path}: {e}")
            return ()
        if result is None:
            return None
        if self.one_off:
            self.from_store[path] = result
        same = "" if job.path == path else f"same recording as {job.path.name}, "
        self.say(f"{path}: {same}outputs written from the stored transcript, no upload")
        return result.outputs

    # ---- workers -----------------------------------------------------------------------------------

    def files_at_once(self) -> int:
        """Files in progress at once: `concurrency`, and with a server as many more as are prepared at
        once, plus one waiting to be. Their chunks are decoded, scored and encoded while every request
        slot is busy, so a slot that frees finds the next file's chunk ready instead of idling while it
        is prepared (measured on 2 cores: 40 files of 30 s at `-j 8`, 10.3 s before and 9.5 s after;
        8 files of 3 minutes at `-j 1`, 75.2 s and 72.7 s, the sum of the answers being 71.1 s). Not
        under a budget, where each file in progress holds its worst-case reservation, and not with the
        local engine, whose requests are this host's own work."""
        ahead = files_preparing() + 1
        server = self.pipeline.engine.parallel_chunks and self.settings.budget_usd is None
        return self.settings.concurrency + (ahead if server else 0)

    def start(self, workers: int | None = None) -> None:
        for i in range(self.files_at_once() if workers is None else workers):
            threading.Thread(target=self._worker, name=f"wb-worker-{i}", daemon=True).start()
        threading.Thread(target=self._heartbeat, name="wb-lease", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self.stop.wait(self.settings.lease_s / 3):
            try:
                self.store.renew(self.owner, self.settings.lease_s)
            except Exception as e:  # the store is away: leases may lapse, the work goes on
                self.say(f"cannot renew leases ({type(e).__name__}: {e}); trying again")

    def _worker(self) -> None:
        while not self.stop.is_set():
            with self._busy_lock:  # counted as busy from before the claim, so idle() never sees a gap
                self._busy += 1
            job = None
            try:
                with self._claiming:
                    if not self.paused():
                        job = self.store.claim(
                            self.owner,
                            self.settings.lease_s,
                            owner_alive,
                            run_id=self.run_id if self.one_off or self.folder else None,
                            folder=self.folder,
                        )
                if job is not None:
                    self.run_job(job)
            except StoreError as e:  # a full disk, a damaged file, a server gone
                self._fatal(e)
                if not self.one_off:
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
            pipeline = self.pipeline_for(job)
            if not path.exists():
                raise AudioError(path, "file disappeared before it was processed, or is not readable here")
            version = self._holds(job, "changed since it was queued; not sent")
            result = pipeline.process_file(
                path,
                job.task,
                job.key,
                order=job.id,
                unchanged=lambda: self._holds(job, _CHANGED, unless=version),
            )
        except Stopped:
            with contextlib.suppress(StoreError):  # a failed store: the lease lapses, the next run resumes it
                self.store.requeue(job.key, refund_attempt=True)
            return
        except StoreError as e:  # not the file's fault: nothing more can be kept, so nothing is sent
            self._fatal(e)
            with contextlib.suppress(StoreError):
                self.store.requeue(job.key, refund_attempt=True)
            return
        except (BudgetExceeded, FatalEngineError) as e:
            with self._claiming:  # paused before the job is back in the queue: no worker here takes it
                self.pause(str(e), seconds=self._pause_s(e))
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
        self._resumed()
        assert result.transcript is not None and result.cost is not None
        self.store.finish(job.key, result.transcript, result.cost.usd)
        if not self.one_off:
            error_file(path).unlink(missing_ok=True)
        kept = result.chunks_total - result.chunks_uploaded
        if kept:
            self.say(f"{path}: resumed: {kept} of {result.chunks_total} chunks kept")
        self._tell(job.key, result)
        finished = self.store.job(job.key)
        for extra in sorted(self.extra_paths.pop(job.key, set())):
            if finished is not None:
                self.write_from_store(finished, extra)

    def _holds(self, job: Job, changed: str, *, unless: Version | None = None) -> Version:
        """The version of the file at job's path (stat facts that change when its bytes do), after
        making sure it holds job's recording: hashed again unless it is `unless` (the version checked
        before), or a version hashed before. A file gone meanwhile is not checked (what was decoded
        was whole). Raises SourceChanged with `changed` as the reason."""
        try:
            st = job.path.stat()
        except FileNotFoundError:
            return unless or Version()
        version = Version.of(st)
        if version == unless or self.store.seen(job.path, st.st_size, st.st_mtime_ns) == job.content_sha256:
            return version
        try:
            sha = file_sha256(job.path)
        except OSError as e:
            raise AudioError(job.path, f"cannot read ({e.strerror or e})") from e
        if sha != job.content_sha256:
            raise SourceChanged(job.path, changed)
        return version

    def _failed(self, job: Job, error: WhisperbatchError, *, forget: bool = False) -> None:
        reason = str(error)
        self.store.fail(job.key, reason, forget=forget)
        self.failed_keys.add(job.key)
        if not self.one_off:
            with contextlib.suppress(WhisperbatchError):  # the reason is in the store and the log either way
                writers.atomic_write_text(error_file(job.path), reason + "\n")
        self._tell(job.key, FileResult(source=job.path, error=reason, causes=cause_chain(error)))

    def _tell(self, key: str, result: FileResult) -> None:
        """A job ended here: say so, and keep its result for a one-off run's summary (a service, which
        runs for months, keeps none)."""
        if self.one_off:
            self.results[key] = result
        self.on_event(FileFinished(result))

    # ---- pauses: quota, key, budget ----------------------------------------------------------------

    def _pause_s(self, error: BudgetExceeded | FatalEngineError | StoreError) -> float | None:
        """How long the queue pauses after `error`: for good after a budget refusal or in a one-off run."""
        return None if isinstance(error, BudgetExceeded) or self.one_off else self.settings.pause_s

    def _fatal(self, error: FatalEngineError | StoreError) -> None:
        """A server refused this host's key, quota or model: pause the queue, and let no request go out
        until the pause ends. Called where the answer arrives, before the file that got it unwinds, so
        no other file in progress sends one meanwhile (each would only be refused the same way).

        A store that cannot be written would lose every answer paid for from then on: a one-off run
        stops at once (what is stored is kept, and the same command resumes from it); the service holds
        its requests back for a while, and its workers try the store again."""
        if isinstance(error, StoreError) and not self.one_off:
            with self._pause_lock:
                fresh = time.monotonic() >= self._halt_until
                self._halt_until = max(self._halt_until, time.monotonic() + STORE_RETRY_S)
            if fresh:
                self.say(f"job store error ({error}); no request goes out for {STORE_RETRY_S:.0f} s")
            return
        self.pause(str(error), seconds=self._pause_s(error), halt=True)

    def halted(self) -> bool:
        """Whether requests are held back after a fatal answer (a budget pause lets files already
        started finish within their reservations)."""
        with self._pause_lock:
            return time.monotonic() < self._halt_until

    def pause(self, reason: str, *, seconds: float | None, halt: bool = False) -> None:
        """Stop taking jobs: for a while (a rejected key or quota may come back), or for good (the
        budget; a one-off run then ends, leaving its jobs queued for the next run). With `halt`, no
        request goes out either until then (`halted`)."""
        with self._pause_lock:
            fresh = self.paused_reason != reason
            self.paused_reason = reason
            self._paused_until = float("inf") if seconds is None else time.monotonic() + seconds
            if halt:
                self._halt_until = self._paused_until
        if fresh and not self.one_off:
            when = "until restarted" if seconds is None else f"for {seconds:.0f} s, then trying again"
            self.say(f"queue paused {when}: {reason}")

    def paused(self) -> bool:
        with self._pause_lock:
            if self.paused_reason is None:
                return False
            if time.monotonic() < self._paused_until:
                return True
            self._paused_until = float("inf")  # one worker probes; success clears the pause
            return False

    def _resumed(self) -> None:
        with self._pause_lock:
            if self.paused_reason is None:
                return
            self.paused_reason = None
            self._halt_until = 0.0
        self.say("queue resumed")

    # ---- how the run stands ------------------------------------------------------------------------

    def busy(self) -> bool:
        with self._busy_lock:
            return self._busy > 0

    def idle(self) -> bool:
        """No worker busy and nothing runnable queued for this runner (or its queue is paused)."""
        if self.busy():
            return False
        queued = self.store.jobs(JobState.QUEUED, run_id=self.run_id if self.one_off else None)
        if self.folder is not None:  # as `claim` takes them
            queued = [j for j in queued if j.run_id == self.run_id or j.path.is_relative_to(self.folder)]
        return not queued or self.paused()

    def in_flight(self) -> dict[Path, int]:
        with self._pipelines_lock:
            pipelines = list(self._pipelines.values())
        return {path: n for p in pipelines for path, n in p.in_flight().items()}

    def sent(self) -> set[str]:
        """Jobs this process has sent a request for (one whose file was only prepared is not started)."""
        with self._pipelines_lock:
            pipelines = list(self._pipelines.values())
        return {key for p in pipelines for key in p.sent()}

    def abandon(self) -> list[Path]:
        """Give up requests in flight (their cost goes in the ledger); returns the files left unfinished."""
        self.stop.set()
        with self._pipelines_lock:
            pipelines = list(self._pipelines.values())
        return [path for p in pipelines for path in p.abandon()]

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
        with self._pipelines_lock:
            for pipeline in self._pipelines.values():
                pipeline.close()
