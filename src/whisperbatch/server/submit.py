"""The one way a request becomes a job: checked at the door, then found or made in the store.

A job is its content and options (`JobOptions.key`), so a client that sends the same recording again
(a retry after a timeout, a restarted server) finds the job it made before: done, its result is
returned with no second bill; still running, it waits on the same work. Everything that can be
refused is refused before anything is queued or written: an unknown field or a bad value names the
field (400), a name that is not a plain file name (400), a path outside the configured roots (403), an
upload over the cap (413), a full queue (429 with Retry-After). An upload is streamed to disk as it is
hashed and moved into place only once whole, named by its content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..audio import AUDIO_SUFFIXES
from ..catalog import current_date
from ..config import Settings
from ..config_sources import convert
from ..errors import WhisperbatchError
from ..jobs import JobOptions
from ..jobs.content import file_sha256
from ..models import JobState, Task
from ..session import plan_run
from ..store import Job
from .context import Server
from .errors import ApiError, bad_field

# What a request may set, by its field name, and the setting each sets (the CLI's options of those names).
FIELDS: dict[str, str] = {
    "model": "model",
    "language": "language",
    "prompt": "prompt",
    "format": "format",
    "to": "translate_to",
    "translate_model": "translate_model",
    "diarize": "diarize",
    "num_speakers": "num_speakers",
    "min_speakers": "min_speakers",
    "max_speakers": "max_speakers",
    "max_line_width": "max_line_width",
    "max_line_count": "max_line_count",
    "max_words_per_line": "max_words_per_line",
}
TASKS = ("transcribe", "translate")
UPLOAD_FORMATS = "txt,srt,vtt,json"  # an upload's outputs live on the server: every format, for any download
NAME_MAX_BYTES = 200
QUEUE_FULL_RETRY_S = 30
PLANS_KEPT = 256  # distinct option sets whose plans are kept (a prompt is an option)
_HINTS = typing.get_type_hints(Settings)


@dataclass(frozen=True)
class Submission:
    """What a request asks for: the task and the settings it lays over the server's own."""

    task: Task
    values: Mapping[str, Any]

    @classmethod
    def of(cls, fields: Mapping[str, Any], *, task: str | None = None) -> Submission:
        """From a request's fields (form or JSON), each checked and converted; an unknown field or a
        value of the wrong kind is a 400 naming it."""
        fields = dict(fields)
        task = str(fields.pop("task", None) or task or "transcribe")
        if task not in TASKS:
            raise bad_field("task", f"must be transcribe or translate, not {task!r}")
        values = {}
        for name, raw in fields.items():
            setting = FIELDS.get(name)
            if setting is None:
                raise bad_field(name, f"unknown field; the fields are task, {', '.join(FIELDS)}")
            if raw is None or raw == "":
                continue
            if not isinstance(raw, str | int | float | bool):
                raise bad_field(name, f"must be a string, a number or true/false, not {type(raw).__name__}")
            try:
                values[setting] = convert(setting, raw, "the request", _HINTS[setting])
            except WhisperbatchError as e:
                raise bad_field(name, str(e)) from None
        return cls(Task(task), values)

    def plan(self, server: Server, *, upload: bool) -> tuple[JobOptions, Task]:
        """The job's options and task, as a run with these options as flags would make them. Planning
        builds an engine (and its API client), so a plan is kept for the day and the options that made
        it: a burst of submissions plans once, not twice per request."""
        key = (current_date(), self.task, upload, repr(sorted(self.values.items())))
        with server.planning:
            known = server.plans.get(key)
        if known is None:
            known = self._plan(server, upload=upload)
            with server.planning:
                if len(server.plans) >= PLANS_KEPT:
                    server.plans.pop(next(iter(server.plans)))
                server.plans[key] = known
        return known

    def _plan(self, server: Server, *, upload: bool) -> tuple[JobOptions, Task]:
        values = dict(self.values)
        if upload:
            values.setdefault("format", UPLOAD_FORMATS)
            values["out_dir"] = None  # an upload's outputs go beside it, in the server's uploads
        try:
            settings = server.settings.overridden(values, source="the request")
            plan = plan_run(settings, self.task)
        except WhisperbatchError as e:
            raise ApiError(400, str(e), field=_field_named(str(e)), code="invalid_value") from None
        return plan.setup(settings).options, plan.task


def _field_named(message: str) -> str | None:
    """The request field a settings error is about (its message starts with the setting's name)."""
    setting = message.split(" ", 1)[0]
    return next((field for field, name in FIELDS.items() if name == setting), None)


def check_name(filename: str | None) -> str:
    """An upload's name, used for its outputs' names and never as a path: a plain name with an audio
    suffix, or a 400."""
    name = (filename or "").strip()
    if not name:
        raise bad_field("file", "the upload has no file name")
    if "/" in name or "\\" in name or not name.isprintable() or name in (".", "..") or name.startswith("."):
        raise bad_field("file", f"the name must be a plain file name, not {name!r}")
    if len(name.encode()) > NAME_MAX_BYTES:
        raise bad_field("file", f"the name is longer than {NAME_MAX_BYTES} bytes")
    if Path(name).suffix.lower() not in AUDIO_SUFFIXES:
        raise bad_field(
            "file", f"{name!r} is not an audio or video file ({', '.join(sorted(AUDIO_SUFFIXES))})"
        )
    return name


