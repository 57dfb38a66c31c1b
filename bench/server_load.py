"""`whisperbatch serve` under load on loopback: status polls from many clients while jobs run, and a
burst of submissions against a bounded queue.

Phase 1, polls: a server (`whisperbatch serve -j 2`, a fresh home) runs two long recordings (`--minutes`
of samples/fox.wav in 10-s units, several chunks each) against whisperbatch.testing answering every
request after `--latency` seconds without decoding. While both run, `--clients` clients each ask
`GET /api/v1/jobs/{id}` for one of the two jobs, then wait `--interval` seconds, for `--poll-s` seconds;
meanwhile `--probes` clients ask `GET /api/v1/health` (the HTTP stack and two counts, no job read) the
same way. The reference for both: the same clients for `--ref-s` seconds once both jobs are done and
the runner is idle. Each row gives requests per second and latency percentiles (from writing the
request to reading the whole answer), then the ratios of the job polls to health in the same window
and to the same polls idle. The clients are asyncio streams writing and reading HTTP/1.1 by hand, one
keep-alive connection each: an HTTP library's own work per request (httpx's) took as much CPU as the
server and put its own queueing into the figures.

Phase 2, a burst: a second server (fresh home, `--queue-max` below `--burst`) against an upstream that
answers at once; `--burst` distinct recordings (2.5 s of the sample, each with its own low noise, so
each is its own job and its chunk its own upload) are posted at once with httpx. It fails loudly unless
every submission got 201 or 429 with Retry-After, the jobs in the store are exactly the 201s (no key
twice), the uploads folder holds exactly the accepted recordings (and nothing half-written), and, once
the queue is drained, every job is done in one attempt and the upstream answered exactly one upload
per job (each recording is one chunk) with no chunk sent twice. The runner works during the burst, so
more than `--queue-max` can be accepted: the bound is on jobs waiting.

Clients, servers and the upstream share the machine (and, where it is shared, with other work): the
load average at the start and end is printed beside the figures.

    python bench/server_load.py                           # SQLite: 200 clients, 20 s; a burst of 500
    python bench/server_load.py --backends sqlite,postgresql
    python bench/server_load.py --clients 50 --poll-s 5 --burst 100 --queue-max 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing import FakeOpenAI, delay
from whisperbatch.testing.pgserver import create_database, running_server
from whisperbatch.testing.recordings import SAMPLES, assemble
from whisperbatch.testing.serving import Served, serve_env

DUMMY_KEY = "sk-bench-server-load-dummy-key"
BACKENDS = ("sqlite", "postgresql")
RATE = 16000
CONCURRENCY = 2  # serve -j in phase 1: requests to the upstream at once
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Latencies:
    what: str
    requests: int
    errors: int
    seconds: float
    ms: tuple[float, ...]  # every answered request's latency

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")


def fail(what: str, detail: str = "") -> None:
    raise SystemExit(f"FAILED: {what}" + (f"\n{detail[-4000:]}" if detail else ""))


def base_env(home: Path, base_url: str, database: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    env |= {"WHISPERBATCH_HOME": str(home), "OPENAI_API_KEY": DUMMY_KEY, "OPENAI_BASE_URL": base_url}
    if database is not None:
        env["WHISPERBATCH_DATABASE_URL"] = database
    return serve_env(env)


@dataclass(frozen=True)
class Clients:
    """A group of clients: what its rows are called, the paths they ask for (client i asks for
    path i mod n), how many."""

    what: str
    paths: tuple[str, ...]
    count: int


async def hammer(url: str, groups: list[Clients], seconds: float, interval_s: float) -> list[Latencies]:
    """Every group's clients at once, each on its own keep-alive connection, asking for its path, then
    waiting `interval_s`, until `seconds` pass. The requests are written and read by hand (status line,
    Content-Length, body): an HTTP library's own work per request would take much of two cores."""
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    ms: dict[str, list[float]] = {g.what: [] for g in groups}
    errors = dict.fromkeys(ms, 0)
    dropped: list[str] = []  # connections the server closed under a request
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds

    async def one(group: Clients, i: int) -> None:
        request = f"GET {group.paths[i % len(group.paths)]} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        await asyncio.sleep(interval_s * i / group.count)  # the first round spread over one interval
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while loop.time() < end:
                sent = time.perf_counter()
                try:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
                    await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError) as e:
                    dropped.append(f"{type(e).__name__}: {e}")
                    errors[group.what] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if head.startswith(b"HTTP/1.1 200 "):
                    ms[group.what].append((time.perf_counter() - sent) * 1000)
                else:
                    errors[group.what] += 1
                if interval_s:
                    await asyncio.sleep(interval_s)
        finally:
            writer.close()

    await asyncio.gather(*(one(g, i) for g in groups for i in range(g.count)))
    took = loop.time() - start
    if dropped:
        print(f"  {len(dropped)} connections dropped under a request, e.g. {dropped[0]}", flush=True)
    return [
        Latencies(g.what, len(ms[g.what]) + errors[g.what], errors[g.what], took, tuple(ms[g.what]))
        for g in groups
    ]


