"""The store protocol, its records, its migrations, and the SQL both backends run.

Callers see only `JobStore` and typed records (`Job`, `LedgerRow`); rows are read by column name,
never by position. Both backends run the same statements through `SqlStore`: what differs is how a
connection is opened, how a transaction takes its locks (SQLite's BEGIN IMMEDIATE, PostgreSQL's row
locks with SKIP LOCKED and an advisory lock for the budget), and how an idle worker waits for work
(a short sleep, or LISTEN/NOTIFY). The schema grows only by appending named migrations, each applied
once and recorded, so any older database upgrades in place; the same list serves both backends, with
`{pk}` and `{real}` standing for each one's id and float column types.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..models import CostLine, JobState, Spend, Task

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_ledger",
        """
        CREATE TABLE ledger (
            id {pk},
            run_id TEXT NOT NULL,
            recorded_at {real} NOT NULL,
            file TEXT NOT NULL,
            task TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_s {real} NOT NULL,
            billed_min {real} NOT NULL,
            usd_per_min {real} NOT NULL,
            usd {real} NOT NULL,
            api_equivalent_usd {real} NOT NULL
        );
        CREATE INDEX ledger_run ON ledger(run_id);
        """,
    ),
    (
        "002_jobs",
        """
        CREATE TABLE jobs (
            id {pk},
            key TEXT NOT NULL UNIQUE,
            content_sha256 TEXT NOT NULL,
            task TEXT NOT NULL,
            path TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before {real} NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires {real},
            error TEXT,
            transcript TEXT,
            usd {real},
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        );
        CREATE INDEX jobs_state ON jobs(state, not_before);
        CREATE TABLE chunk_results (
            job_key TEXT NOT NULL,
            idx INTEGER NOT NULL,
            offset_s {real} NOT NULL,
            duration_s {real} NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (job_key, idx)
        );
        CREATE TABLE seen_files (
            path TEXT PRIMARY KEY,
            size_bytes BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL,
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
    (
        # Every run is jobs: the run that last asked for a job, the options a worker runs it with, the
        # budget a running job holds, and which job each ledger row paid for.
        "004_runs_are_jobs",
        """
        ALTER TABLE jobs ADD COLUMN run_id TEXT;
        ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE jobs ADD COLUMN reserved_usd {real};
        ALTER TABLE jobs ADD COLUMN reserved_by TEXT;
        ALTER TABLE ledger ADD COLUMN job_key TEXT;
        CREATE INDEX jobs_run ON jobs(run_id);
        CREATE INDEX ledger_job ON ledger(job_key);
        """,
    ),
    (
        # The API line-up of 2027: costs from reported usage, transcription and translation apart (an
        # older row's `usd` was all transcription), and translations kept, so translating a recording
        # into three languages transcribes it once and no translation is paid for twice.
        "005_translation",
        """
        ALTER TABLE ledger ADD COLUMN transcribe_usd {real} NOT NULL DEFAULT 0;
        UPDATE ledger SET transcribe_usd = usd;
        ALTER TABLE ledger ADD COLUMN transcribe_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_model TEXT NOT NULL DEFAULT '';
        ALTER TABLE ledger ADD COLUMN translate_to TEXT NOT NULL DEFAULT '';
        ALTER TABLE ledger ADD COLUMN translate_input_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_output_tokens INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ledger ADD COLUMN translate_usd {real} DEFAULT 0;
        CREATE TABLE translations (
            key TEXT PRIMARY KEY,
            job_key TEXT NOT NULL,
            target TEXT NOT NULL,
            model TEXT NOT NULL,
            texts TEXT NOT NULL,
            created_at {real} NOT NULL
        );
        CREATE INDEX translations_job ON translations(job_key);
        """,
    ),
    (
        # Every answer the engine gave, stored the moment it arrives (a chunk's first answer, and each
        # answer to asking again), so a run stopped while a chunk is still being checked pays for none
        # of them twice.
        "006_answers",
        """
        CREATE TABLE answers (
            job_key TEXT NOT NULL,
            request TEXT NOT NULL,
            result TEXT NOT NULL,
            PRIMARY KEY (job_key, request)
        );
        """,
    ),
    (
        # A price that is not known (a compatible server's own model) is NULL, never 0. SQLite cannot
        # drop a NOT NULL, so the ledger is rebuilt with nullable money columns; its rows keep their
        # order (ids are given afresh, so PostgreSQL's sequence stays in step).
        "007_unknown_prices",
        """
        CREATE TABLE ledger_007 (
            id {pk},
            run_id TEXT NOT NULL,
            recorded_at {real} NOT NULL,
            file TEXT NOT NULL,
            task TEXT NOT NULL,
            engine TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_s {real} NOT NULL,
            billed_min {real} NOT NULL,
            usd_per_min {real},
            usd {real},
            api_equivalent_usd {real},
            state TEXT NOT NULL DEFAULT 'done',
            job_key TEXT,
            transcribe_usd {real} DEFAULT 0,
            transcribe_tokens INTEGER NOT NULL DEFAULT 0,
            translate_model TEXT NOT NULL DEFAULT '',
            translate_to TEXT NOT NULL DEFAULT '',
            translate_input_tokens INTEGER NOT NULL DEFAULT 0,
            translate_output_tokens INTEGER NOT NULL DEFAULT 0,
            translate_usd {real} DEFAULT 0
        );
        INSERT INTO ledger_007 (
            run_id, recorded_at, file, task, engine, model, audio_s, billed_min, usd_per_min, usd,
            api_equivalent_usd, state, job_key, transcribe_usd, transcribe_tokens, translate_model,
            translate_to, translate_input_tokens, translate_output_tokens, translate_usd
        ) SELECT
            run_id, recorded_at, file, task, engine, model, audio_s, billed_min, usd_per_min, usd,
            api_equivalent_usd, state, job_key, transcribe_usd, transcribe_tokens, translate_model,
            translate_to, translate_input_tokens, translate_output_tokens, translate_usd
        FROM ledger ORDER BY id;
        DROP TABLE ledger;
        ALTER TABLE ledger_007 RENAME TO ledger;
        CREATE INDEX ledger_run ON ledger(run_id);
        CREATE INDEX ledger_job ON ledger(job_key);
        """,
    ),
    (
        # A file written from the stored transcript of another name (the same content) has a row of its
        # own, at $0, saying which recording it matched.
        "008_ledger_same_as",
        """
        ALTER TABLE ledger ADD COLUMN same_as TEXT NOT NULL DEFAULT '';
        """,
    ),
    (
        # Which recording each output file was written from: "up to date" is judged by the job (its
        # content and options) that wrote an output, not by modification times, and another
        # recording's outputs are never taken for a recording's own.
        "009_outputs",
        """
        CREATE TABLE outputs (
            path TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            job_key TEXT NOT NULL,
            written_at {real} NOT NULL
        );
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
    run_id: str | None = None  # the run that last asked for it
    options: str = "{}"  # what a worker runs it with (JSON of `jobs.JobOptions`)


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_JOB_COLUMNS = ", ".join(_JOB_FIELDS)
_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(CostLine))
_LINE_COLUMNS = ", ".join(_LINE_FIELDS)
_LINE_UPDATES = ", ".join(f"{f} = ?" for f in _LINE_FIELDS)


def _job(r: Row) -> Job:
    values = {k: r[k] for k in _JOB_FIELDS}
    return Job(**{**values, "task": Task(r["task"]), "path": Path(r["path"]), "state": JobState(r["state"])})


@dataclass(frozen=True)
class LedgerRow:
    run_id: str
    recorded_at: float
    line: CostLine
    state: Spend
    job_key: str | None = None


@dataclass(frozen=True)
class OutputRecord:
    """An output file, the recording it was written for and the job whose transcript it holds."""

    path: Path
    source: Path
    job_key: str


@dataclass(frozen=True)
class BudgetCheck:
    """The answer to a reservation: whether it was granted, and what was left before it."""

    granted: bool
    left_usd: float


class JobStore(Protocol):
    """What the runner, the watcher and the CLI need from a store, whatever the backend."""

    # the ledger
    def record_cost(
        self, run_id: str, line: CostLine, state: Spend, *, job_key: str | None = None, row: int | None = None
    ) -> int: ...
    def ledger(self) -> list[LedgerRow]: ...
    # the budget: what is spent (ledger) and committed (running jobs' reservations), in one place
    def reserve_budget(
        self, key: str, run_id: str, usd: float, *, limit_usd: float, this_run_only: bool
    ) -> BudgetCheck: ...
    def release_budget(self, key: str) -> None: ...
    # jobs
    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None: ...
    def enqueue(
        self,
        key: str,
        sha256: str,
        task: Task,
        path: Path,
        size_bytes: int,
        mtime_ns: int,
        *,
        options: str | None = None,
        run_id: str | None = None,
    ) -> Job: ...
    def job(self, key: str) -> Job | None: ...
    def jobs(self, state: JobState | None = None, *, run_id: str | None = None) -> list[Job]: ...
    def claim(
        self,
        owner: str,
        lease_s: float,
        alive: Callable[[str], bool] | None = None,
        *,
        run_id: str | None = None,
        folder: Path | None = None,
    ) -> Job | None: ...
    def renew(self, owner: str, lease_s: float) -> None: ...
    def finish(self, key: str, transcript: str, usd: float | None) -> None: ...
    def fail(self, key: str, error: str, *, forget: bool = False) -> None: ...
    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None: ...
    def redo(self, key: str, path: Path, *, options: str, run_id: str | None = None) -> None: ...
    def reopen(self, key: str, path: Path, *, options: str, run_id: str | None = None) -> None: ...
    def retry_failed(self, keys: list[str] | None = None) -> int: ...
    def wait_for_work(self, timeout_s: float) -> None: ...
    # finished chunks, so a resumed job uploads only what is missing
    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> str | None: ...
    def save_chunk_result(
        self, key: str, idx: int, offset_s: float, duration_s: float, result: str
    ) -> None: ...
    # every answer as it arrives (a chunk's first, and each asked again), so none is paid for twice
    def answer(self, key: str, request: str) -> str | None: ...
    def save_answer(self, key: str, request: str, result: str) -> None: ...
    # finished translations, by their own key (job, language, model, source cues)
    def translation(self, key: str) -> str | None: ...
    def save_translation(self, key: str, job_key: str, target: str, model: str, texts: str) -> None: ...
    # which recording and job each output file was written from
    def record_outputs(self, paths: Sequence[Path], source: Path, job_key: str) -> None: ...
    def outputs(self, paths: Sequence[Path]) -> dict[Path, OutputRecord]: ...
    def migrate(self) -> list[str]: ...
    def close(self) -> None: ...


class Row(Protocol):
    def __getitem__(self, key: str) -> Any: ...


class Tx(Protocol):
    """One transaction's statements, written with `?` placeholders whatever the backend."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def run(self, sql: str, params: Sequence[Any] = ()) -> int: ...  # rows changed


NOTIFY_CHANNEL = "whisperbatch_jobs"


class SqlStore:
    """Every `JobStore` operation, written once in the SQL both backends understand.

    A backend supplies `_tx` (a transaction that holds its write locks), `_lock_clause` (appended to
    the claim's SELECT), `_lock_budget` (serialises reservations) and `_notify` / `wait_for_work`.
    """

    _lock_clause = ""

    def _tx(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _lock_budget(self, tx: Tx) -> None:
        """Serialise budget reservations across processes (SQLite's write lock already does)."""

    def _notify(self, tx: Tx) -> None:
        """Tell idle workers that a job became runnable (nothing to do where they poll)."""

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._tx() as tx:
            return tx.all(sql, params)

    @staticmethod
    def migration_sql(sql: str, *, pk: str, real: str) -> list[str]:
        return [s for s in sql.replace("{pk}", pk).replace("{real}", real).split(";") if s.strip()]

    def _apply_migrations(self, tx: Tx, pk: str, real: str) -> list[str]:
        tx.run(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at " + real + ")"
        )
        done = {r["name"] for r in tx.all("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            for statement in self.migration_sql(sql, pk=pk, real=real):
                tx.run(statement)
            tx.run("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
            applied.append(name)
        return applied

    # ---- the ledger ---------------------------------------------------------------------------------

    def record_cost(
        self, run_id: str, line: CostLine, state: Spend, *, job_key: str | None = None, row: int | None = None
    ) -> int:
        """Write one file's spend in one run (a new row, or `row` again as it grows); returns the row."""
        with self._tx() as tx:
            values = [getattr(line, f) for f in _LINE_FIELDS]
            if row is not None:
                tx.run(
                    f"UPDATE ledger SET recorded_at = ?, state = ?, {_LINE_UPDATES} WHERE id = ?",
                    (time.time(), str(state), *(str(v) if isinstance(v, Task) else v for v in values), row),
                )
                return row
            inserted = tx.all(
                f"INSERT INTO ledger (run_id, recorded_at, state, job_key, {_LINE_COLUMNS})"
                f" VALUES (?, ?, ?, ?, {', '.join('?' * len(values))}) RETURNING id",
                (
                    run_id,
                    time.time(),
                    str(state),
                    job_key,
                    *(str(v) if isinstance(v, Task) else v for v in values),
                ),
            )
            return int(inserted[0]["id"])

    def ledger(self) -> list[LedgerRow]:
        rows = self._rows(
            f"SELECT run_id, recorded_at, state, job_key, {_LINE_COLUMNS} FROM ledger ORDER BY id"
        )
        return [
            LedgerRow(
                run_id=r["run_id"],
                recorded_at=r["recorded_at"],
                line=CostLine(**{**{k: r[k] for k in _LINE_FIELDS}, "task": Task(r["task"])}),
                state=Spend(r["state"]),
                job_key=r["job_key"],
            )
            for r in rows
        ]

    # ---- the budget -----------------------------------------------------------------------------------

    def reserve_budget(
        self, key: str, run_id: str, usd: float, *, limit_usd: float, this_run_only: bool
    ) -> BudgetCheck:
        """Let job `key` hold `usd` of the budget if spent + committed + usd stays within `limit_usd`.

        Spent is the ledger (this run's rows, or all of them), leaving out the rows of files still in
        progress under a reservation (their reservation stands for them until they end); of a row whose
        sum is unknown (a price not known), the part that is known. Committed is what running jobs
        hold. Both are read in the transaction that writes the reservation.
        """
        scope = " AND run_id = ?" if this_run_only else ""
        known = "COALESCE(l.usd, COALESCE(l.transcribe_usd, 0) + COALESCE(l.translate_usd, 0))"
        with self._tx() as tx:
            self._lock_budget(tx)
            spent = tx.all(
                f"SELECT COALESCE(SUM({known}), 0) AS usd FROM ledger l WHERE NOT (l.state = ? AND EXISTS ("
                " SELECT 1 FROM jobs j WHERE j.key = l.job_key AND j.reserved_by = l.run_id"
                " AND j.reserved_usd IS NOT NULL))" + scope.replace("run_id", "l.run_id"),
                (str(Spend.RUNNING), *((run_id,) if this_run_only else ())),
            )[0]["usd"]
            committed = tx.all(
                "SELECT COALESCE(SUM(reserved_usd), 0) AS usd FROM jobs WHERE reserved_usd IS NOT NULL"
                " AND key <> ?" + scope.replace("run_id", "reserved_by"),
                (key, *((run_id,) if this_run_only else ())),
            )[0]["usd"]
            left = limit_usd - float(spent) - float(committed)
            granted = usd <= left + 1e-9
            if granted:
                tx.run("UPDATE jobs SET reserved_usd = ?, reserved_by = ? WHERE key = ?", (usd, run_id, key))
        return BudgetCheck(granted, left)

    def release_budget(self, key: str) -> None:
        with self._tx() as tx:
            tx.run("UPDATE jobs SET reserved_usd = NULL, reserved_by = NULL WHERE key = ?", (key,))

    # ---- jobs ---------------------------------------------------------------------------------------

    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None:
        """The content hash recorded for this exact file version, so a restart need not hash it again."""
        rows = self._rows(
            "SELECT j.content_sha256 FROM seen_files s JOIN jobs j ON j.key = s.job_key"
            " WHERE s.path = ? AND s.size_bytes = ? AND s.mtime_ns = ?",
            (str(path), size_bytes, mtime_ns),
        )
        return str(rows[0]["content_sha256"]) if rows and rows[0]["content_sha256"] else None

    def enqueue(
        self,
        key: str,
        sha256: str,
        task: Task,
        path: Path,
        size_bytes: int,
        mtime_ns: int,
        *,
        options: str | None = None,
        run_id: str | None = None,
    ) -> Job:
        """Create the job for this content and options unless it exists; return it either way. A job not
        done is marked as `run_id`'s, so the run that asked for it last can run it."""
        now = time.time()
        with self._tx() as tx:
            tx.run(
                "INSERT INTO jobs (key, content_sha256, task, path, state, options, run_id, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, sha256, str(task), str(path), str(JobState.QUEUED), options or "{}", run_id, now, now),
            )
            if run_id is not None:  # the latest asker's options: its outputs are the ones awaited
                tx.run(
                    "UPDATE jobs SET run_id = ?, options = COALESCE(?, options) WHERE key = ? AND state <> ?",
                    (run_id, options, key, str(JobState.DONE)),
                )
            tx.run(
                "INSERT INTO seen_files (path, size_bytes, mtime_ns, job_key) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET size_bytes = excluded.size_bytes,"
                " mtime_ns = excluded.mtime_ns, job_key = excluded.job_key",
                (str(path), size_bytes, mtime_ns, key),
            )
            self._notify(tx)
            return _job(tx.all(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ?", (key,))[0])

    def job(self, key: str) -> Job | None:
        rows = self._rows(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE key = ?", (key,))
        return _job(rows[0]) if rows else None

    def jobs(self, state: JobState | None = None, *, run_id: str | None = None) -> list[Job]:
        where = [(c, v) for c, v in (("state", state and str(state)), ("run_id", run_id)) if v is not None]
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(f"{c} = ?" for c, _ in where)
        return [_job(r) for r in self._rows(sql + " ORDER BY id", [v for _, v in where])]

    def claim(
        self,
        owner: str,
        lease_s: float,
        alive: Callable[[str], bool] | None = None,
        *,
        run_id: str | None = None,
        folder: Path | None = None,
    ) -> Job | None:
        """Take a runnable job: first one whose owner on this host is known dead (`alive`), then the
        oldest queued and due, or running under a lease that expired. Only `run_id`'s jobs if given,
        and with `folder` also those of the recordings under it (a watcher's own).

        The rows are read under the backend's claim lock (SQLite: the database write lock; PostgreSQL:
        FOR UPDATE SKIP LOCKED), so two workers never take the same job and never wait on each other.
        """
        now = time.time()
        clauses: list[str] = []
        params: list[Any] = []
        if folder is not None:
            prefix = os.path.join(folder, "")
            clauses.append("substr(path, 1, ?) = ?")
            params += [len(prefix), prefix]
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        scope = f" AND ({' OR '.join(clauses)})" if clauses else ""
        running = str(JobState.RUNNING)
        with self._tx() as tx:
            found: Job | None = None
            if alive is not None:
                local = tx.all(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = ? AND lease_owner LIKE ?"
                    f" AND lease_owner <> ?{scope} ORDER BY id{self._lock_clause}",
                    (running, socket.gethostname() + ":%", owner, *params),
                )
                found = next(
                    (j for j in map(_job, local) if j.lease_owner and not alive(j.lease_owner)), None
                )
            if found is None:
                rows = tx.all(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE ((state = ? AND not_before <= ?)"
                    f" OR (state = ? AND (lease_expires IS NULL OR lease_expires < ?))){scope}"
                    f" ORDER BY id LIMIT 1{self._lock_clause}",
                    (str(JobState.QUEUED), now, running, now, *params),
                )
                found = _job(rows[0]) if rows else None
            if found is None:
                return None
            tx.run(
                "UPDATE jobs SET state = ?, lease_owner = ?, lease_expires = ?, attempts = attempts + 1,"
                " reserved_usd = NULL, reserved_by = NULL, updated_at = ? WHERE id = ?",
                (running, owner, now + lease_s, now, found.id),
            )
        return dataclasses.replace(
            found,
            state=JobState.RUNNING,
            attempts=found.attempts + 1,
            lease_owner=owner,
            lease_expires=now + lease_s,
        )

    def renew(self, owner: str, lease_s: float) -> None:
        with self._tx() as tx:
            tx.run(
                "UPDATE jobs SET lease_expires = ? WHERE state = ? AND lease_owner = ?",
                (time.time() + lease_s, str(JobState.RUNNING), owner),
            )

    def finish(self, key: str, transcript: str, usd: float | None) -> None:
        self._set(key, JobState.DONE, error=None, transcript=transcript, usd=usd)

    def fail(self, key: str, error: str, *, forget: bool = False) -> None:
        """The job failed; with `forget`, what was stored for it is dropped too (its recording changed
        while it was transcribed, so the answers may be of other audio)."""
        self._set(key, JobState.FAILED, error=error)
        if forget:
            with self._tx() as tx:
                self._forget(tx, key)

    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None:
        """Back to the queue: later (a retryable failure), or now (shutdown, paused queue)."""
        with self._tx() as tx:
            tx.run(
                "UPDATE jobs SET state = ?, lease_owner = NULL, lease_expires = NULL, not_before = ?,"
                " reserved_usd = NULL, reserved_by = NULL, error = ?, attempts = attempts - ?,"
                " updated_at = ? WHERE key = ?",
                (
                    str(JobState.QUEUED),
                    time.time() + delay_s,
                    error,
                    1 if refund_attempt else 0,
                    time.time(),
                    key,
                ),
            )
            self._notify(tx)

    def redo(self, key: str, path: Path, *, options: str, run_id: str | None = None) -> None:
        """`--force`: run a job again from scratch for `path` with this run's `options` (its outputs go
        where this run asks), forgetting its stored chunks, transcript and translations."""
        with self._tx() as tx:
            tx.run(
                "UPDATE jobs SET state = ?, path = ?, options = ?, run_id = COALESCE(?, run_id),"
                " attempts = 0, error = NULL, transcript = NULL, not_before = 0, lease_owner = NULL,"
                " lease_expires = NULL, updated_at = ? WHERE key = ?",
                (str(JobState.QUEUED), str(path), options, run_id, time.time(), key),
            )
            self._forget(tx, key)
            self._notify(tx)

    @staticmethod
    def _forget(tx: Tx, key: str) -> None:
        """Drop a job's stored answers and translations (not its ledger rows: they were paid)."""
        tx.run("DELETE FROM chunk_results WHERE job_key = ?", (key,))
        tx.run("DELETE FROM answers WHERE job_key = ?", (key,))
        tx.run("DELETE FROM translations WHERE job_key = ?", (key,))

    def reopen(self, key: str, path: Path, *, options: str, run_id: str | None = None) -> None:
        """Queue a done job again with new `options` (another translation), keeping its transcript: the
        run that takes it translates what is stored and uploads nothing. A failed job asked for again
        is tried again the same way, for `path`: the file asked for, not the one that failed."""
        with self._tx() as tx:
            tx.run(
                "UPDATE jobs SET state = ?, path = ?, options = ?, run_id = COALESCE(?, run_id),"
                " attempts = 0, error = NULL, not_before = 0, updated_at = ?"
                " WHERE key = ? AND state IN (?, ?)",
                (
                    str(JobState.QUEUED),
                    str(path),
                    options,
                    run_id,
                    time.time(),
                    key,
                    str(JobState.DONE),
                    str(JobState.FAILED),
                ),
            )
            self._notify(tx)

    def retry_failed(self, keys: list[str] | None = None) -> int:
        sql = (
            "UPDATE jobs SET state = ?, attempts = 0, error = NULL, not_before = 0, updated_at = ?"
            " WHERE state = ?"
        )
        params: list[Any] = [str(JobState.QUEUED), time.time(), str(JobState.FAILED)]
        if keys is not None:
            sql += f" AND key IN ({','.join('?' * len(keys))})" if keys else " AND 1 = 0"
            params += keys
        with self._tx() as tx:
            count = tx.run(sql, params)
            self._notify(tx)
            return count

    def _set(
        self,
        key: str,
        state: JobState,
        *,
        error: str | None,
        transcript: str | None = None,
        usd: float | None = None,
    ) -> None:
        with self._tx() as tx:
            tx.run(
                "UPDATE jobs SET state = ?, error = ?, transcript = COALESCE(?, transcript),"
                " usd = COALESCE(?, usd), lease_owner = NULL, lease_expires = NULL, reserved_usd = NULL,"
                " reserved_by = NULL, updated_at = ? WHERE key = ?",
                (str(state), error, transcript, usd, time.time(), key),
            )
            self._notify(tx)

    # ---- finished translations ------------------------------------------------------------------------

    def translation(self, key: str) -> str | None:
        rows = self._rows("SELECT texts FROM translations WHERE key = ?", (key,))
        return str(rows[0]["texts"]) if rows else None

    def save_translation(self, key: str, job_key: str, target: str, model: str, texts: str) -> None:
        with self._tx() as tx:
            tx.run(
                "INSERT INTO translations (key, job_key, target, model, texts, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET texts = excluded.texts",
                (key, job_key, target, model, texts, time.time()),
            )

    # ---- which recording each output was written from --------------------------------------------------

    def record_outputs(self, paths: Sequence[Path], source: Path, job_key: str) -> None:
        with self._tx() as tx:
            for path in paths:
                tx.run(
                    "INSERT INTO outputs (path, source, job_key, written_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (path) DO UPDATE SET source = excluded.source,"
                    " job_key = excluded.job_key, written_at = excluded.written_at",
                    (str(path), str(source), job_key, time.time()),
                )

    def outputs(self, paths: Sequence[Path]) -> dict[Path, OutputRecord]:
        """The records of those of `paths` that whisperbatch wrote."""
        found: dict[Path, OutputRecord] = {}
        for start in range(0, len(paths), 500):  # within every backend's limit on parameters
            batch = [str(p) for p in paths[start : start + 500]]
            rows = self._rows(
                f"SELECT path, source, job_key FROM outputs WHERE path IN ({', '.join('?' * len(batch))})",
                batch,
            )
            for r in rows:
                found[Path(r["path"])] = OutputRecord(Path(r["path"]), Path(r["source"]), str(r["job_key"]))
        return found

    # ---- finished chunks ------------------------------------------------------------------------------

    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> str | None:
        rows = self._rows(
            "SELECT result FROM chunk_results WHERE job_key = ? AND idx = ?"
            " AND abs(offset_s - ?) < 0.001 AND abs(duration_s - ?) < 0.001",
            (key, idx, offset_s, duration_s),
        )
        return str(rows[0]["result"]) if rows else None

    def save_chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float, result: str) -> None:
        with self._tx() as tx:
            tx.run(
                "INSERT INTO chunk_results (job_key, idx, offset_s, duration_s, result)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_key, idx) DO UPDATE SET"
                " offset_s = excluded.offset_s, duration_s = excluded.duration_s, result = excluded.result",
                (key, idx, offset_s, duration_s, result),
            )

    def answer(self, key: str, request: str) -> str | None:
        rows = self._rows("SELECT result FROM answers WHERE job_key = ? AND request = ?", (key, request))
        return str(rows[0]["result"]) if rows else None

    def save_answer(self, key: str, request: str, result: str) -> None:
        with self._tx() as tx:
            tx.run(
                "INSERT INTO answers (job_key, request, result) VALUES (?, ?, ?)"
                " ON CONFLICT (job_key, request) DO UPDATE SET result = excluded.result",
                (key, request, result),
            )
