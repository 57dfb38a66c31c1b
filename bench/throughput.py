"""Throughput of one job queue drained by 1, 2 and 4 `whisperbatch worker` processes, per store backend.

Prints files per minute for each backend (an SQLite file, and PostgreSQL) and worker count, and the
ratio to the 1-worker run of the same backend. Absolute figures depend on the machine (its CPU count is
printed too); the ratios compare runs made in the same process tree, which is what to read.

How it measures:
- Recordings: `--files` (24) distinct recordings built once (whisperbatch.testing.recordings,
  `two_sentence_recordings`): a sentence (samples/fox.wav), a pause, a sentence, in units of
  6.0 + 0.05*i seconds so no two are the same; each is cut into two chunks, so a run uploads
  2 x files chunks. Each run gets a fresh copy of the folder (so no outputs from an earlier run), a
  fresh store (a new SQLite file, or a new database on one
  throwaway PostgreSQL server from whisperbatch.testing.pgserver) and a fresh WHISPERBATCH_HOME.
- Server: whisperbatch.testing in this process, a fresh one per run, answering every request after
  `--latency` seconds (2, about what the API takes for a short chunk) of simulated network time
  (delay faults queued for every request the run can make, 2 per chunk; leftovers die with the
  server). It answers without decoding (`asr=False`), so this process takes almost no CPU.
- Run: `whisperbatch enqueue DIR`, then W processes of `whisperbatch worker --once -j 2`; the time is
  from starting the workers until the last has exited (each exits once the queue is empty). A run
  fails loudly unless every worker exits 0, `status --json` lists all files as done, and the server
  answered exactly 2 x files uploads. The `per worker` column is how many files each worker finished.

Subprocesses run with OPENAI_*/WHISPERBATCH_* variables from the calling shell removed, in a working
folder without a config.toml.

    python bench/throughput.py                            # 24 files, 2 s, 1,2,4 workers, both stores
    python bench/throughput.py --files 12 --latency 0.2 --workers 1,2 --backends sqlite
    python bench/throughput.py --keep                     # keep the temp folder (worker logs)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing import FakeOpenAI, delay
from whisperbatch.testing.pgserver import create_database, running_server
from whisperbatch.testing.process import run_cli
from whisperbatch.testing.recordings import two_sentence_recordings

ROOT = Path(__file__).resolve().parent.parent
DUMMY_KEY = "sk-bench-throughput-dummy-key"

BACKENDS = ("sqlite", "postgresql")
CHUNKS_PER_FILE = 2
CONCURRENCY = 2  # -j per worker
RUN_TIMEOUT_S = 900.0
LOG_WORDS = ("error", "traceback", "warning", "retry", "failed")


@dataclass(frozen=True)
class Row:
    backend: str
    workers: int
    files: int
    seconds: float
    per_worker: tuple[int, ...]
    log_lines: tuple[str, ...]  # lines in worker logs that mention an error, retry or warning

    @property
    def files_per_min(self) -> float:
        return self.files / self.seconds * 60


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}


def fail(what: str, detail: str = "") -> None:
    raise SystemExit(f"FAILED: {what}" + (f"\n{detail}" if detail else ""))


def one_run(
    backend: str, workers: int, database: str, master: Path, run_dir: Path, latency_s: float, files: int
) -> Row:
    """Enqueue a fresh copy of the recordings and time `workers` worker processes draining the queue."""
    share, home, logs = run_dir / "share", run_dir / "home", run_dir / "logs"
    shutil.copytree(master, share)
    home.mkdir()
    logs.mkdir()
    with FakeOpenAI(api_key=DUMMY_KEY, asr=False) as server:  # no decoding: this process stays idle
        server.inject(*[delay(latency_s)] * (files * CHUNKS_PER_FILE * 2))
        env = base_env() | {
            "OPENAI_API_KEY": DUMMY_KEY,
            "OPENAI_BASE_URL": server.base_url,
            "WHISPERBATCH_DATABASE_URL": database,
            "WHISPERBATCH_HOME": str(home),
        }
        queued = run_cli(["enqueue", str(share)], env, cwd=run_dir, timeout=RUN_TIMEOUT_S)
        if queued.code != 0 or f"{files} jobs queued" not in queued.stderr:
            fail(f"{backend}/{workers}: enqueue", queued.stdout + queued.stderr)
        procs: list[subprocess.Popen[bytes]] = []
        started = time.monotonic()
        for i in range(workers):
            with (logs / f"worker{i}.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "whisperbatch", "worker", "--once", "-j", str(CONCURRENCY)],
                        env=env,
                        cwd=run_dir,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        codes = [p.wait(timeout=RUN_TIMEOUT_S) for p in procs]
        seconds = time.monotonic() - started
        texts = [(logs / f"worker{i}.log").read_text(errors="replace") for i in range(workers)]
        if any(codes):
            fail(f"{backend}/{workers}: worker exit codes {codes}", "\n".join(texts))
        answered, requests = len(server.successful), server.count
    status = run_cli(["status", "--json"], env, cwd=run_dir, timeout=RUN_TIMEOUT_S)
    jobs = json.loads(status.stdout) if status.code == 0 else None
    if not isinstance(jobs, list) or len(jobs) != files or any(j.get("state") != "done" for j in jobs):
        fail(f"{backend}/{workers}: not all {files} jobs done", status.stdout + status.stderr)
    if answered != files * CHUNKS_PER_FILE:
        fail(
            f"{backend}/{workers}: server answered {answered} uploads ({requests} requests), not {2 * files}"
        )
    per_worker = tuple(sum("done ->" in line for line in t.splitlines()) for t in texts)
    flagged = tuple(
        f"worker{i}: {line.strip()}"
        for i, t in enumerate(texts)
        for line in t.splitlines()
        if any(word in line.lower() for word in LOG_WORDS)
    )
    return Row(backend, workers, files, seconds, per_worker, flagged)


@contextlib.contextmanager
def store_base(backend: str, tmp: Path) -> Iterator[str]:
    """Where a backend's stores live: a folder for SQLite files, or a throwaway PostgreSQL server's URL."""
    if backend == "sqlite":
        yield str(tmp / "sqlite")
        return
    with running_server(tmp / "pg") as url:
        yield url


def next_database(backend: str, base: str, run: str) -> str:
    """A fresh, empty store for one run."""
    if backend == "sqlite":
        Path(base).mkdir(exist_ok=True)
        return str(Path(base) / f"{run}.sqlite3")
    return create_database(base, run)


def print_table(rows: list[Row]) -> None:
    head = f"{'backend':<11} {'workers':>7} {'files':>5} {'seconds':>8} {'files/min':>9} {'ratio':>6}"
    head += "  per worker"
    print(head)
    print("-" * len(head))
    for row in rows:
        ref = next((r for r in rows if r.backend == row.backend and r.workers == 1), None)
        ratio = f"{row.files_per_min / ref.files_per_min:.2f}" if ref else "-"
        print(
            f"{row.backend:<11} {row.workers:>7} {row.files:>5} {row.seconds:>8.1f} "
            f"{row.files_per_min:>9.1f} {ratio:>6}  {'/'.join(map(str, row.per_worker))}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=24, help="recordings in the queue (24)")
    parser.add_argument("--latency", type=float, default=2.0, help="server delay per request, seconds (2)")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts (1,2,4)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="sqlite,postgresql")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder and say where it is")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := [b for b in backends if b not in BACKENDS]:
        parser.error(f"unknown backend(s) {unknown}: choose from {','.join(BACKENDS)}")
    if args.files < 1 or not workers or min(workers) < 1:
        parser.error("--files and --workers must be positive")

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(
        f"CPUs: {cpus}; {args.files} files x {CHUNKS_PER_FILE} chunks; latency {args.latency} s/request; "
        f"worker -j {CONCURRENCY}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="whisperbatch-throughput-"))
    rows: list[Row] = []
    try:
        master = tmp / "recordings"
        two_sentence_recordings(master, args.files, find_ffmpeg())
        for backend in backends:
            with store_base(backend, tmp) as base:
                for w in workers:
                    run = f"{backend}_{w}w"
                    database = next_database(backend, base, run)
                    row = one_run(backend, w, database, master, tmp / run, args.latency, args.files)
                    rows.append(row)
                    print(f"  {run}: {row.seconds:.1f} s", flush=True)
        print()
        print_table(rows)
        flagged = [f"{r.backend}/{r.workers}w {line}" for r in rows for line in r.log_lines]
        if flagged:
            print(f"\nworker log lines mentioning {'/'.join(LOG_WORDS)}:")
            print("\n".join(f"  {line}" for line in flagged))
    finally:
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