def job(url: str, job_id: int) -> dict[str, object]:
    answer = httpx.get(f"{url}/api/v1/jobs/{job_id}", timeout=60)
    answer.raise_for_status()
    data: dict[str, object] = answer.json()
    return data


def wait_states(url: str, ids: list[int], states: set[str], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(job(url, i)["state"] in states for i in ids):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {what}", str([job(url, i) for i in ids]))
        time.sleep(0.2)


def submit(url: str, path: Path) -> dict[str, object]:
    with path.open("rb") as fh:
        answer = httpx.post(f"{url}/api/v1/jobs", files={"file": (path.name, fh, "audio/wav")}, timeout=600)
    if answer.status_code != 201:
        fail(f"submitting {path.name}: {answer.status_code}", answer.text)
    data: dict[str, object] = answer.json()
    return data


def phase_polls(args: argparse.Namespace, tmp: Path, database: str | None) -> list[Latencies]:
    tmp.mkdir()
    ffmpeg = find_ffmpeg()
    units = max(1, round(args.minutes * 6))
    long = [tmp / "long-a.wav", tmp / "long-b.wav"]
    for path, unit_s in zip(long, (10.0, 10.05), strict=True):
        assemble(path, [True] * units, ffmpeg, unit_s=unit_s)
    with FakeOpenAI(api_key=DUMMY_KEY, asr=False) as upstream:
        upstream.inject(*[delay(args.latency)] * 1000)
        env = base_env(tmp / "home-polls", upstream.base_url, database)
        with Served(["-j", str(CONCURRENCY)], env, cwd=tmp) as served:
            ids = [int(str(submit(served.url, path)["id"])) for path in long]
            wait_states(served.url, ids, {"running"}, "both jobs running")
            print(f"  two jobs running; polling for {args.poll_s:g} s", flush=True)
            polls = tuple(f"/api/v1/jobs/{i}" for i in ids)

            def groups(when: str) -> list[Clients]:
                return [
                    Clients(f"/api/v1/jobs/{{id}}, {when}", polls, args.clients),
                    Clients(f"/api/v1/health, {when}", ("/api/v1/health",), args.probes),
                ]

            rows = asyncio.run(hammer(served.url, groups("2 running"), args.poll_s, args.interval))
            if any(job(served.url, i)["state"] != "running" for i in ids):
                fail(
                    "a job ended while it was polled: raise --minutes or --latency",
                    str([job(served.url, i) for i in ids]) + served.log,
                )
            wait_states(served.url, ids, {"done"}, "both jobs done")
            rows += asyncio.run(hammer(served.url, groups("idle"), args.ref_s, args.interval))
    return rows


def tiny_recordings(folder: Path, count: int) -> list[Path]:
    """`count` recordings of 2.5 s of the sample's speech, each with low noise of its own."""
    folder.mkdir()
    with wave.open(str(SAMPLES / "fox.wav")) as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)[RATE // 2 : RATE * 3]
    made = []
    for i in range(count):
        noise = np.random.default_rng(i).normal(0, 40, speech.size)
        pcm = np.clip(speech + noise, -32768, 32767).astype(np.int16)
        path = folder / f"rec{i:04d}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())
        made.append(path)
    return made


async def post_all(url: str, paths: list[Path]) -> list[httpx.Response | str]:
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=len(paths))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one(path: Path) -> httpx.Response | str:
            try:
                files = {"file": (path.name, path.read_bytes(), "audio/wav")}
                return await client.post("/api/v1/jobs", files=files)
            except httpx.HTTPError as e:
                return f"{type(e).__name__}: {e}"

        return list(await asyncio.gather(*(one(p) for p in paths)))


