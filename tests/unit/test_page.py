"""The web page's door, in process (no browser): the page and its assets, their headers, and signing in
with a key where one is required: the key is posted once and traded for an HttpOnly, SameSite=Strict
session cookie that the page's API calls then carry; a wrong key, a revoked key or signing out closes
the door again, and the key itself never appears in anything the server sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from whisperbatch.config import Settings
from whisperbatch.server.app import create_app
from whisperbatch.server.auth import SESSION_COOKIE
from whisperbatch.server.context import Server, ServerOptions
from whisperbatch.server.keys import create_key
from whisperbatch.store import SqliteStore


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    store = SqliteStore(tmp_path / "state.sqlite3")
    yield Server(Settings(home=tmp_path), store, ServerOptions())
    store.close()


def keyed(server: Server) -> str:
    """A server that requires a key (as one listening beyond loopback does), and its one key."""
    server.keys_required = True
    return create_key(server.store, "page")


def test_on_loopback_the_page_opens_with_its_script_and_a_strict_policy(server: Server) -> None:
    with TestClient(create_app(server)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="jobs"' in page.text and "/static/page.js" in page.text
        assert "Sign out" not in page.text  # nothing to sign out of
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "javascript" in client.get("/static/page.js").headers["content-type"]
        assert client.get("/static/page.css").status_code == 200
        assert client.post("/login", data={"key": "anything"}, follow_redirects=False).status_code == 303


def test_with_keys_the_page_asks_for_one_and_a_session_opens_the_api(server: Server) -> None:
    key = keyed(server)
    with TestClient(create_app(server)) as client:
        door = client.get("/")
        assert door.status_code == 200
        assert 'action="/login"' in door.text and 'id="jobs"' not in door.text
        assert client.get("/api/v1/jobs").status_code == 401

        forged = client.post("/login", data={"key": key}, headers={"Origin": "http://elsewhere.example"})
        assert forged.status_code == 403 and SESSION_COOKIE not in client.cookies
        refused = client.post("/login", data={"key": key + "x"}, follow_redirects=False)
        assert refused.status_code == 401 and "not a live key" in refused.text
        assert SESSION_COOKIE not in client.cookies

        signed = client.post("/login", data={"key": key}, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert key not in cookie and key not in signed.text

        page = client.get("/")
        assert 'id="jobs"' in page.text and 'action="/logout"' in page.text
        assert key not in page.text
        assert client.get("/api/v1/jobs").json() == {"jobs": []}

        out = client.post("/logout", follow_redirects=False)
        assert out.status_code == 303
        assert not server.sessions
        client.cookies.clear()
        assert client.get("/api/v1/jobs").status_code == 401


def test_a_revoked_key_ends_its_page_sessions(server: Server) -> None:
    key = keyed(server)
    with TestClient(create_app(server)) as client:
        client.post("/login", data={"key": key})
        assert client.get("/api/v1/jobs").status_code == 200
        server.store.revoke_key("page")
        assert client.get("/api/v1/jobs").status_code == 401
        assert 'action="/login"' in client.get("/").text


def test_the_checks_need_a_key_like_the_rest_of_the_api(server: Server) -> None:
    keyed(server)
    with TestClient(create_app(server)) as client:
        assert client.get("/api/v1/checks").status_code == 401
