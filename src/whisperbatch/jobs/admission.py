"""Admission: a recording becomes a job, or gets its outputs at once from what the store holds.

A job is its content and options: the same recording under two names, dropped again or run again, is
one job, transcribed once; other names of it get their outputs from the stored transcript, with no
upload. A done job asked for with speaker labels or a translation the store does not have is queued
again to add them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import audio
from ..errors import AudioError, WhisperbatchError
from ..models import FileResult, JobState, Task
from ..pipeline import Pipeline
from ..store import Job, JobStore
from .content import file_sha256
from .mode import RunMode
from .options import JobOptions

ERROR_SUFFIX = ".error.txt"


def error_file(path: Path) -> Path:
    """Where the service writes a failed recording's reason: `<name>.error.txt` beside it."""
    return path.with_name(path.name + ERROR_SUFFIX)


class Admission:
    """Admits recordings with the runner's own options (`pipeline`, `options`) into its run."""

    def __init__(
        self,
        pipeline: Pipeline,
        options: JobOptions,
        *,
        store: JobStore,
        task: Task,
        mode: RunMode,
        run_id: str,
        say: Callable[[str], None],
    ) -> None:
        self.pipeline, self.options, self.store, self.task = pipeline, options, store, task
        self.mode, self.run_id, self.say = mode, run_id, say
        self.extra_paths: dict[str, set[Path]] = {}  # other names of a job's recording
        self.from_store: dict[Path, FileResult] = {}  # inputs written from the store (reports_inputs)
        self._forced: set[str] = set()  # with --force, each job is redone once per run or service life

    def admit(self, path: Path, *, force: bool) -> Job | None:
        """Find or create `path`'s job; a recording already transcribed gets its outputs now, from the
        stored transcript. Its outputs' names must be planned first (`Outputs.plan`).
        Returns None when its outputs are up to date (written from this very job); raises AudioError
        when it cannot be read, OutputError when its outputs could not be written."""
        outputs, options, store, task = self.pipeline.outputs, self.options, self.store, self.task
        audio.check_readable(path)
        outputs.check_names(path, task)
        try:
            st = path.stat()
            sha = store.seen(path, st.st_size, st.st_mtime_ns) or file_sha256(path)
            key = options.key(sha, task)
            if not force and outputs.up_to_date(path, task, key):
                if self.mode.reports_inputs:
                    self.say(f"{path}: outputs are up to date, skipped (use --force to redo)")
                return None
            job = store.enqueue(
                key,
                sha,
                task,
                path,
                st.st_size,
                st.st_mtime_ns,
                options=options.as_dict(),
                run_id=self.run_id,
            )
        except OSError as e:
            raise AudioError(path, f"cannot read ({e.strerror or e})") from e
        self._admitted(job, path, force=force)
        return store.job(key)

    def _admitted(self, job: Job, path: Path, *, force: bool) -> None:
        """What a found or new job needs now: redone (--force), reopened to translate or to try again,
        told as failed before, or noted as another name of its recording."""
        key, options = job.key, self.options.as_dict()
        if force and job.state in (JobState.DONE, JobState.FAILED) and key not in self._forced:
            self._forced.add(key)
            self.store.redo(key, path, options=options, run_id=self.run_id)
            self.say(f"{path}: done again from the start (--force)")
        elif job.state is JobState.DONE and self.write_from_store(job, path) is None:
            self.store.reopen(key, path, options=options, run_id=self.run_id)
            self.say(f"{path}: transcribed before; {self._adding()}, no upload")
        elif job.state is JobState.FAILED and self.mode.reports_inputs:  # asked for again: tried again
            self.store.reopen(key, path, options=options, run_id=self.run_id)
        elif job.state is JobState.FAILED:
            if not error_file(path).exists():
                same = "" if job.path == path else f"same recording as {job.path}, which "
                self.say(f"{path}: {same}failed before ({job.error}); `whisperbatch retry` requeues it")
        elif job.path != path:
            self.extra_paths.setdefault(key, set()).add(path)
        elif self.mode.tells_queue:
            self.say(f"{path}: picked up")

    def _adding(self) -> str:
        """What a job done before is reopened for: its speaker labels, its translation, or both."""
        adding = ["adding speaker labels"] if self.options.diarize else []
        if self.options.translate_to is not None:
            adding.append(f"translating into {self.options.translate_to}")
        return " and ".join(adding)

    def write_from_store(self, job: Job, path: Path) -> tuple[Path, ...] | None:
        """Outputs for `path` from job's stored transcript (nothing sent); () when none were written, None
        when this run asks for speaker labels or a translation the store does not have yet."""
        pipeline = self.pipeline
        if job.transcript is None or pipeline.outputs.up_to_date(path, job.task, job.key):
            return ()
        try:
            result = pipeline.write_stored(path, job.task, job.key, job.transcript, same_as=job.path)
        except WhisperbatchError as e:
            self.say(f"{path}: {e}")
            return ()
        if result is None:
            return None
        if self.mode.reports_inputs:
            self.from_store[path] = result
        same = "" if job.path == path else f"same recording as {job.path.name}, "
        self.say(f"{path}: {same}outputs written from the stored transcript, no upload")
        return result.outputs
