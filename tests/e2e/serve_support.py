"""What the `serve` tests share: an environment for a server process started once per module (the
`env` fixture is per test), and a client that waits on a job over the API as any client would."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import CANARY_KEY, TODAY, distinct_words
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.serving import Served, serve_env

FINISHED = ("done", "failed")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """A module's OpenAI server, answering each utterance with words of its own (no model loaded)."""
    with FakeOpenAI(api_key=CANARY_KEY) as fake:
        fake.transcriber = distinct_words
        yield fake


def module_env(folder: Path, cache: Path, upstream: FakeOpenAI | None = None, **extra: str) -> dict[str, str]:
    """What the `env` fixture gives, for a module's server: its own home under `folder`, no API
    settings from the machine, the tests' fixed day; `upstream` as the OpenAI server when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    env |= {
        "WHISPERBATCH_HOME": str(folder / "home"),
        "WHISPERBATCH_CACHE_DIR": str(cache),
        "WHISPERBATCH_RETRY_BASE_S": "0.05",
        "WHISPERBATCH_TODAY": TODAY,
    }
    if upstream is not None:
        env |= {"OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": upstream.base_url}
    return serve_env(env, **extra)


def finished(client: httpx.Client, job_id: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """The job once done or failed, polled as a client polls it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").raise_for_status().json()
        if job["state"] in FINISHED:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s} s")
        time.sleep(0.1)


@contextlib.contextmanager
def telling(served: Served) -> Iterator[None]:
    """A failure inside shows what the server logged (any server key in it shown as wb_…)."""
    try:
        yield
    except BaseException as e:
        e.add_note("the server's log:\n" + re.sub(r"wb_[A-Za-z0-9_-]+", "wb_…", served.log))
        raise
