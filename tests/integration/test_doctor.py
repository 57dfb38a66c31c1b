"""`run_checks` against the tests' OpenAI server through the real SDK: the key, the base URL, the model
and the chat model, each refused the way a real server refuses it, and never a paid request."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import CANARY_KEY
from whisperbatch.catalog import ModelOverride
from whisperbatch.config import Settings
from whisperbatch.doctor import Check, run_checks
from whisperbatch.models import Task
from whisperbatch.testing import FakeOpenAI

BEFORE, AFTER = date(2026, 11, 23), date(2027, 3, 1)
API_CHECKS = ["ffmpeg", "engine", "base URL", "API key", "model", "state folder", "database"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY) as fake:
        yield fake


def _settings(tmp_path: Path, server: FakeOpenAI | str, **changes: object) -> Settings:
    url = server if isinstance(server, str) else server.base_url
    base = Settings(api_key=CANARY_KEY, base_url=url, home=tmp_path / "home", cache_dir=tmp_path / "cache")
    return dataclasses.replace(base, **changes)


def _check(settings: Settings, *, task: Task = Task.TRANSCRIBE, today: date = BEFORE) -> list[Check]:
    checks = run_checks(settings, task=task, today=today, timeout_s=5.0)
    for c in checks:
        assert CANARY_KEY not in f"{c.detail} {c.fix}" and CANARY_KEY[:8] not in f"{c.detail} {c.fix}"
        assert c.ok == (c.fix is None)
    return checks


def _only_failure(checks: list[Check]) -> Check:
    failed = [c for c in checks if not c.ok]
    assert len(failed) == 1, failed
    return failed[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_good_set_up_passes_without_an_upload(tmp_path: Path, server: FakeOpenAI) -> None:
    before = server.count, len(server.chats)
    checks = _check(_settings(tmp_path, server, translate_to="de"), task=Task.TRANSLATE)
    assert [c.name for c in checks] == [*API_CHECKS[:5], "translation model", *API_CHECKS[5:]]
    assert all(c.ok for c in checks), checks
    found = {c.name: c for c in checks}
    assert found["API key"].detail == f"accepted by 127.0.0.1:{server.port}"
    assert "whisper-1" in found["model"].detail and "shuts down on 2027-02-26" in found["model"].detail
    assert "gpt-5.4-mini" in found["translation model"].detail
    assert (server.count, len(server.chats)) == before  # nothing transcribed, nothing translated


def test_a_wrong_key(tmp_path: Path, server: FakeOpenAI) -> None:
    failed = _only_failure(_check(_settings(tmp_path, server, api_key="test-wrong-key-1234567890")))
    assert failed.name == "API key" and failed.detail.endswith("(HTTP 401)")
    assert "OPENAI_API_KEY" in str(failed.fix)
    no_key = _only_failure(_check(_settings(tmp_path, server, api_key=None)))
    assert no_key.name == "API key" and "none set" in no_key.detail


def test_an_unreachable_server_is_one_failure(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    checks = _check(_settings(tmp_path, url))
    failed = _only_failure(checks)
    assert failed.name == "base URL" and "cannot reach" in failed.detail
    assert "--base-url" in str(failed.fix) and url in str(failed.fix)
    assert "API key" not in [c.name for c in checks]  # not decided, so not reported
    # The catalog knows without the server that whisper-1 is gone.
    gone = _check(_settings(tmp_path, url, model="whisper-1"), today=AFTER)
    assert [c.name for c in gone if not c.ok] == ["base URL", "model"]


def test_models_gone_going_and_missing(tmp_path: Path, server: FakeOpenAI) -> None:
    retired = _only_failure(_check(_settings(tmp_path, server, model="whisper-1"), today=AFTER))
    assert retired.name == "model" and "shut down on 2027-02-26" in retired.detail
    assert "--model gpt-transcribe" in str(retired.fix)
    kept = {"whisper-1": ModelOverride(retires=False)}  # a compatible server that keeps serving it
    assert all(c.ok for c in _check(_settings(tmp_path, server, models=kept), today=AFTER))
    missing = _only_failure(_check(_settings(tmp_path, server, model="whisper-large-v9")))
    assert missing.detail == f"whisper-large-v9 not found at 127.0.0.1:{server.port}"
    assert "gpt-transcribe" in str(missing.fix) and "gpt-5.4-mini" not in str(missing.fix)
    chat = _settings(tmp_path, server, translate_to="fr", translate_model="gpt-0-tiny")
    no_chat = _only_failure(_check(chat, task=Task.TRANSLATE))
    assert no_chat.name == "translation model" and "--translate-model" in str(no_chat.fix)
    assert "gpt-5.4-mini" in str(no_chat.fix) and "whisper-1" not in str(no_chat.fix)


def test_a_server_without_a_model_list_is_not_failed(tmp_path: Path) -> None:
    with FakeOpenAI(api_key=CANARY_KEY) as bare:
        bare.models_endpoint = False
        checks = _check(_settings(tmp_path, bare, translate_to="de"), task=Task.TRANSLATE)
    assert all(c.ok for c in checks), checks
    found = {c.name: c.detail for c in checks}
    assert found["API key"].startswith("not checked") and "no /v1/models" in found["API key"]
    assert "not checked" in found["model"] and "not checked" in found["translation model"]


def test_a_chat_server_of_its_own(tmp_path: Path, server: FakeOpenAI) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    away = _settings(tmp_path, server, translate_to="de", translate_base_url=url)
    failed = _only_failure(_check(away, task=Task.TRANSLATE))
    assert failed.name == "translation model" and "cannot reach" in failed.detail
    wrong = _settings(tmp_path, server, translate_to="de", translate_api_key="test-other-key-0987654321")
    refused = _only_failure(_check(wrong, task=Task.TRANSLATE))
    assert refused.name == "translation model" and "translate_api_key" in str(refused.fix)
    bare = f"http://127.0.0.1:{server.port}"
    no_v1 = _settings(tmp_path, server, translate_to="de", translate_base_url=bare)
    named = _only_failure(_check(no_v1, task=Task.TRANSLATE))
    assert named.name == "translation model" and f"translate_base_url {bare}/v1" in str(named.fix)


def test_a_postgresql_server_that_refuses(tmp_path: Path, server: FakeOpenAI) -> None:
    url = f"postgresql://whisper:pg-secret-pw@127.0.0.1:{_closed_port()}/jobs"
    failed = _only_failure(_check(_settings(tmp_path, server, database=url)))
    assert failed.name == "database" and "cannot open the state database" in failed.detail
    assert "start PostgreSQL" in str(failed.fix) and "pg-secret-pw" not in failed.detail


def test_a_url_without_its_v1_is_named(tmp_path: Path, server: FakeOpenAI) -> None:
    bare = f"http://127.0.0.1:{server.port}"
    failed = _only_failure(_check(_settings(tmp_path, bare)))
    assert failed.name == "base URL" and failed.detail.endswith(f"answers at {bare}/v1")
    assert failed.fix == f"--base-url {bare}/v1 (or OPENAI_BASE_URL)"


class _RestrictedKey(BaseHTTPRequestHandler):
    """A server that knows the key but refuses it the model list, as OpenAI answers a restricted key."""

    def do_GET(self) -> None:
        message = "You have insufficient permissions for this operation. Missing scopes: api.model.read."
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_restricted_key_is_not_a_refused_one(tmp_path: Path) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RestrictedKey)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        checks = _check(_settings(tmp_path, url))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert all(c.ok for c in checks), checks
    found = {c.name: c.detail for c in checks}
    assert "restricted key" in found["API key"] and "not checked" in found["model"]
