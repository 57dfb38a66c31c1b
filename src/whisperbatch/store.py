"""The job store: jobs, finished chunk results, seen files and the spend ledger, behind `JobStore`.

Callers see only the protocol and typed records (`Job`, `LedgerRow`); rows are read by column name,
never by position. `SqliteStore` is the embedded backend under WHISPERBATCH_HOME: durable, no server,
and its locking lets a watcher and one-off runs share one file (WAL so readers never block the
writer, `busy_timeout` so brief contention waits rather than fails). The schema grows only by
appending named migrations, each applied once and recorded, so any older database upgrades in place.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .errors import ConfigError
from .models import CostLine, JobState, Spend, Task

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_ledger",
        """
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            recorded_at REAL NOT NULL,
            file TEXT NOT NULL,
            task TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_s REAL NOT NULL,
            billed_min REAL NOT NULL,
            usd_per_min REAL NOT NULL,
            usd REAL NOT NULL,
            api_equivalent_usd REAL NOT NULL
        );
        CREATE INDEX ledger_run ON ledger(run_id);
        """,
    ),
    (
        "002_jobs",
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            content_sha256 TEXT NOT NULL,
            task TEXT NOT NULL,
            path TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            error TEXT,
            transcript TEXT,
            usd REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX jobs_state ON jobs(state, not_before);
        CREATE TABLE chunk_results (
            job_key TEXT NOT NULL,
            idx INTEGER NOT NULL,
            offset_s REAL NOT NULL,
            duration_s REAL NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (job_key, idx)
        );
        CREATE TABLE seen_files (
            path TEXT PRIMARY KEY,
            size_bytes INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            job_key TEXT NOT NULL
        );
        """,
    ),
    (
        "003_ledger_state",
        """
        ALTER TABLE ledger ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
        """,
    ),
)


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    content_sha256: str
    task: Task
    path: Path
    state: JobState
    attempts: int
    error: str | None
    transcript: str | None
    usd: float | None
    updated_at: float
    lease_owner: str | None = None
    lease_expires: float | None = None


_JOB_COLUMNS = ", ".join(f.name for f in dataclasses.fields(Job))


def _job(r: sqlite3.Row) -> Job:
    return Job(
        **{
            **{k: r[k] for k in r.keys()},  # noqa: SIM118 - sqlite3.Row has keys() but no iteration by key
            "task": Task(r["task"]),
            "path": Path(r["path"]),
            "state": JobState(r["state"]),
        }
    )


_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(CostLine))
_LINE_COLUMNS = ", ".join(_LINE_FIELDS)


@dataclass(frozen=True)
class LedgerRow:
    run_id: str
    recorded_at: float
    line: CostLine
    state: Spend


class JobStore(Protocol):
    """What the runners, the watcher and the CLI need from a store, whatever the backend."""

    def record_cost(self, run_id: str, line: CostLine, state: Spend, row: int | None = None) -> int: ...
    def ledger(self) -> list[LedgerRow]: ...
    def total_spent_usd(self, *, except_running_in: str | None = None) -> float: ...
    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None: ...
    def enqueue(
        self, key: str, sha256: str, task: Task, path: Path, size_bytes: int, mtime_ns: int
    ) -> Job: ...
    def job(self, key: str) -> Job | None: ...
    def jobs(self, state: JobState | None = None) -> list[Job]: ...
    def claim(self, owner: str, lease_s: float, alive: Callable[[str], bool] | None = None) -> Job | None: ...
    def renew(self, owner: str, lease_s: float) -> None: ...
    def finish(self, key: str, transcript: str, usd: float) -> None: ...
    def fail(self, key: str, error: str) -> None: ...
    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None: ...
    def redo(self, key: str, path: Path) -> None: ...
    def retry_failed(self, keys: list[str] | None = None) -> int: ...
    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> str | None: ...
    def save_chunk_result(
        self, key: str, idx: int, offset_s: float, duration_s: float, result: str
    ) -> None: ...
    def migrate(self) -> list[str]: ...
    def close(self) -> None: ...