def all_jobs(url: str) -> list[dict[str, object]]:
    answer = httpx.get(f"{url}/api/v1/jobs", params={"limit": 1000}, timeout=120)
    answer.raise_for_status()
    jobs: list[dict[str, object]] = answer.json()["jobs"]
    return jobs


def phase_burst(args: argparse.Namespace, tmp: Path, database: str | None) -> list[str]:
    """The burst; returns the lines to print. Fails on anything lost, doubled or left behind."""
    tmp.mkdir()
    recordings = tiny_recordings(tmp / "burst", args.burst)
    home = tmp / "home-burst"
    with FakeOpenAI(api_key=DUMMY_KEY, asr=False) as upstream:
        env = base_env(home, upstream.base_url, database)
        with Served(["--queue-max", str(args.queue_max)], env, cwd=tmp) as served:
            started = time.monotonic()
            answers = asyncio.run(post_all(served.url, recordings))
            took = time.monotonic() - started
            broken = [a for a in answers if isinstance(a, str) or a.status_code not in (201, 429)]
            if broken:
                fail(f"{len(broken)} submissions neither queued nor refused", "\n".join(map(str, broken[:5])))
            done = [a for a in answers if not isinstance(a, str) and a.status_code == 201]
            refused = [a for a in answers if not isinstance(a, str) and a.status_code == 429]
            if any(not a.headers.get("Retry-After", "").isdigit() for a in refused):
                fail("a 429 without Retry-After")
            accepted = {str(a.json()["recording"]): a.json() for a in done}
            jobs = all_jobs(served.url)
            if len(jobs) != len(done) or len({j["key"] for j in jobs}) != len(jobs):
                fail(f"{len(jobs)} jobs in the store for {len(done)} submissions queued")
            if {str(j["recording"]) for j in jobs} != set(accepted):
                fail("the jobs in the store are not the submissions queued")
            kept = sorted(
                f.name
                for d in (home / "uploads").iterdir()
                if d.name != ".incoming"
                for f in d.iterdir()
                if f.suffix == ".wav"  # beside each: its outputs, once done
            )
            incoming = list((home / "uploads" / ".incoming").iterdir())
            if kept != sorted(accepted) or incoming:
                fail(
                    f"uploads: {len(kept)} kept, {len(incoming)} half-written, for {len(accepted)} jobs",
                    str(sorted(set(kept) - set(accepted))),
                )
            drained_from = time.monotonic()
            ids = [int(str(j["id"])) for j in jobs]
            wait_states(served.url, ids, {"done", "failed"}, "the queue drained")
            drained = time.monotonic() - drained_from
            jobs = all_jobs(served.url)
        uploads = upstream.successful
    not_done = [j for j in jobs if j["state"] != "done" or j["attempts"] != 1]
    if not_done:
        fail(f"{len(not_done)} jobs not done in one attempt", str(not_done[:3]))
    chunks = len(jobs)  # 2.5 s each: one chunk apiece
    if any(j["chunks_total"] not in (None, 1) for j in jobs):
        fail("a recording of 2.5 s cut into more than one chunk")
    if len(uploads) != chunks or len({u.sha256 for u in uploads}) != len(uploads) or upstream.count != chunks:
        fail(f"upstream: {upstream.count} requests, {len(uploads)} answered, for {chunks} chunks")
    retry_after = refused[0].headers["Retry-After"] if refused else "-"
    return [
        f"burst of {args.burst} at once, queue max {args.queue_max}: {len(done)} queued (201), "
        f"{len(refused)} refused (429, Retry-After {retry_after} s), "
        f"in {took:.1f} s ({args.burst / took:.0f} submissions/s)",
        f"  jobs in the store {len(jobs)}, distinct keys {len({j['key'] for j in jobs})}, uploads kept "
        f"{len(kept)}, half-written 0",
        f"  drained in {drained:.1f} s: {len(jobs)} done in one attempt each; upstream {upstream.count} "
        f"requests = {chunks} chunks, none sent twice",
    ]


