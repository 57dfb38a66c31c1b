"""Each running job's progress in the store, and its cancel: what a server shows and does for jobs run by
this process or by workers on other hosts.

The runner hands its pipelines' events here, and they go to the store as they happen (the run began,
a chunk was answered, the recording's chunks were counted). Progress is for showing: a store that
cannot keep a count never fails the job, whose answers are kept on their own path.

A job this process runs has a cancel event of its own, which its pipeline checks before each request
and before writing anything. It is set at once for a cancel asked here (`cancel`), and for one asked
elsewhere when the store says so: on each of the job's chunks answered, and on the lease's heartbeat
(`look`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ..errors import StoreError
from ..pipeline import ChunkDone, ChunksCounted, Event, FileStarted
from ..store import Job, JobQueue


class JobProgress:
    """The progress of the jobs a process runs, kept in the store, and their cancel events."""

    def __init__(self, store: JobQueue) -> None:
        self.store = store
        self._cancels: dict[str, threading.Event] = {}  # the jobs running here, by key
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self, job: Job) -> Iterator[threading.Event]:
        """The job's cancel event, for the length of its run here (set already when a cancel was asked
        before this worker took it)."""
        cancel = threading.Event()
        if job.cancel_requested:
            cancel.set()
        with self._lock:
            self._cancels[job.key] = cancel
        try:
            yield cancel
        finally:
            with self._lock:
                self._cancels.pop(job.key, None)

    def record(self, event: Event) -> None:
        """A pipeline's event in its job's row (best effort)."""
        with contextlib.suppress(StoreError):
            if isinstance(event, FileStarted):
                self.store.job_started(event.key, event.duration_s)
            elif isinstance(event, ChunkDone):
                if self.store.chunk_done(event.key, event.covered_s):
                    self._cancel_here(event.key)
            elif isinstance(event, ChunksCounted):
                self.store.chunks_counted(event.key, event.total)

    def cancel(self, key: str) -> Job | None:
        """Cancel job `key` (`JobQueue.cancel`); one running here stops before its next request."""
        job = self.store.cancel(key)
        if job is not None and job.cancel_requested:
            self._cancel_here(key)
        return job

    def look(self, owner: str) -> None:
        """Stop the jobs `owner` runs whose cancel was asked elsewhere."""
        for key in self.store.cancels(owner):
            self._cancel_here(key)

    def _cancel_here(self, key: str) -> None:
        with self._lock:
            cancel = self._cancels.get(key)
        if cancel is not None:
            cancel.set()