def open_store(settings: Settings) -> JobStore:
    """The store these settings name (raises ConfigError when it cannot be opened)."""
    return SqliteStore(settings.ledger_path)


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"{path}: cannot open the state database ({e})") from e

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so read-then-write cannot race another process.
        The thread lock keeps this process's workers from interleaving statements on the one connection."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def migrate(self) -> list[str]:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        applied = []
        with self.transaction() as db:
            done = {r["name"] for r in db.execute("SELECT name FROM schema_migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, time.time()))
                applied.append(name)
        return applied

    def record_cost(self, run_id: str, line: CostLine, state: Spend, row: int | None = None) -> int:
        """Write one file's spend in one run (a new row, or `row` again as it grows); returns the row."""
        values = (
            run_id,
            time.time(),
            line.file,
            str(line.task),
            line.engine,
            line.model,
            line.audio_s,
            line.billed_min,
            line.usd_per_min,
            line.usd,
            line.api_equivalent_usd,
            str(state),
        )
        with self.transaction() as db:
            if row is not None:
                db.execute(
                    "UPDATE ledger SET recorded_at = ?, billed_min = ?, usd = ?, api_equivalent_usd = ?,"
                    " state = ? WHERE id = ?",
                    (values[1], line.billed_min, line.usd, line.api_equivalent_usd, str(state), row),
                )
                return row
            cursor = db.execute(
                "INSERT INTO ledger (run_id, recorded_at, file, task, engine, model, audio_s, billed_min,"
                " usd_per_min, usd, api_equivalent_usd, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            return int(cursor.lastrowid or 0)

    def ledger(self) -> list[LedgerRow]:
        rows = self._query(f"SELECT run_id, recorded_at, state, {_LINE_COLUMNS} FROM ledger ORDER BY id")
        return [
            LedgerRow(
                run_id=r["run_id"],
                recorded_at=r["recorded_at"],
                line=CostLine(**{**{k: r[k] for k in _LINE_FIELDS}, "task": Task(r["task"])}),
                state=Spend(r["state"]),
            )
            for r in rows
        ]

    def total_spent_usd(self, *, except_running_in: str | None = None) -> float:
        """Everything the ledger says was spent; `except_running_in` leaves out that run's files still
        in progress (their budget is reserved separately until they end)."""
        return float(
            self._query(
                "SELECT COALESCE(SUM(usd), 0) AS spent FROM ledger WHERE NOT (state = ? AND run_id = ?)",
                (str(Spend.RUNNING), except_running_in or ""),
            )[0]["spent"]
        )

    # ---- jobs (the watcher) -------------------------------------------------------------------------

    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None:
        """The job key recorded for this exact file version, so a restart need not hash it again."""
        rows = self._query(
            "SELECT job_key FROM seen_files WHERE path = ? AND size_bytes = ? AND mtime_ns = ?",
            (str(path), size_bytes, mtime_ns),
        )
        return str(rows[0]["job_key"]) if rows else None

    def enqueue(self, key: str, sha256: str, task: Task, path: Path, size_bytes: int, mtime_ns: int) -> Job:
        """Create the job for this content and options unless it exists; return it either way."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO jobs (key, content_sha256, task, path, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (key, sha256, str(task), str(path), now, now),
            )
            db.execute(
                "INSERT OR REPLACE INTO seen_files (path, size_bytes, mtime_ns, job_key) VALUES (?, ?, ?, ?)",
                (str(path), size_bytes, mtime_ns, key),
            )
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ?", (key,)).fetchone()
        return _job(row)

    def job(self, key: str) -> Job | None:
        row = next(iter(self._query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ?", (key,))), None)
        return None if row is None else _job(row)

    def jobs(self, state: JobState | None = None) -> list[Job]:
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        rows = self._query(
            sql + " WHERE state = ? ORDER BY id" if state else sql + " ORDER BY id",
            (str(state),) if state else (),
        )
        return [_job(r) for r in rows]

    def claim(self, owner: str, lease_s: float, alive: Callable[[str], bool] | None = None) -> Job | None:
        """Take the oldest runnable job: queued and due, or running under a lease that has expired
        (or whose owner is known dead). Inside BEGIN IMMEDIATE so two workers never take the same job."""
        now = time.time()
        with self.transaction() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE (state = 'queued' AND not_before <= ?)"
                " OR state = 'running' ORDER BY id",
                (now,),
            ).fetchall()
            for r in rows:
                job = _job(r)
                if job.state is JobState.RUNNING:
                    expired = job.lease_expires is None or job.lease_expires < now
                    dead = alive is not None and job.lease_owner is not None and not alive(job.lease_owner)
                    if not (expired or dead) or job.lease_owner == owner:
                        continue
                db.execute(
                    "UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires = ?,"
                    " attempts = attempts + 1, updated_at = ? WHERE id = ?",
                    (owner, now + lease_s, now, job.id),
                )
                return dataclasses.replace(
                    job,
                    state=JobState.RUNNING,
                    attempts=job.attempts + 1,
                    lease_owner=owner,
                    lease_expires=now + lease_s,
                )
        return None

    def renew(self, owner: str, lease_s: float) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET lease_expires = ? WHERE state = 'running' AND lease_owner = ?",
                (time.time() + lease_s, owner),
            )

    def finish(self, key: str, transcript: str, usd: float) -> None:
        self._set(key, JobState.DONE, error=None, transcript=transcript, usd=usd)

    def fail(self, key: str, error: str) -> None:
        self._set(key, JobState.FAILED, error=error)

    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None:
        """Back to the queue: later (a retryable failure), or now (shutdown, paused queue)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL, not_before = ?,"
                " error = ?, attempts = attempts - ?, updated_at = ? WHERE key = ?",
                (time.time() + delay_s, error, 1 if refund_attempt else 0, time.time(), key),
            )

    def redo(self, key: str, path: Path) -> None:
        """`--force`: run a finished job again from scratch for `path`, forgetting its stored chunks."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', path = ?, attempts = 0, error = NULL, not_before = 0,"
                " lease_owner = NULL, lease_expires = NULL, updated_at = ? WHERE key = ?",
                (str(path), time.time(), key),
            )
            db.execute("DELETE FROM chunk_results WHERE job_key = ?", (key,))

    def retry_failed(self, keys: list[str] | None = None) -> int:
        with self.transaction() as db:
            sql = (
                "UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, not_before = 0, updated_at = ?"
            )
            if keys is None:
                return db.execute(sql + " WHERE state = 'failed'", (time.time(),)).rowcount
            marks = ",".join("?" * len(keys))
            return db.execute(
                sql + f" WHERE state = 'failed' AND key IN ({marks})", (time.time(), *keys)
            ).rowcount

    def _set(
        self,
        key: str,
        state: JobState,
        *,
        error: str | None,
        transcript: str | None = None,
        usd: float | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, transcript = COALESCE(?, transcript),"
                " usd = COALESCE(?, usd), lease_owner = NULL, lease_expires = NULL, updated_at = ?"
                " WHERE key = ?",
                (str(state), error, transcript, usd, time.time(), key),
            )

    # ---- finished chunks, so a resumed job uploads only what is missing ----------------------------------

    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> str | None:
        row = next(
            iter(
                self._query(
                    "SELECT result FROM chunk_results WHERE job_key = ? AND idx = ?"
                    " AND abs(offset_s - ?) < 0.001 AND abs(duration_s - ?) < 0.001",
                    (key, idx, offset_s, duration_s),
                )
            ),
            None,
        )
        return None if row is None else str(row["result"])

    def save_chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float, result: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO chunk_results (job_key, idx, offset_s, duration_s, result)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, idx, offset_s, duration_s, result),
            )

    def close(self) -> None:
        self._db.close()