def print_table(rows: list[Latencies]) -> None:
    head = (
        f"{'request':<32} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            f"{row.what:<32} {row.per_s:>7.0f} {row.pct(50):>7.1f} {row.pct(95):>7.1f} {row.pct(99):>7.1f} "
            f"{max(row.ms, default=float('nan')):>7.1f} {row.errors:>6}"
        )
    polled, health, idle, _ = rows

    def ratio(q: float) -> str:
        return f"{polled.pct(q) / health.pct(q):.2f} / {polled.pct(q) / idle.pct(q):.2f}"

    print(
        f"job polls while 2 run, against health meanwhile / against the same polls idle: p50 {ratio(50)}, "
        f"p99 {ratio(99)}"
    )


@contextlib.contextmanager
def database_for(backend: str, tmp: Path, name: str) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None  # the home's own SQLite file
        return
    with running_server(tmp / f"pg-{name}") as url:
        yield create_database(url, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="clients polling at once (200)")
    parser.add_argument(
        "--interval", type=float, default=0.5, help="each client's pause between polls, s (0.5)"
    )
    parser.add_argument("--probes", type=int, default=20, help="clients asking for health meanwhile (20)")
    parser.add_argument("--poll-s", type=float, default=20.0, help="seconds of polling while jobs run (20)")
    parser.add_argument("--ref-s", type=float, default=8.0, help="seconds of each reference (8)")
    parser.add_argument("--minutes", type=float, default=8.0, help="length of each running recording (8)")
    parser.add_argument(
        "--latency", type=float, default=4.0, help="upstream seconds per request in phase 1 (4)"
    )
    parser.add_argument("--burst", type=int, default=500, help="submissions at once (500)")
    parser.add_argument("--queue-max", type=int, default=300, help="the burst server's --queue-max (300)")
    parser.add_argument("--backends", default="sqlite", help="sqlite,postgresql (sqlite)")
    parser.add_argument("--only", default="polls,burst", help="polls,burst")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and say where it is")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := [b for b in backends if b not in BACKENDS]:
        parser.error(f"unknown backend(s) {unknown}: choose from {','.join(BACKENDS)}")
    phases = {p.strip() for p in args.only.split(",") if p.strip()}

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"CPUs: {cpus} (load average {load:.1f} at the start); clients and servers on this machine",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="whisperbatch-server-load-"))
    try:
        for backend in backends:
            print(f"\n== {backend} ==", flush=True)
            if "polls" in phases:
                with database_for(backend, tmp, "polls") as database:
                    rows = phase_polls(args, tmp / f"{backend}-polls", database)
                print(
                    f"\n{args.clients} clients polling a job's status (half each job) and {args.probes} "
                    f"asking for health, each every {args.interval:g} s; {args.poll_s:g} s while the jobs "
                    f"run, {args.ref_s:g} s once they are done"
                )
                print_table(rows)
            if "burst" in phases:
                with database_for(backend, tmp, "burst") as database:
                    lines = phase_burst(args, tmp / f"{backend}-burst", database)
                print()
                print("\n".join(lines))
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