def check_path(server: Server, raw: str) -> Path:
    """A recording on the server, inside one of the configured roots (links followed first)."""
    if not server.options.roots:
        raise ApiError(
            403, "path: this server takes no paths (serve --root DIR allows a folder)", field="path"
        )
    path = Path(raw)
    if not path.is_absolute():
        raise bad_field("path", f"must be an absolute path, not {raw!r}")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a link loop, a NUL in it
        real = None
    inside = real is not None and any(real.is_relative_to(root.resolve()) for root in server.options.roots)
    if not inside:
        raise ApiError(403, f"path: {raw} is not inside the server's roots", field="path")
    assert real is not None
    if not real.is_file() or real.suffix.lower() not in AUDIO_SUFFIXES:
        raise bad_field("path", f"{raw} is not an audio or video file")
    return real


@dataclass(frozen=True)
class Received:
    """An upload copied aside whole and hashed on the way; it goes into the server's uploads
    (`uploads/<sha256>/<name>`) only when a job takes it (`submit`), so a refused one leaves nothing."""

    temp: Path
    sha256: str
    target: Path

    def place(self) -> None:
        """Into the uploads, named by its content (the same content under this name is kept as it is)."""
        self.target.parent.mkdir(exist_ok=True)
        if self.target.exists():
            self.discard()
        else:
            os.replace(self.temp, self.target)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()


def receive_upload(server: Server, stream: BinaryIO, name: str) -> Received:
    """Copy an upload aside, hashing it on the way; one over the cap is deleted and refused (413)."""
    cap = server.options.upload_max_bytes
    incoming = server.uploads / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, temp = tempfile.mkstemp(dir=incoming, prefix=uuid.uuid4().hex)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                size += len(block)
                if size > cap:
                    raise ApiError(
                        413, f"file: the upload is over {cap} bytes", field="file", code="too_large"
                    )
                digest.update(block)
                out.write(block)
        if size == 0:
            raise bad_field("file", "the upload is empty")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(temp).unlink()
        raise
    sha = digest.hexdigest()
    return Received(Path(temp), sha, server.uploads / sha / name)


def queue_full(server: Server) -> ApiError:
    return ApiError(
        429,
        f"the queue is full ({server.options.queue_max} jobs waiting); try again later",
        code="queue_full",
        retry_after_s=QUEUE_FULL_RETRY_S,
    )


def submit(server: Server, recording: Path | Received, submission: Submission) -> tuple[Job, bool]:
    """Find or make the job for a recording on the server or an upload with the submission's options: a
    done job with the same options is returned as it is (nothing is run or billed again); a failed one,
    or a done one asked for with other options (labels, a translation, formats), is queued again, its
    stored chunks kept. An upload is placed in the uploads only once a job takes it. Returns the job
    and whether it is new."""
    received = recording if isinstance(recording, Received) else None
    try:
        return _submit(server, recording, submission)
    finally:
        if received is not None:
            received.discard()  # refused (or kept already under its name): nothing left aside


def _submit(server: Server, recording: Path | Received, submission: Submission) -> tuple[Job, bool]:
    options, task = submission.plan(server, upload=isinstance(recording, Received))
    store = server.store
    if isinstance(recording, Received):
        path, sha = recording.target, recording.sha256
    else:
        path = recording
        st = path.stat()
        sha = store.seen(path, st.st_size, st.st_mtime_ns) or file_sha256(path)
    key = options.key(sha, task)
    wanted = options.as_dict()
    with server.admitting:
        job = store.job(key)
        new = job is None
        if new and store.count_jobs(JobState.QUEUED) >= server.options.queue_max:
            raise queue_full(server)
        if isinstance(recording, Received):
            recording.place()
            st = path.stat()
        if job is None or job.state is JobState.QUEUED:
            job = store.enqueue(
                key, sha, task, path, st.st_size, st.st_mtime_ns, options=wanted, run_id=server.run_id
            )
        elif job.state is JobState.FAILED or (job.state is JobState.DONE and job.options != wanted):
            store.reopen(key, path, options=wanted, run_id=server.run_id)
    found = store.job(key)
    assert found is not None
    return found, new


async def wait_finished(server: Server, key: str, timeout_s: float | None = None) -> Job:
    """The job once done or failed; a 504 after `timeout_s` (the server's `wait_s`) saying it goes on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (server.options.wait_s if timeout_s is None else timeout_s)
    while True:
        job = await asyncio.to_thread(server.store.job, key)
        if job is None:
            raise ApiError(404, "the job is gone")
        if job.state in (JobState.DONE, JobState.FAILED):
            return job
        if loop.time() > deadline:
            raise ApiError(
                504, f"job {job.id} is still {job.state}; ask again with the same file for its result"
            )
        await asyncio.sleep(server.options.poll_s)
