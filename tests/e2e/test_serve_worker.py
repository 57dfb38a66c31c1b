"""`serve --no-work` beside a worker: the server only takes and shows jobs, a `whisperbatch worker` on the
same store (a SQLite file, or a PostgreSQL server as hosts share one) does them, and the server then
gives their outputs. A job cancelled while queued is never sent upstream."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from conftest import CANARY_KEY, assemble, copy_sample, distinct_words, run_cli
from e2e.serve_support import finished, module_env
from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.serving import Served


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_worker_does_what_the_server_takes(
    store: str, tmp_path: Path, model_cache: Path, request: pytest.FixtureRequest
) -> None:
    database = ["--database", request.getfixturevalue("pg_url")] if store == "postgresql" else []
    with FakeOpenAI(api_key=CANARY_KEY) as upstream:
        upstream.transcriber = distinct_words
        env = module_env(tmp_path, model_cache, upstream)
        other = tmp_path / "other.wav"
        assemble(other, [True, False, True], find_ffmpeg(), unit_s=6.3)
        with (
            Served(["--no-work", *database], env, cwd=tmp_path) as served,
            httpx.Client(base_url=served.url, timeout=30) as client,
        ):
            jobs = []
            for path in (copy_sample("fox.wav", tmp_path), other):
                with path.open("rb") as f:
                    made = client.post("/api/v1/jobs", files={"file": (path.name, f)}, data={"format": "srt"})
                assert made.status_code == 201, made.text
                jobs.append(made.json())
            cancelled = client.post(f"/api/v1/jobs/{jobs[1]['id']}/cancel").json()
            assert cancelled["state"] == "failed" and cancelled["error"] == "cancelled"
            time.sleep(0.5)
            waiting = client.get(f"/api/v1/jobs/{jobs[0]['id']}").json()
            assert waiting["state"] == "queued" and upstream.count == 0  # the server runs nothing
            assert client.get("/api/v1/health").json()["work"] is False

            worked = run_cli(["worker", "--once", *database], env, cwd=tmp_path, timeout=120)
            assert worked.code == 0, worked.output
            done = finished(client, jobs[0]["id"], timeout_s=10)
            assert done["state"] == "done", done["error"]
            srt = client.get(done["outputs"]["srt"])
            assert srt.status_code == 200 and " --> " in srt.text and "Line " in srt.text
            assert client.get(f"/api/v1/jobs/{jobs[1]['id']}").json()["error"] == "cancelled"
        assert len(upstream.uploads) == 1  # fox's one chunk; the cancelled job's none
