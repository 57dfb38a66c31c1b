"""SQLite state under WHISPERBATCH_HOME: the spend ledger (and, for the watcher, job state).

SQLite because it is durable, needs no server, and its locking lets a watcher and one-off runs share
one file: WAL so readers never block the writer, `busy_timeout` so brief contention waits rather than
fails. The schema grows only by appending named migrations, each applied once and recorded, so any
older database upgrades in place.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .models import CostLine, Task

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
)


@dataclass(frozen=True)
class LedgerRow:
    run_id: str
    recorded_at: float
    line: CostLine


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"{path}: cannot open the state database ({e})") from e

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so read-then-write cannot race another process."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def migrate(self) -> list[str]:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        applied = []
        with self.transaction() as db:
            done = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, time.time()))
                applied.append(name)
        return applied

    def record_cost(self, run_id: str, line: CostLine) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO ledger (run_id, recorded_at, file, task, engine, model, audio_s, billed_min,"
                " usd_per_min, usd, api_equivalent_usd) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
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
                ),
            )

    def ledger(self) -> list[LedgerRow]:
        rows = self._db.execute(
            "SELECT run_id, recorded_at, file, audio_s, billed_min, engine, model, usd_per_min, usd,"
            " api_equivalent_usd, task FROM ledger ORDER BY id"
        ).fetchall()
        return [
            LedgerRow(
                run_id=r[0],
                recorded_at=r[1],
                line=CostLine(
                    file=r[2],
                    audio_s=r[3],
                    billed_min=r[4],
                    engine=r[5],
                    model=r[6],
                    usd_per_min=r[7],
                    usd=r[8],
                    api_equivalent_usd=r[9],
                    task=Task(r[10]),
                ),
            )
            for r in rows
        ]

    def total_spent_usd(self) -> float:
        return float(self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM ledger").fetchone()[0])

    def close(self) -> None:
        self._db.close()
