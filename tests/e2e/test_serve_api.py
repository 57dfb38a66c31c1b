"""The job API of a running `whisperbatch serve`, over real HTTP, with the tests' OpenAI server as the
engine upstream: submissions by upload and by path (the same recording twice is one job, sent
upstream once), a job's fields while it runs and once done, each output's content, retry, cancel,
the spend, the live event stream, and the documentation pages. One server for the module."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from conftest import assemble, copy_sample, wait_for
from e2e.serve_support import finished, module_env
from e2e.serve_support import upstream as upstream  # the module's OpenAI server
from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.faults import DECODE_FAILED, Fault
from whisperbatch.testing.serving import Served

BUDGET_USD = 5.0  # far more than the module spends: each running job holds a reservation under it


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, upstream: FakeOpenAI, root: Path
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve")
    env = module_env(folder, model_cache, upstream)
    with Served(["--root", str(root), "-j", "1", "--budget", str(BUDGET_USD)], env, cwd=folder) as server:
        yield server


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the module's recordings are made (outside the server's root: they are uploaded)."""
    return tmp_path_factory.mktemp("recordings")


def speech(folder: Path, name: str, unit_s: float) -> Path:
    """A recording of its own (speech, a pause, speech; `unit_s` makes its content differ)."""
    assemble(folder / name, [True, False, True], find_ffmpeg(), unit_s=unit_s)
    return folder / name


def long_speech(folder: Path, name: str, unit_s: float, units: int = 9) -> Path:
    """Speech throughout (a minute and a half by default): chunks sent one at a time (`-j 1`)."""
    assemble(folder / name, [True] * units, find_ffmpeg(), unit_s=unit_s)
    return folder / name


def upload(client: httpx.Client, path: Path, name: str | None = None, **fields: str) -> httpx.Response:
    with path.open("rb") as f:
        return client.post("/api/v1/jobs", files={"file": (name or path.name, f)}, data=fields)


