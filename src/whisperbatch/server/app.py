"""The ASGI app: every router over one `Server`, errors rendered as each protocol's clients expect,
and the upload cap enforced while the body arrives (a body over it is refused at its declared length,
or the moment it grows past it, never read whole)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from . import asr_api, checks_api, jobs_api, openai_api, page
from .context import Server
from .errors import ApiError

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # the form's other fields and boundaries, beyond the file's cap


def create_app(server: Server) -> FastAPI:
    app = FastAPI(
        title="whisperbatch",
        version=__version__,
        summary="Recordings to text and subtitles: durable jobs, progress, cost.",
        docs_url="/docs",
    )
    app.state.server = server
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, max_bytes=server.options.upload_max_bytes + MULTIPART_OVERHEAD_BYTES)
    app.include_router(jobs_api.router)
    app.include_router(openai_api.router)
    app.include_router(asr_api.router)
    app.include_router(checks_api.router)
    app.include_router(page.router)
    app.mount("/static", page.static_files(), name="static")
    return app


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """OpenAI's error object on its paths (its SDK reads it), `{"detail", "field"}` elsewhere."""
    if request.url.path.startswith("/v1/"):
        kind = "invalid_request_error" if error.status < 500 else "server_error"
        body: dict[str, Any] = {
            "error": {"message": error.message, "type": kind, "param": error.field, "code": error.code}
        }
    else:
        body = {"detail": error.message, "field": error.field}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(request, error)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return error_response(request, ApiError(error.status_code, str(error.detail)))


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {}
    where = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(where) or None
    message = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid request"))
    return error_response(request, ApiError(400, message, field=field, code="invalid_value"))


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413: by its Content-Length before reading it, or
    while it streams in when it declares none."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._error()
            return message

        await self.app(scope, counted, send)

    def _error(self) -> ApiError:
        return ApiError(
            413, f"file: the request is over {self.max_bytes} bytes", field="file", code="too_large"
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(Request(scope, receive), self._error())
        await response(scope, receive, send)
