"""Who may use a server that listens beyond this machine: a live key (`keys`) by header, or the page's
session. The page signs in once with a key and then holds a session cookie, random and kept in memory (a
restarted server asks again).
"""

from __future__ import annotations

import secrets

from fastapi import Request

from .context import Server
from .errors import ApiError
from .keys import live, valid

SESSION_COOKIE = "whisperbatch_session"


def presented_key(request: Request) -> str | None:
    """The bearer key a request carries (`Authorization: Bearer wb_…`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_key(request: Request) -> None:
    """A FastAPI dependency: a live key, by header or by the page's session, when the server needs one."""
    server: Server = request.app.state.server
    if not server.keys_required:
        return
    key = presented_key(request)
    if key is not None and valid(server.store, key) is not None:
        return
    session = request.cookies.get(SESSION_COOKIE)
    held = server.sessions.get(session or "")
    if key is None and held is not None and live(server.store, held):  # a revoked key ends its sessions
        return
    raise ApiError(401, "a valid key is required (Authorization: Bearer wb_…)", code="invalid_api_key")


def open_session(server: Server, key: str) -> str | None:
    """A new page session for a live key; None when the key is not one."""
    sha256 = valid(server.store, key)
    if sha256 is None:
        return None
    session = secrets.token_urlsafe(32)
    server.sessions[session] = sha256
    return session
