"""The watch service: settled files become durable jobs, and workers run them through the pipeline.

Guarantees and how they are kept:
- **Once per content**: a job is keyed by the file's SHA-256 plus task, engine, model, language and
  prompt. The same recording dropped again or renamed finds its job done and gets its outputs from
  the stored transcript, with no upload. A changed file hashes differently and is done again.
- **Restarts and crashes**: jobs live in SQLite. A worker holds a lease it keeps renewing; a job whose
  lease ran out, or whose owner process is gone, is taken again. Every finished chunk's result is
  stored as it arrives, so a resumed job uploads only the chunks still missing.
- **Stopping**: no new work is taken, requests in flight get a grace period, unfinished jobs go back
  to the queue, and outputs are only ever written whole.
- **Quota, key, budget**: these pause the queue with one message instead of failing every file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import writers
from .config import Settings
from .engines.base import Engine
from .errors import (
    AudioError,
    BudgetExceeded,
    FatalEngineError,
    RetriesExhausted,
    Stopped,
    WhisperbatchError,
)
from .models import (
    Chunk,
    EngineResult,
    JobState,
    RunSummary,
    Task,
    result_from_json,
    result_to_json,
    transcript_from_json,
    transcript_to_json,
)
from .pipeline import Event, Notice, Pipeline
from .scratch import pid_alive
from .store import Job, JobStore
from .watcher import FolderWatcher, is_candidate

ERROR_SUFFIX = ".error.txt"
STOP_GRACE_S = 2.0  # how long a one-off run waits for requests in flight once told to stop


@dataclass(frozen=True)
class Interruption:
    """A one-off run stopped by Ctrl-C or SIGTERM."""

    signum: int
    # Files left in progress when requests in flight were abandoned, and files never started (both
    # empty if the run wound down within the grace period: the summary then lists every file).
    unfinished: tuple[Path, ...]
    not_started: tuple[Path, ...] = ()

    @property
    def abandoned(self) -> bool:
        """Requests were left in flight: the process must exit without waiting for them."""
        return bool(self.unfinished)


def run_interruptibly(
    pipeline: Pipeline,
    files: Sequence[Path],
    task: Task,
    *,
    force: bool,
    say: Callable[[str], None],
    grace_s: float = STOP_GRACE_S,
) -> tuple[RunSummary | None, Interruption | None]:
    """A one-off run where Ctrl-C and SIGTERM behave alike.

    The first signal stops new work at once and says what the run is waiting for; requests still in
    flight after `grace_s`, or at a second signal, are abandoned (`Pipeline.abandon` puts what they
    cost in the ledger) and the summary is None: the caller must exit without waiting for them.
    Call from the main thread (signal handlers can only be set there).
    """
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: signals.put(signum)) for sig in watched}
    outcome: list[RunSummary | BaseException] = []

    def work() -> None:
        try:
            outcome.append(pipeline.run(files, task, force=force))
        except BaseException as e:  # handed to the main thread below
            outcome.append(e)

    runner = threading.Thread(target=work, name="wb-run", daemon=True)
    runner.start()
    first: int | None = None
    deadline = math.inf
    try:
        while runner.is_alive():
            runner.join(0.05)
            try:
                signum: int | None = signals.get_nowait()
            except queue.Empty:
                signum = None
            if signum is not None and first is None:
                first = signum
                pipeline.stop.set()
                deadline = time.monotonic() + grace_s
                say(_waiting_line(signum, pipeline.in_flight(), grace_s))
            elif first is not None and (signum is not None or time.monotonic() > deadline):
                unfinished = tuple(pipeline.abandon())
                if unfinished:
                    left = set(unfinished) | pipeline.finished
                    return None, Interruption(first, unfinished, tuple(f for f in files if f not in left))
                deadline = math.inf  # nothing was in progress: the run is ending by itself
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result, None if first is None else Interruption(first, ())


def _waiting_line(signum: int, in_flight: dict[Path, int], grace_s: float) -> str:
    name = signal.Signals(signum).name
    if not in_flight:
        return f"stopping ({name}): no new work"
    requests = sum(in_flight.values())
    files = ", ".join(str(p) for p in in_flight)
    return (
        f"stopping ({name}): no new work; {requests} request(s) in flight for {files} are given up after "
        f"{grace_s:.0f} s (again to stop now); their cost goes in the ledger"
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def error_file(path: Path) -> Path:
    """Where a failed recording's reason is written: `<name>.error.txt` beside it."""
    return path.with_name(path.name + ERROR_SUFFIX)


