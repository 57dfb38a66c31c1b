"""Keys for `serve`: who may use a server that listens beyond this machine.

A key is 32 random bytes, shown once when made and kept only as its SHA-256 (a slow password hash
guards guessable secrets; a random key has nothing to guess). Every live key's hash is compared with
`hmac.compare_digest`, all of them every time, so how long a check takes says nothing about any key.
The page signs in once with a key and then holds a session cookie, random and kept in memory (a
restarted server asks again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

from ..errors import ConfigError
from ..store import KeyRing
from .context import Server
from .errors import ApiError

KEY_PREFIX = "wb_"
SESSION_COOKIE = "whisperbatch_session"
SHOWN_CHARS = 7  # "wb_" and four characters: enough to tell keys apart in a list, nothing to guess with


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(keys: KeyRing, name: str) -> str:
    """A new key named `name`, kept as its hash; the key itself is returned once, to be shown once."""
    name = name.strip()
    if not name:
        raise ConfigError("a key needs a name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    if not keys.add_key(name, key[:SHOWN_CHARS], digest(key)):
        raise ConfigError(f'a key named "{name}" exists already: choose another name')
    return key


def valid(keys: KeyRing, key: str) -> str | None:
    """The hash of `key` when it is a live key, else None."""
    presented = digest(key)
    found = False
    for live in keys.api_keys():
        if live.revoked_at is None:
            found |= hmac.compare_digest(live.sha256, presented)
    return presented if found else None


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
    if key is None and held is not None and _still_live(server, held):
        return
    raise ApiError(401, "a valid key is required (Authorization: Bearer wb_…)", code="invalid_api_key")


def _still_live(server: Server, sha256: str) -> bool:
    """A session lasts as long as the key it was opened with (a revoked key ends its sessions)."""
    return any(
        k.revoked_at is None and hmac.compare_digest(k.sha256, sha256) for k in server.store.api_keys()
    )


def open_session(server: Server, key: str) -> str | None:
    """A new page session for a live key; None when the key is not one."""
    sha256 = valid(server.store, key)
    if sha256 is None:
        return None
    session = secrets.token_urlsafe(32)
    server.sessions[session] = sha256
    return session
