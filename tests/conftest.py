"""Shared fixtures: an isolated home, real sample audio, long recordings assembled at test time, and a
CLI runner that runs the real `whisperbatch` entry point in a subprocess (so a traceback would show).

Tests come in tiers, one folder each: unit/ (no process started, no model, no long audio: the inner
loop, `pytest tests/unit`), integration/ (real ffmpeg, models and servers in the test's process) and
e2e/ (the CLI run as a process, long recordings). Every test outside unit/ is marked `slow`, and those
in e2e/ `e2e` too, so `-m "not slow"` is the unit tier and `-m "not e2e"` leaves out the processes."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing.pgserver import create_database, running_server

# Shared with bench/, so they live in whisperbatch.testing; the tests take them from here.
from whisperbatch.testing.process import Result as Result
from whisperbatch.testing.process import run_cli as run_cli
from whisperbatch.testing.recordings import FOX_ONSET_S as FOX_ONSET_S
from whisperbatch.testing.recordings import SAMPLES, RealConversation
from whisperbatch.testing.recordings import assemble as assemble
from whisperbatch.testing.recordings import two_sentence_recordings as two_sentence_recordings

TODAY = "2026-11-23"
CANARY_KEY = "sk-test-canary-7fQ2xZ9pLm4Rt8Vw1Yb6Nc3Hd5Kj0Gs"
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if tier != "unit":
            item.add_marker(pytest.mark.slow)
        if tier == "e2e":
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the joined local model across the session (it is ~145 MB)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real PostgreSQL server for the session (started by the tests, stopped at the end)."""
    with running_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


_databases = itertools.count()


@pytest.fixture(scope="session")
def real_conversation(pytestconfig: pytest.Config) -> RealConversation:
    """pyannote.audio's recorded two-person call with its reference (not in this repository: taken from
    the wheel once, kept in pytest's cache, or ~/.cache/whisperbatch-tests without one)."""
    from whisperbatch.testing.recordings import real_conversation as load

    cache = getattr(pytestconfig, "cache", None)
    folder = cache.mkdir("real-conversation") if cache is not None else None
    return load(folder or Path.home() / ".cache" / "whisperbatch-tests" / "real-conversation")


@pytest.fixture()
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the session's server."""
    return create_database(pg_server, f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture()
def env(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean environment: own state dir, no API settings from the machine, cwd without config.toml."""
    for var in list(os.environ):
        if var.startswith(("OPENAI_", "WHISPERBATCH_")):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    monkeypatch.setenv("WHISPERBATCH_HOME", str(home))
    monkeypatch.setenv("WHISPERBATCH_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("WHISPERBATCH_RETRY_BASE_S", "0.05")
    # The API line-up changes on 2027-02-26 (whisper-1 goes): tests stand on a fixed day before it, so
    # they measure the same path whenever they run; tests of the change set their own day.
    monkeypatch.setenv("WHISPERBATCH_TODAY", TODAY)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return dict(os.environ)


def run_cli_together(
    runs: Sequence[tuple[Sequence[str], dict[str, str]]], *, timeout: float = 600
) -> list[Result]:
    """Runs of `whisperbatch ARGS...` (each in its `env`) started at once, each its own process, for runs
    that do not depend on one another: their start-ups overlap. Their results, in the order given."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "whisperbatch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args, env in runs
    ]
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            results.append(Result(proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until true; the deadline only bounds a hung test, nothing here measures speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def copy_sample(name: str, dest_dir: Path, new_name: str | None = None) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLES / name, dest_dir / (new_name or name)))


def reencode(source: str, dest: Path, ffmpeg: str) -> Path:
    """A sample re-encoded under another name (the extension picks the codec)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(SAMPLES / source), str(dest)], check=True)
    return dest


@contextlib.contextmanager
def small_disk(folder: Path, size_bytes: int) -> Iterator[Path]:
    """A filesystem of its own at `folder`, `size_bytes` big, that a test can fill (a tmpfs: it needs
    root, as CI has; skips the test where it cannot be mounted)."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def write_silence(
    path: Path, seconds: float, rate: int = 16000, amplitude: int = 0, freq_hz: int = 220
) -> Path:
    """Digital silence, or a quiet tone when `amplitude` > 0 (for hallucination tests)."""
    import math

    n = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        if amplitude:
            frames = b"".join(
                int(amplitude * math.sin(2 * math.pi * freq_hz * i / rate)).to_bytes(2, "little", signed=True)
                for i in range(n)
            )
        else:
            frames = b"\x00\x00" * n
        w.writeframes(frames)
    return path


@pytest.fixture()
def fake_openai() -> Iterator[object]:
    from whisperbatch.testing import FakeOpenAI

    with FakeOpenAI(api_key=CANARY_KEY) as server:
        server.transcriber = distinct_words
        yield server


_said = itertools.count(1)


def distinct_words(upload: object, index: int, start_s: float, end_s: float) -> str:
    """Different words for every utterance, as real speech has (repeats would look like a loop), and
    no more of them than the utterance could hold (about two a second)."""
    n = next(_said)
    count = min(3 + n % 4, max(1, int(2 * (end_s - start_s))))
    words = [_WORDS[(n * 7 + k * 13) % len(_WORDS)] for k in range(count)]
    return f"Line {n}: {' '.join(words)}."


_WORDS = (
    "river",
    "morning",
    "budget",
    "quietly",
    "harbour",
    "seven",
    "lantern",
    "orange",
    "climb",
    "window",
    "thunder",
    "basket",
    "violet",
    "engine",
    "meadow",
    "copper",
    "whistle",
    "garden",
    "silver",
    "ladder",
)


@pytest.fixture()
def api_env(env: dict[str, str], fake_openai: object) -> dict[str, str]:
    """Environment for the openai engine against the loopback server."""
    return {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": fake_openai.base_url}  # type: ignore[attr-defined]


def read_pcm(path: Path, ffmpeg: str) -> np.ndarray:
    """A recording as Whisper hears it: 16 kHz mono int16."""
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype=np.int16)
