"""The HTTP job API, `/api/v1`: submit a recording (an upload, or a path inside the server's roots),
follow its job, download its outputs, retry or cancel it, read the spend, and stream live events.

Submissions answer at once with the job (201 when new, 200 when the same recording and options were
asked for before); nothing here waits for a transcription.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from ..models import JobState
from ..store import Job
from .auth import require_key
from .context import Server
from .errors import ApiError, bad_field
from .outputs import MEDIA_TYPES, output
from .submit import Received, Submission, check_name, check_path, queue_full, receive_upload, submit
from .views import job_view, outputs_of, spend_view

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["jobs"])
HEARTBEAT_S = 15.0


def server_of(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def view(server: Server, job: Job) -> dict[str, Any]:
    data = job_view(job, outputs_of(server, job))
    if job.state is JobState.RUNNING:
        data["usd_so_far"] = server.store.job_spend(job.key)
    return data


def job_or_404(server: Server, job_id: int) -> Job:
    job = server.store.job_by_id(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return job


async def submitted(request: Request, *, task: str | None = None) -> tuple[Job, bool]:
    """A submission from a multipart upload (`file` and the option fields) or from JSON naming a path
    on the server; returns the job and whether it is new."""
    server = server_of(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        raw = body.pop("path", None)
        if not isinstance(raw, str):
            raise bad_field("path", "a JSON submission names the recording by its path on the server")
        submission = Submission.of(body, task=task)
        recording: Path | Received = check_path(server, raw)
    elif kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=50) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise bad_field("file", "a multipart submission carries the recording in the field `file`")
            items = [(k, v) for k, v in form.multi_items() if k != "file"]
            fields = dict(items)
            if len(fields) < len(items):
                again = next(k for i, (k, _) in enumerate(items) if k in dict(items[:i]))
                raise bad_field(again, "given more than once")
            if any(not isinstance(v, str) for v in fields.values()):
                raise ApiError(400, "only the field `file` may carry a file")
            submission = Submission.of(fields, task=task)
            name = check_name(file.filename)
            submission.plan(server, upload=True)  # every option checked before a byte is kept
            recording = await asyncio.to_thread(receive_upload, server, file.file, name)
    else:
        raise ApiError(415, "send multipart/form-data with a file, or JSON naming a path")
    return await asyncio.to_thread(submit, server, recording, submission)


@router.post("/jobs", status_code=201, summary="Submit a recording")
async def create_job(request: Request, response: Response) -> dict[str, Any]:
    job, new = await submitted(request)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    response.status_code = 201 if new else 200
    return view(server_of(request), job)


@router.get("/jobs", summary="List jobs")
def list_jobs(
    request: Request,
    state: JobState | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    server = server_of(request)
    jobs = server.store.latest_jobs(state, limit)
    return {"jobs": [job_view(job, outputs_of(server, job)) for job in jobs]}


@router.get("/jobs/{job_id}", summary="One job: state, progress, ETA, cost")
def get_job(request: Request, job_id: int) -> dict[str, Any]:
    server = server_of(request)
    return view(server, job_or_404(server, job_id))


@router.get("/jobs/{job_id}/outputs/{fmt}", summary="Download an output")
def get_output(request: Request, job_id: int, fmt: str) -> Response:
    server = server_of(request)
    found = output(server, job_or_404(server, job_id), fmt)
    headers = {"Content-Disposition": disposition(found.name)}
    return Response(found.text, media_type=MEDIA_TYPES[fmt], headers=headers)


def disposition(name: str) -> str:
    """`inline` under the recording's name in any script (RFC 6266: UTF-8 in `filename*`, with an ASCII
    `filename` for clients that read only that); a header carries Latin-1 only."""
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"inline; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.post("/jobs/{job_id}/retry", summary="Queue a failed job again")
def retry_job(request: Request, job_id: int) -> dict[str, Any]:
    server = server_of(request)
    job = job_or_404(server, job_id)
    if job.state is not JobState.FAILED:
        raise ApiError(409, f"job {job_id} is {job.state}: only a failed job is retried")
    if server.store.count_jobs(JobState.QUEUED) >= server.options.queue_max:
        raise queue_full(server)
    server.store.retry_failed([job.key])
    return view(server, job_or_404(server, job_id))


@router.post("/jobs/{job_id}/cancel", summary="Cancel a queued or running job")
def cancel_job(request: Request, job_id: int) -> dict[str, Any]:
    server = server_of(request)
    job = job_or_404(server, job_id)
    if job.state in (JobState.DONE, JobState.FAILED):
        raise ApiError(409, f"job {job_id} is {job.state}: only a queued or running job is cancelled")
    # Running here, the runner stops it at once; elsewhere, its worker sees the store's flag.
    (server.store if server.runner is None else server.runner).cancel(job.key)
    return view(server, job_or_404(server, job_id))


@router.get("/spend", summary="The spend ledger by day or by run")
def get_spend(request: Request, by: str = Query("day", pattern="^(day|run)$")) -> dict[str, Any]:
    server = server_of(request)
    return spend_view(server.store.ledger(), server.settings.budget_usd, by=by)


@router.get("/events", summary="Live events (server-sent events)")
async def events(request: Request) -> StreamingResponse:
    server = server_of(request)
    queue = server.hub.subscribe()

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"event: hello\ndata: {json.dumps({'work': server.runner is not None})}\n\n"
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield message.sse()
        finally:
            server.hub.unsubscribe(queue)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/health", summary="Whether the server is up, and its queue")
def health(request: Request) -> JSONResponse:
    server = server_of(request)
    queued = server.store.count_jobs(JobState.QUEUED)
    running = server.store.count_jobs(JobState.RUNNING)
    return JSONResponse({"ok": True, "work": server.runner is not None, "queued": queued, "running": running})
