"""`GET /api/v1/checks`: the set-up check `whisperbatch doctor` prints, as JSON for the web page and
any client, so whoever runs a server sees from a browser what a run would fail on, with its fix,
before paying for anything. The checks ask the upstream server only what costs nothing, and their
details name no secret."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..doctor import run_checks
from ..errors import WhisperbatchError
from ..models import Task
from .auth import require_key
from .context import Server
from .errors import ApiError

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)], tags=["set-up"])


@router.get("/checks", summary="The set-up check: each thing a run needs, with its fix")
def get_checks(request: Request, task: Task = Task.TRANSCRIBE) -> dict[str, Any]:
    server: Server = request.app.state.server
    try:
        checks = run_checks(server.settings, task=task)
    except WhisperbatchError as e:
        raise ApiError(500, str(e), code="checks_failed") from None
    return {"ok": all(c.ok for c in checks), "checks": [dataclasses.asdict(c) for c in checks]}
