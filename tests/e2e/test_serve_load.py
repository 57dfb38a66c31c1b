"""`whisperbatch serve` under many requests at once, over real HTTP on loopback: a burst of distinct
uploads against a bounded queue is split exactly into jobs queued and submissions refused with 429 and
Retry-After, with no job made twice and no upload left behind for a refused one; many status polls at
once each answer with the job asked for. The server runs with `--no-work`, so the queue only fills, and
nothing here measures time (bench/server_load.py does)."""

from __future__ import annotations

import asyncio
import math
import os
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from whisperbatch.testing.serving import Served, serve_env

QUEUE_MAX = 40
BURST = 60
POLLS = 50
RATE = 16000


def tiny_recording(folder: Path, index: int) -> Path:
    """A quarter-second tone of its own pitch: distinct content, so a distinct job."""
    path = folder / f"rec{index:03d}.wav"
    n = RATE // 4
    freq_hz = 200 + 7 * index
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq_hz * i / RATE))) for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("load") / "home"


@pytest.fixture(scope="module")
def served(home: Path) -> Iterator[Served]:
    """One server for the module: only serving, a queue of 40."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    env |= {"WHISPERBATCH_HOME": str(home), "OPENAI_API_KEY": "sk-test-load-unused"}
    with Served(["--no-work", "--queue-max", str(QUEUE_MAX)], serve_env(env), cwd=home.parent) as server:
        yield server


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("recordings")
    return [tiny_recording(folder, i) for i in range(BURST)]


async def _submit_all(url: str, paths: list[Path]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(path: Path) -> httpx.Response:
            files = {"file": (path.name, path.read_bytes(), "audio/wav")}
            return await client.post("/api/v1/jobs", files=files)

        return list(await asyncio.gather(*(one(p) for p in paths)))


async def _poll_all(url: str, ids: list[int]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=POLLS, max_keepalive_connections=POLLS)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return list(await asyncio.gather(*(client.get(f"/api/v1/jobs/{i}") for i in ids)))


def _uploaded(home: Path) -> dict[str, list[str]]:
    """The uploads folder: content folder -> the files in it (the folder being written into aside)."""
    uploads = home / "uploads"
    return {d.name: sorted(f.name for f in d.iterdir()) for d in uploads.iterdir() if d.name != ".incoming"}


@pytest.fixture(scope="module")
def burst(served: Served, recordings: list[Path]) -> dict[str, httpx.Response]:
    """The 60 recordings submitted at once: each one's answer, by file name."""
    answers = asyncio.run(_submit_all(served.url, recordings))
    return {path.name: answer for path, answer in zip(recordings, answers, strict=True)}


def test_a_burst_is_split_exactly_into_queued_and_refused(
    served: Served, burst: dict[str, httpx.Response], home: Path
) -> None:
    statuses = sorted(r.status_code for r in burst.values())
    assert statuses == [201] * QUEUE_MAX + [429] * (BURST - QUEUE_MAX), [r.text for r in burst.values()]
    accepted = {name: r.json() for name, r in burst.items() if r.status_code == 201}
    for r in burst.values():
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) > 0
            assert "queue is full" in r.json()["detail"]
    assert len({job["id"] for job in accepted.values()}) == QUEUE_MAX
    assert len({job["key"] for job in accepted.values()}) == QUEUE_MAX
    assert {job["recording"] for job in accepted.values()} == set(accepted)
    listed = httpx.get(f"{served.url}/api/v1/jobs", params={"state": "queued", "limit": 1000}).json()["jobs"]
    assert sorted(j["id"] for j in listed) == sorted(job["id"] for job in accepted.values())
    health = httpx.get(f"{served.url}/api/v1/health").json()
    assert health["queued"] == QUEUE_MAX and health["running"] == 0
    # Every accepted recording is kept once, in a folder of its own; nothing of a refused one stays.
    kept = _uploaded(home)
    assert sorted(name for names in kept.values() for name in names) == sorted(accepted)
    assert all(len(names) == 1 for names in kept.values())
    assert not list((home / "uploads" / ".incoming").iterdir())


def test_sending_again_finds_the_job_or_is_refused_again(
    served: Served, burst: dict[str, httpx.Response], recordings: list[Path], home: Path
) -> None:
    by_name = {p.name: p for p in recordings}
    accepted = [name for name, r in burst.items() if r.status_code == 201]
    refused = [name for name, r in burst.items() if r.status_code == 429]
    again = accepted[:10] + refused[:10]
    answers = dict(zip(again, asyncio.run(_submit_all(served.url, [by_name[n] for n in again])), strict=True))
    for name in accepted[:10]:  # the queue is full, and the job is in it: the stored job, not a 429
        assert answers[name].status_code == 200, answers[name].text
        assert answers[name].json()["id"] == burst[name].json()["id"]
    for name in refused[:10]:
        assert answers[name].status_code == 429
    assert httpx.get(f"{served.url}/api/v1/health").json()["queued"] == QUEUE_MAX
    assert sorted(n for names in _uploaded(home).values() for n in names) == sorted(accepted)


def test_many_polls_at_once_each_get_their_job(served: Served, burst: dict[str, httpx.Response]) -> None:
    jobs = [r.json() for r in burst.values() if r.status_code == 201]
    asked = [jobs[i % len(jobs)] for i in range(POLLS)]
    answers = asyncio.run(_poll_all(served.url, [job["id"] for job in asked]))
    assert [r.status_code for r in answers] == [200] * POLLS
    for job, answer in zip(asked, answers, strict=True):
        got = answer.json()
        assert (got["id"], got["key"], got["recording"]) == (job["id"], job["key"], job["recording"])
        assert got["state"] == "queued" and got["chunks_done"] == 0 and got["outputs"] == {}
