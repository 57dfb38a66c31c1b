"""`whisperbatch doctor` as a user runs it: all ✔ and exit 0 on a good set-up; a wrong key, an
unreachable base URL, a retired model and an unwritable state folder each one ✘ line with its fix and
exit 1; a bad config file the usual one-line error and exit 2. The key never shows."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, Result, run_cli
from whisperbatch.testing import FakeOpenAI


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY) as fake:
        yield fake


def _doctor(env: dict[str, str], *args: str, **extra: str) -> Result:
    result = run_cli(["doctor", *args], {**env, **extra}, timeout=120)
    assert CANARY_KEY not in result.output and CANARY_KEY[:12] not in result.output
    assert "Traceback" not in result.output
    return result


def _lines(result: Result, mark: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(mark)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_good_set_up_is_all_ticks(env: dict[str, str], server: FakeOpenAI) -> None:
    r = _doctor(env, "--to", "de", OPENAI_API_KEY=CANARY_KEY, OPENAI_BASE_URL=server.base_url)
    assert r.code == 0, r.output
    names = [line.split(":")[0] for line in _lines(r, "✔ ")]
    assert names == [
        "✔ ffmpeg",
        "✔ engine",
        "✔ base URL",
        "✔ API key",
        "✔ model",
        "✔ translation model",
        "✔ state folder",
        "✔ database",
    ]
    assert not _lines(r, "✘") and server.count == 0 and not server.chats


def _blocked_home(tmp_path: Path) -> str:
    """A state folder under a regular file: it cannot be made, not even by root (whom chmod does not stop)."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    return str(blocker / "sub")


@pytest.mark.parametrize(
    ("problem", "line_start", "fix_says"),
    [
        ("wrong key", "✘ API key: refused by 127.0.0.1:", "set OPENAI_API_KEY"),
        ("unreachable", "✘ base URL: cannot reach 127.0.0.1:", "--base-url / OPENAI_BASE_URL"),
        ("retired model", "✘ model: whisper-1 was shut down on 2027-02-26", "--model gpt-transcribe"),
        ("unwritable home", "✘ state folder: ", "set WHISPERBATCH_HOME"),
    ],
)
def test_each_problem_is_one_cross_with_its_fix(
    env: dict[str, str], server: FakeOpenAI, tmp_path: Path, problem: str, line_start: str, fix_says: str
) -> None:
    extra = {"OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": server.base_url}
    args: list[str] = []
    if problem == "wrong key":
        extra["OPENAI_API_KEY"] = "sk-wrong-" + CANARY_KEY[::-1]
    elif problem == "unreachable":
        args = ["--base-url", f"http://127.0.0.1:{_closed_port()}/v1"]
    elif problem == "retired model":
        args = ["--model", "whisper-1"]
        extra["WHISPERBATCH_TODAY"] = "2027-03-01"
    else:
        extra["WHISPERBATCH_HOME"] = _blocked_home(tmp_path)
    r = _doctor(env, *args, **extra)
    assert r.code == 1, r.output
    crosses = _lines(r, "✘")
    assert len(crosses) == 1, r.stdout
    found, fix = crosses[0].split(" — fix: ")
    assert found.startswith(line_start) and fix_says in fix
    assert len(_lines(r, "✔ ")) >= 3  # the other checks still ran


def test_problems_together_are_one_cross_each(
    env: dict[str, str], server: FakeOpenAI, tmp_path: Path
) -> None:
    r = _doctor(
        env,
        "--model",
        "whisper-1",
        OPENAI_API_KEY="test-wrong-key-0123456789abcdef",
        OPENAI_BASE_URL=server.base_url,
        WHISPERBATCH_TODAY="2027-03-01",
        WHISPERBATCH_HOME=_blocked_home(tmp_path),
    )
    assert r.code == 1
    assert [line.split(":")[0] for line in _lines(r, "✘")] == ["✘ API key", "✘ model", "✘ state folder"]


def test_a_bad_config_file_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('engine = "turbo"\n')
    r = _doctor(env, "--config", str(config))
    assert r.code == 2 and not r.stdout
    assert r.stderr.startswith("error: engine = 'turbo'") and len(r.stderr.strip().splitlines()) == 1