class StoreChunkCache:
    """The pipeline's ChunkCache, backed by the job store."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def get(self, key: str, chunk: Chunk) -> EngineResult | None:
        text = self.store.chunk_result(key, chunk.index, chunk.offset_s, chunk.duration_s)
        return None if text is None else result_from_json(text)

    def put(self, key: str, chunk: Chunk, result: EngineResult) -> None:
        self.store.save_chunk_result(
            key, chunk.index, chunk.offset_s, chunk.duration_s, result_to_json(result)
        )


def _owner_alive(owner: str) -> bool:
    """Whether the process named in a lease still runs (only knowable on this host)."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine: trust the lease's expiry
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # a previous life of this very pid (containers restart as pid 1): not us
    return pid_alive(pid)


class Service:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        root: Path,
        task: Task,
        ffmpeg: str,
        store: JobStore,
        on_event: Callable[[Event], None] = lambda e: None,
        recursive: bool = False,
        polling: bool = False,
        force: bool = False,
        once: bool = False,
    ) -> None:
        self.settings = settings
        self.root = root
        self.task = task
        self.store = store
        self.on_event = on_event
        self.pipeline = Pipeline(settings, engine, ffmpeg=ffmpeg, store=store, on_event=on_event)
        self.pipeline.budget_is_lifetime = True
        self.watcher = FolderWatcher(
            root, settle_s=settings.settle_s, recursive=recursive, polling=polling, rescan_s=settings.rescan_s
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self._options = json.dumps(
            [str(task), engine.name, engine.model, settings.language, settings.prompt], separators=(",", ":")
        )
        self._paused_until = 0.0
        self._pause_lock = threading.Lock()
        self.paused_reason: str | None = None
        self.failed_keys: set[str] = set()
        self._extra_paths: dict[str, set[Path]] = {}
        self.force = force
        # --once: a file still changing this long after it was found is reported, not waited for.
        self.give_up_s = max(30.0, 5 * settings.settle_s) if once else None
        self.unsettled: list[Path] = []
        self.recursive = recursive
        self._forced: set[str] = set()  # with --force, each job is redone once per service life
        self._workers: list[threading.Thread] = []
        self._busy = 0
        self._busy_lock = threading.Lock()

    def say(self, message: str) -> None:
        self.on_event(Notice(message))

    # ---- admission ---------------------------------------------------------------------------------

    def job_key(self, sha256: str) -> str:
        return hashlib.sha256(f"{sha256}|{self._options}".encode()).hexdigest()

    def admit(self, path: Path) -> Job | None:
        """A settled file: find or create its job; a duplicate of finished work gets its outputs now.
        Its outputs' names must be planned first (`tick` does, for each batch of settled files)."""
        try:
            st = path.stat()
            key = self.store.seen(path, st.st_size, st.st_mtime_ns)
            sha = None
            if key is None:
                sha = file_sha256(path)
                key = self.job_key(sha)
            job = self.store.enqueue(key, sha or "", self.task, path, st.st_size, st.st_mtime_ns)
        except OSError as e:
            self.say(f"{path}: cannot read ({e.strerror or e}), skipped")
            return None
        if self.force and job.state in (JobState.DONE, JobState.FAILED) and key not in self._forced:
            self._forced.add(key)
            self.store.redo(key, path)
            self.say(f"{path}: picked up (--force: done again)")
        elif job.state is JobState.DONE:
            self._write_from_store(job, path)
        elif job.state is JobState.FAILED:
            if not error_file(path).exists():
                self.say(f"{path}: failed before ({job.error}); `whisperbatch retry` requeues it")
        elif job.path != path:
            self._extra_paths.setdefault(key, set()).add(path)
        else:
            self.say(f"{path}: picked up")
        return job

    def _write_from_store(self, job: Job, path: Path) -> None:
        if job.transcript is None or self.pipeline.up_to_date(path, self.task):
            return
        transcript = transcript_from_json(job.transcript)
        try:
            writers.write_outputs(
                transcript, self.pipeline.output_paths(path, self.task), self.pipeline.style, None
            )
        except WhisperbatchError as e:
            self.say(f"{path}: {e}")
            return
        self.say(
            f"{path}: same recording as {job.path.name}, outputs written from the stored result, no upload"
        )

    # ---- workers -----------------------------------------------------------------------------------

    def pause(self, reason: str, *, seconds: float | None) -> None:
        with self._pause_lock:
            fresh = self.paused_reason != reason
            self.paused_reason = reason
            self._paused_until = float("inf") if seconds is None else time.monotonic() + seconds
        if fresh:
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

    def _worker(self) -> None:
        while not self.stopping.is_set():
            with self._busy_lock:  # counted as busy from before the claim, so idle() never sees a gap
                self._busy += 1
            try:
                job = (
                    None
                    if self.paused()
                    else self.store.claim(self.owner, self.settings.lease_s, _owner_alive)
                )
                if job is not None:
                    self.run_job(job)
            finally:
                with self._busy_lock:
                    self._busy -= 1
            if job is None:
                self.stopping.wait(0.2)

    def run_job(self, job: Job) -> None:
        path = job.path
        try:
            if not path.exists():
                raise AudioError(path, "file disappeared before it was processed")
            result = self.pipeline.process_file(
                path, self.task, force=True, cache=StoreChunkCache(self.store), cache_key=job.key
            )
        except Stopped:
            self.store.requeue(job.key, refund_attempt=True)
            return
        except BudgetExceeded as e:
            self.store.requeue(job.key, refund_attempt=True)
            self.pause(str(e), seconds=None)
            return
        except FatalEngineError as e:
            self.store.requeue(job.key, refund_attempt=True)
            self.pause(str(e), seconds=self.settings.pause_s)
            return
        except RetriesExhausted as e:
            if job.attempts < self.settings.job_max_attempts:
                delay = self.settings.retry_max_s * job.attempts
                self.store.requeue(job.key, delay_s=delay, error=str(e))
                self.say(f"{path}: {e}; will try the file again in {delay:.0f} s")
                return
            self._failed(job, str(e))
            return
        except WhisperbatchError as e:
            self._failed(job, str(e))
            return
        except Exception as e:  # a bug must not take the service down; the job says what happened
            self._failed(job, f"{path}: internal error ({type(e).__name__}: {e})")
            return
        with self._pause_lock:
            if self.paused_reason is not None:
                self.paused_reason = None
                self.say("queue resumed")
        assert result.transcript is not None and result.cost is not None
        self.store.finish(job.key, transcript_to_json(result.transcript), result.cost.usd)
        error_file(path).unlink(missing_ok=True)
        cached = result.chunks_total - result.chunks_uploaded
        self.say(
            f"{path}: done, {result.chunks_total} chunks ({result.chunks_uploaded} uploaded"
            f"{f', {cached} from before a restart' if cached else ''}), ${result.cost.usd:.4f}"
            f" -> {', '.join(o.name for o in result.outputs)}"
        )
        finished = self.store.job(job.key)
        for extra in sorted(self._extra_paths.pop(job.key, set())):
            if finished is not None:
                self._write_from_store(finished, extra)

    def _failed(self, job: Job, reason: str) -> None:
        self.store.fail(job.key, reason)
        self.failed_keys.add(job.key)
        with contextlib.suppress(WhisperbatchError):  # the reason is in the store and the log either way
            writers.atomic_write_text(error_file(job.path), reason + "\n")
        self.say(f"failed: {reason}")

    # ---- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Raises UnwritableOutput, before watching, when outputs could not be written."""
        writers.check_writable(self.settings.out_dir or self.root)
        self.watcher.start()
        if not self.recursive:
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and is_candidate(p)):
                self.say(f"{folder}: a folder, not a recording; skipped (--recursive looks inside)")
        for i in range(self.settings.concurrency):
            t = threading.Thread(target=self._worker, name=f"wb-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        threading.Thread(target=self._heartbeat, name="wb-lease", daemon=True).start()

    def _heartbeat(self) -> None:
        while not self.stopping.wait(self.settings.lease_s / 3):
            self.store.renew(self.owner, self.settings.lease_s)

    def tick(self) -> None:
        """Admit whatever has settled; call this regularly from the main thread."""
        ready = self.watcher.poll()
        if ready:
            # With --out-dir, recordings anywhere in the tree share one folder: one walk per batch.
            tree = list(self.watcher.files()) if self.settings.out_dir else []
            self.pipeline.plan_outputs(ready, tree)
        for path in ready:
            self.admit(path)
        if self.give_up_s is not None:
            for path in self.watcher.tracker.give_up(self.give_up_s):
                self.unsettled.append(path)
                self.say(f"failed: {path}: still being written after {self.give_up_s:.0f} s, not taken")

    def idle(self) -> bool:
        """Nothing settling, nothing running, nothing runnable queued (for --once)."""
        with self._busy_lock:
            busy = self._busy
        if busy or self.watcher.tracker.pending:
            return False
        queued = self.store.jobs(JobState.QUEUED)
        return not queued or self.paused()

    def stop(self) -> None:
        """Take no new work, give requests in flight a grace period, requeue what is unfinished."""
        self.stopping.set()
        self.pipeline.stop.set()  # no new chunk or attempt starts; a request in flight may finish
        self.watcher.stop()
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        for t in self._workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._workers):
            self.pipeline.abandon()  # what the requests still in flight cost goes in the ledger
        for job in self.store.jobs(JobState.RUNNING):
            if job.lease_owner == self.owner:
                self.store.requeue(job.key, refund_attempt=True)
        self.pipeline.close()