def test_an_upload_is_one_job_sent_upstream_once(
    client: httpx.Client, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    fox = copy_sample("fox.wav", tmp_path)
    first = upload(client, fox)
    assert first.status_code == 201, first.text
    job = first.json()
    assert first.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["recording"] == "fox.wav"
    done = finished(client, job["id"])
    assert done["state"] == "done", done["error"]
    assert done["chunks_done"] == done["chunks_total"] >= 1
    assert done["progress"] == 1.0 and done["eta_s"] is None
    assert done["usd"] > 0 and done["error"] is None
    sent = upstream.count
    assert sent >= 1

    again = upload(client, fox)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == job["id"] and again.json()["state"] == "done"
    assert upstream.count == sent  # the stored job answered, nothing went upstream again

    said = [u for u in upstream.successful]
    assert said
    outputs = done["outputs"]
    assert set(outputs) >= {"txt", "srt", "vtt", "json"}
    got = {fmt: client.get(url) for fmt, url in outputs.items()}
    assert all(r.status_code == 200 for r in got.values()), {f: r.text for f, r in got.items()}
    text = got["txt"].text
    assert text.startswith("Line ") and text.strip()
    assert "00:00:0" in got["srt"].text and " --> " in got["srt"].text and "1\n" in got["srt"].text
    assert got["vtt"].text.startswith("WEBVTT")
    words = json.loads(got["json"].text)
    assert words
    first_line = text.split(".")[0]
    assert all(first_line in got[fmt].text for fmt in ("srt", "vtt", "json"))
    assert 'filename="fox.' in got["srt"].headers["content-disposition"]
    assert client.get(f"/api/v1/jobs/{job['id']}/outputs/pdf").status_code == 404


def test_a_path_inside_the_root(client: httpx.Client, root: Path) -> None:
    morning = copy_sample("morning.mp3", root)
    made = client.post("/api/v1/jobs", json={"path": str(morning), "format": "srt"})
    assert made.status_code == 201, made.text
    done = finished(client, made.json()["id"])
    assert done["state"] == "done", done["error"]
    assert done["recording"] == "morning.mp3"
    assert set(done["outputs"]) == {"srt"}
    srt = client.get(done["outputs"]["srt"]).text
    assert " --> " in srt and "Line " in srt
    assert (root / "morning.srt").read_text(encoding="utf-8") == srt  # written beside it, as a run writes

    listed = client.get("/api/v1/jobs", params={"state": "done"}).json()["jobs"]
    assert done["id"] in [j["id"] for j in listed]
    assert all(j["state"] == "done" for j in listed)
    assert done["id"] not in [j["id"] for j in client.get("/api/v1/jobs?state=queued").json()["jobs"]]
    bad = client.get("/api/v1/jobs", params={"state": "finished"})
    assert bad.status_code == 400 and bad.json()["field"] == "state"
    assert client.get("/api/v1/jobs/999999").status_code == 404


def test_retry_of_a_failed_job(client: httpx.Client, upstream: FakeOpenAI, recordings: Path) -> None:
    upstream.inject(Fault("respond", 400, DECODE_FAILED))  # the upstream refuses it once, for good
    made = upload(client, speech(recordings, "refused.wav", 7.3))
    failed = finished(client, made.json()["id"])
    assert failed["state"] == "failed"
    assert "could not be decoded" in failed["error"]
    assert str(recordings) not in failed["error"] and "/uploads/" not in failed["error"]
    assert failed["outputs"] == {}
    assert client.get(f"/api/v1/jobs/{failed['id']}/outputs/txt").status_code == 409

    retried = client.post(f"/api/v1/jobs/{failed['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] in ("queued", "running") and retried.json()["error"] is None
    done = finished(client, failed["id"])
    assert done["state"] == "done", done["error"]
    assert "Line " in client.get(done["outputs"]["txt"]).text
    again = client.post(f"/api/v1/jobs/{failed['id']}/retry")
    assert again.status_code == 409 and "only a failed job" in again.json()["detail"]


class Events:
    """The server's event stream, read on a thread of its own from before a job is submitted."""

    def __init__(self, url: str) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        self._http = httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=60))
        self._open = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self._open.wait(10), "the event stream did not open"

    def _read(self) -> None:
        with contextlib.suppress(httpx.HTTPError), self._http.stream("GET", "/api/v1/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.got.append((kind, json.loads(line.removeprefix("data: "))))
                    self._open.set()

    def of(self, recording: str) -> list[str]:
        return [kind for kind, data in list(self.got) if data.get("recording") == recording]

    def close(self) -> None:
        self._http.close()


def running(client: httpx.Client, job_id: int) -> dict[str, Any]:
    """The job once it runs with a chunk done (it has a pace for an ETA)."""
    seen: list[dict[str, Any]] = []

    def chunk_done() -> bool:
        seen.append(client.get(f"/api/v1/jobs/{job_id}").json())
        job = seen[-1]
        return job["state"] == "running" and job["chunks_done"] >= 1 and job["chunks_total"] is not None

    wait_for(chunk_done, f"job {job_id} running with a chunk done", timeout=60)
    return seen[-1]


def test_a_running_job_shows_its_progress_live(
    client: httpx.Client, served: Served, upstream: FakeOpenAI, recordings: Path
) -> None:
    events = Events(served.url)
    try:
        upstream.s_per_audio_min = 2.5  # a 45-s chunk answers in about 2 s
        made = upload(client, long_speech(recordings, "long.wav", 10.2))
        job = running(client, made.json()["id"])
        upstream.s_per_audio_min = 0.0
        assert job["chunks_total"] is not None and 1 <= job["chunks_done"] < job["chunks_total"]
        assert 0 < job["progress"] < 1
        assert job["eta_s"] is not None and job["eta_s"] > 0
        assert job["usd_so_far"] > 0
        assert job["usd"] is None or job["usd"] >= job["usd_so_far"]
        assert job["reserved_usd"] >= job["usd_so_far"]  # its worst case, held while it runs
        done = finished(client, job["id"])
        assert done["state"] == "done", done["error"]
        assert done["chunks_done"] == done["chunks_total"] == job["chunks_total"]
        wait_for(lambda: "job.finished" in events.of("long.wav"), "job.finished on the stream", 30)
    finally:
        upstream.s_per_audio_min = 0.0
        events.close()
    kinds = events.of("long.wav")
    assert kinds[0] == "job.started" and kinds[-1] == "job.finished"
    chunks = [data["chunk"] for kind, data in events.got if kind == "job.progress" and "chunk" in data]
    assert sorted(chunks) == list(range(done["chunks_total"]))
    ends = [data for kind, data in events.got if kind == "job.finished" and data["recording"] == "long.wav"]
    assert ends[0]["error"] is None


def test_cancel_of_a_running_job(client: httpx.Client, upstream: FakeOpenAI, recordings: Path) -> None:
    sent = upstream.count
    try:
        upstream.s_per_audio_min = 2.5
        made = upload(client, long_speech(recordings, "cancelled.wav", 10.4, units=18))
        job = running(client, made.json()["id"])
        cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["cancel_requested"] is True
        ended = finished(client, job["id"])
    finally:
        upstream.s_per_audio_min = 0.0
    assert ended["state"] == "failed" and ended["error"] == "cancelled"
    assert upstream.count - sent < job["chunks_total"]  # it stopped before its last chunks were sent
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 409
    runs = client.get("/api/v1/spend", params={"by": "run"}).json()
    assert runs["total"]["usd"] >= job["usd_so_far"] > 0  # its paid chunks stay in the ledger


def test_spend_by_day_and_by_run(client: httpx.Client) -> None:
    jobs = client.get("/api/v1/jobs").json()["jobs"]
    paid = sum(j["usd"] or 0 for j in jobs)
    assert paid > 0
    by_day = client.get("/api/v1/spend").json()
    assert by_day["by"] == "day" and by_day["items"]
    today = datetime.now(UTC).date().isoformat()
    assert by_day["items"][-1]["day"] == today
    assert sum(i["usd"] for i in by_day["items"]) == pytest.approx(by_day["total"]["usd"])
    assert by_day["budget_usd"] == BUDGET_USD
    assert by_day["left_usd"] == pytest.approx(BUDGET_USD - by_day["total"]["usd"])
    assert by_day["total"]["usd"] >= paid - 1e-9
    assert by_day["total"]["files"] >= len([j for j in jobs if j["state"] == "done"])
    by_run = client.get("/api/v1/spend", params={"by": "run"}).json()
    assert by_run["by"] == "run" and len(by_run["items"]) == 1  # one server, one run
    assert by_run["items"][0]["usd"] == pytest.approx(by_day["total"]["usd"])
    bad = client.get("/api/v1/spend", params={"by": "week"})
    assert bad.status_code == 400 and bad.json()["field"] == "by"


def test_docs_and_the_openapi_schema(client: httpx.Client) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "whisperbatch"
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/cancel", "/api/v1/events"):
        assert path in schema["paths"], path


def test_a_recording_named_in_any_script(client: httpx.Client, recordings: Path) -> None:
    name = "Grüße 日本.wav"
    made = upload(client, speech(recordings, "unicode.wav", 7.7), name=name)
    assert made.status_code == 201, made.text
    done = finished(client, made.json()["id"])
    assert done["state"] == "done" and done["recording"] == name
    got = client.get(done["outputs"]["srt"])
    assert got.status_code == 200 and " --> " in got.text
    said = got.headers["content-disposition"]
    assert said.startswith('inline; filename="Gr__e __.srt"')  # plain ASCII for clients that read only it
    assert unquote(said.split("filename*=UTF-8''")[1]) == "Grüße 日本.srt"
