"""A job's outputs as a client downloads them: the files its run wrote (with speaker labels and the
translation, exactly as a command-line run writes them), found through the store's record of what
each job wrote, so a job run by a worker on another host is served too where its folder is shared.
A format the run did not write is rendered from the stored transcript, where that transcript is the
whole answer (no labels or translation were asked for)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..jobs import JobOptions
from ..models import JobState
from ..store import Job
from ..writers import render
from .context import Server
from .errors import ApiError

FORMATS = ("txt", "srt", "vtt", "json", "rttm")
MEDIA_TYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
    "rttm": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Output:
    format: str
    name: str  # the file name a download is offered under
    text: str


def written(server: Server, job: Job) -> dict[str, Path]:
    """The files the job's last run wrote, by format; a translation's (`talk.de.srt`) over the
    transcript's when the job translates."""
    target = job.options.get("translate_to")
    found: dict[str, Path] = {}
    for record in server.store.job_outputs(job.key):
        path = record.path
        fmt = path.suffix.removeprefix(".")
        if fmt not in FORMATS or not path.is_file():
            continue
        translated = target is not None and path.stem.endswith(f".{target}")
        if fmt not in found or translated:
            found[fmt] = path
    return found


def output(server: Server, job: Job, fmt: str) -> Output:
    """One format of a done job (404 when there is none to give)."""
    if fmt not in FORMATS:
        raise ApiError(404, f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
    if job.state is not JobState.DONE:
        raise ApiError(409, f"job {job.id} is {job.state}: outputs come once it is done")
    path = written(server, job).get(fmt)
    if path is not None:
        return Output(fmt, path.name, path.read_text(encoding="utf-8"))
    whole = not job.options.get("diarize") and not job.options.get("translate_to")
    if job.transcript is None or not whole or fmt == "rttm":
        raise ApiError(404, f"job {job.id} has no {fmt} output")
    options = JobOptions.from_dict(job.options)
    settings = server.settings if options is None else server.settings.with_job(options)
    text = render(fmt, job.transcript, settings.cue_style, file_id=job.path.stem)
    return Output(fmt, f"{job.path.stem}.{fmt}", text)
