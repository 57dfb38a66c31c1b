"""Keys: `whisperbatch keys create/list/revoke` as a user runs them, and a server listening beyond
loopback that refuses to start without a key and, with one, answers only requests that carry a live
key (a revoked one stops working at once). No key appears in any output but `create`'s, nor in the
server's log with its access log on."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest

from conftest import CANARY_KEY, copy_sample, run_cli
from e2e.serve_support import finished, module_env, telling
from e2e.serve_support import upstream as upstream  # the module's OpenAI server
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.serving import Served

KEY = re.compile(r"wb_[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def env(folder: Path, model_cache: Path, upstream: FakeOpenAI) -> dict[str, str]:
    return module_env(folder, model_cache, upstream)


def keys(env: dict[str, str], folder: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli(["keys", *args], env, cwd=folder, timeout=60)
    return result.code, result.stdout, result.stderr


def test_keys_and_a_server_beyond_loopback(env: dict[str, str], folder: Path) -> None:
    code, out, err = keys(env, folder, "list")
    assert code == 0 and "no keys" in out + err

    refused = run_cli(["serve", "--host", "0.0.0.0", "--port", "0"], env, cwd=folder, timeout=60)
    assert refused.code == 2, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "keys create" in lines[0], refused.output

    made = {}
    for name in ("alice", "bob"):
        code, out, err = keys(env, folder, "create", name)
        assert code == 0, err
        assert KEY.fullmatch(out.strip()), out  # the key alone on stdout, to be captured
        assert out.strip() not in err
        made[name] = out.strip()
    assert made["alice"] != made["bob"]
    code, out, err = keys(env, folder, "create", "alice")
    assert code != 0 and "exists already" in out + err and not KEY.search(out + err)

    code, out, err = keys(env, folder, "revoke", "bob")
    assert code == 0, err
    code, out, err = keys(env, folder, "revoke", "bob")
    assert code != 0 and "no live key" in out + err
    code, listed, err = keys(env, folder, "list")
    assert code == 0, err
    assert "alice" in listed and "bob" in listed
    for key in made.values():
        assert key not in listed and key[:7] + "…" in listed
    assert not KEY.search(listed)
    rows = {line.split()[1]: line.count(":") for line in listed.splitlines() if "wb_" in line}
    assert rows == {"alice": 1, "bob": 2}  # made, and bob's revoked: a time each

    wrong = "wb_" + secrets.token_urlsafe(32)
    with Served(["--host", "0.0.0.0", "--verbose"], env, cwd=folder) as served, telling(served):
        port = served.url.rsplit(":", 1)[1]
        assert served.url.startswith("http://0.0.0.0:")
        url = f"http://127.0.0.1:{port}"
        for key in (None, wrong, made["bob"], made["alice"][:-1]):
            headers = {} if key is None else {"Authorization": f"Bearer {key}"}
            for path in ("/api/v1/jobs", "/api/v1/health"):
                answer = httpx.get(url + path, headers=headers, timeout=10)
                assert answer.status_code == 401, (key is None, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
        basic = httpx.get(url + "/api/v1/jobs", headers={"Authorization": made["alice"]}, timeout=10)
        assert basic.status_code == 401

        alice = {"Authorization": f"Bearer {made['alice']}"}
        with httpx.Client(base_url=url, headers=alice, timeout=30) as client:
            assert client.get("/api/v1/jobs").status_code == 200
            with copy_sample("fox.wav", folder).open("rb") as f:
                submitted = client.post("/api/v1/jobs", files={"file": ("fox.wav", f)})
            assert submitted.status_code == 201, submitted.text
            done = finished(client, submitted.json()["id"])
            assert done["state"] == "done", done["error"]
            assert "Line " in client.get(done["outputs"]["txt"]).text

            code, out, err = keys(env, folder, "revoke", "alice")  # while the server runs
            assert code == 0, err
            assert client.get("/api/v1/jobs").status_code == 401
        log = served.log
    assert "GET /api/v1/jobs" in log and "401" in log  # the access log was on
    for secret in (*made.values(), wrong, CANARY_KEY):
        assert secret not in log
    assert not KEY.search(log)
