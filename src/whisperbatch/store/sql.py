"""Every store operation, once, over the named statements both backends run (`queries`).

A backend supplies a transaction (`_tx`) that holds its write locks and runs a `Query` with named
values, and says how idle workers wake (`_notify`, `wait_for_work`); what a statement means, and how
rows become records, is written here once. PostgreSQL's claim skips rows another worker holds, its
budget takes an advisory lock and its new work sends a NOTIFY; SQLite gets the same from its one
database write lock and a short poll.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ..models import CostLine, EngineResult, JobState, Spend, Task, Transcript
from . import queries as q
from .codec import (
    embedding_to_json,
    options_to_json,
    result_from_json,
    result_to_json,
    texts_from_json,
    texts_to_json,
    transcript_to_json,
)
from .migrations import MIGRATIONS, ColumnTypes, migration_sql
from .outbox import SqlWebhookOutbox
from .queries import Query
from .records import (
    CANCELLED,
    ApiKey,
    BudgetCheck,
    Job,
    LedgerRow,
    OutputRecord,
    Row,
    Voice,
    cost_line_params,
)


class Tx(Protocol):
    """One transaction: named statements with their values by name, and migrations' DDL as written."""

    def all(self, query: Query, /, **params: Any) -> list[Row]: ...
    def run(self, query: Query, /, **params: Any) -> int: ...  # rows changed
    def ddl(self, statement: str) -> None: ...


class SqlStore(SqlWebhookOutbox):
    """`JobStore` over SQL; a backend supplies `_tx`, `column_types`, and its way of waking workers."""

    column_types: ColumnTypes

    def _tx(self) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _lock_budget(self, tx: Tx) -> None:
        """Serialise budget reservations across processes (SQLite's write lock already does)."""

    def _notify(self, tx: Tx) -> None:
        """Tell idle workers that a job became runnable (nothing to do where they poll)."""

    def _rows(self, query: Query, /, **params: Any) -> list[Row]:
        with self._tx() as tx:
            return tx.all(query, **params)

    def _write(self, query: Query, /, **params: Any) -> None:
        with self._tx() as tx:
            tx.run(query, **params)

    def _apply_migrations(self, tx: Tx) -> list[str]:
        tx.run(q.CREATE_MIGRATIONS_TABLE)
        done = {r["name"] for r in tx.all(q.APPLIED_MIGRATIONS)}
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            for statement in migration_sql(sql, pk=self.column_types.pk, real=self.column_types.real):
                tx.ddl(statement)
            tx.run(q.RECORD_MIGRATION, name=name, applied_at=time.time())
            applied.append(name)
        return applied

    # ---- the ledger ---------------------------------------------------------------------------------

    def record_cost(
        self, run_id: str, line: CostLine, state: Spend, *, job_key: str | None = None, row: int | None = None
    ) -> int:
        """Write one file's spend in one run (a new row, or `row` again as it grows); returns the row."""
        values = cost_line_params(line) | {"recorded_at": time.time(), "state": str(state)}
        with self._tx() as tx:
            if row is not None:
                tx.run(q.UPDATE_COST, id=row, **values)
                return row
            inserted = tx.all(q.INSERT_COST, run_id=run_id, job_key=job_key, **values)
            return int(inserted[0]["id"])

    def ledger(self) -> list[LedgerRow]:
        return [LedgerRow.from_row(r) for r in self._rows(q.LEDGER)]

    def reserve_budget(
        self, key: str, run_id: str, usd: float, *, limit_usd: float, this_run_only: bool
    ) -> BudgetCheck:
        """Let job `key` hold `usd` of the budget if spent + committed + usd stays within `limit_usd`,
        counting this run's spending only or everyone's. Both sums are read in the transaction that
        writes the reservation."""
        scope = run_id if this_run_only else None
        with self._tx() as tx:
            self._lock_budget(tx)
            spent = tx.all(q.SPENT_USD, run_id=scope)[0]["usd"]
            committed = tx.all(q.COMMITTED_USD, key=key, run_id=scope)[0]["usd"]
            left = limit_usd - float(spent) - float(committed)
            granted = usd <= left + 1e-9
            if granted:
                tx.run(q.RESERVE_BUDGET, usd=usd, run_id=run_id, key=key)
        return BudgetCheck(granted, left)

    def release_budget(self, key: str) -> None:
        self._write(q.RELEASE_BUDGET, key=key)

    # ---- jobs ---------------------------------------------------------------------------------------

    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None:
        """The content hash recorded for this exact file version, so a restart need not hash it again."""
        rows = self._rows(q.SEEN_SHA256, path=str(path), size_bytes=size_bytes, mtime_ns=mtime_ns)
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
        options: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Job:
        """Create the job for this content and options unless it exists; return it either way. A job not
        done is marked as `run_id`'s, so the run that asked for it last can run it."""
        stored = None if options is None else options_to_json(options)
        with self._tx() as tx:
            tx.run(
                q.INSERT_JOB,
                key=key,
                sha256=sha256,
                task=str(task),
                path=str(path),
                options=stored or "{}",
                run_id=run_id,
                now=time.time(),
            )
            if run_id is not None:
                tx.run(q.ASK_FOR_JOB, run_id=run_id, options=stored, key=key)
            tx.run(q.SEE_FILE, path=str(path), size_bytes=size_bytes, mtime_ns=mtime_ns, key=key)
            self._notify(tx)
            return Job.from_row(tx.all(q.JOB, key=key)[0])

    def job(self, key: str) -> Job | None:
        rows = self._rows(q.JOB, key=key)
        return Job.from_row(rows[0]) if rows else None

    def job_by_id(self, job_id: int) -> Job | None:
        rows = self._rows(q.JOB_BY_ID, id=job_id)
        return Job.from_row(rows[0]) if rows else None

    def count_jobs(self, state: JobState) -> int:
        return int(self._rows(q.COUNT_JOBS, state=str(state))[0]["n"])

    def job_spend(self, key: str) -> float:
        """What job `key` has cost so far, over all its runs (a running one's answers included)."""
        return float(self._rows(q.JOB_SPEND, key=key)[0]["usd"])

    def jobs(self, state: JobState | None = None, *, run_id: str | None = None) -> list[Job]:
        rows = self._rows(q.JOBS, state=None if state is None else str(state), run_id=run_id)
        return [Job.from_row(r) for r in rows]

    def latest_jobs(self, state: JobState | None, limit: int) -> list[Job]:
        """The newest `limit` jobs (of `state`), newest first, read without the rest and without their
        transcripts (`transcript` is None): a page of a list."""
        rows = self._rows(q.LATEST_JOBS, state=None if state is None else str(state), limit=limit)
        return [Job.from_row(r) for r in rows]

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
        prefix = None if folder is None else os.path.join(folder, "")
        scope = {"folder": prefix, "folder_len": None if prefix is None else len(prefix), "run_id": run_id}
        with self._tx() as tx:
            found: Job | None = None
            if alive is not None:
                local = tx.all(q.CLAIM_ORPHANS, this_host=socket.gethostname() + ":%", owner=owner, **scope)
                found = next(
                    (j for j in map(Job.from_row, local) if j.lease_owner and not alive(j.lease_owner)), None
                )
            if found is None:
                rows = tx.all(q.CLAIM_NEXT, now=now, **scope)
                found = Job.from_row(rows[0]) if rows else None
            if found is None:
                return None
            tx.run(q.TAKE_JOB, owner=owner, lease_expires=now + lease_s, now=now, id=found.id)
        return dataclasses.replace(
            found,
            state=JobState.RUNNING,
            attempts=found.attempts + 1,
            lease_owner=owner,
            lease_expires=now + lease_s,
        )

    def renew(self, owner: str, lease_s: float) -> None:
        self._write(q.RENEW_LEASES, lease_expires=time.time() + lease_s, owner=owner)

    def finish(self, key: str, transcript: Transcript, usd: float | None) -> None:
        with self._tx() as tx:
            tx.run(q.FINISH_JOB, transcript=transcript_to_json(transcript), usd=usd, now=time.time(), key=key)
            self._notify(tx)

    def fail(self, key: str, error: str, *, forget: bool = False) -> None:
        """The job failed; with `forget`, what was stored for it is dropped too (its recording changed
        while it was transcribed, so the answers may be of other audio)."""
        with self._tx() as tx:
            tx.run(q.FAIL_JOB, error=error, now=time.time(), key=key)
            self._notify(tx)
        if forget:
            with self._tx() as tx:
                self._forget(tx, key)

    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None:
        """Back to the queue: later (a retryable failure), or now (shutdown, paused queue)."""
        with self._tx() as tx:
            now = time.time()
            tx.run(
                q.REQUEUE_JOB,
                not_before=now + delay_s,
                error=error,
                refunded=1 if refund_attempt else 0,
                now=now,
                key=key,
            )
            self._notify(tx)

    def redo(self, key: str, path: Path, *, options: Mapping[str, Any], run_id: str | None = None) -> None:
        """`--force`: run a job again from scratch for `path` with this run's `options` (its outputs go
        where this run asks), forgetting its stored chunks, transcript, translations and speaker labels."""
        with self._tx() as tx:
            self._queue_again(tx, q.REDO_JOB, key, path, options, run_id)
            self._forget(tx, key)

    def reopen(self, key: str, path: Path, *, options: Mapping[str, Any], run_id: str | None = None) -> None:
        """Queue a done job again with new `options` (another translation), keeping its transcript: the
        run that takes it translates what is stored and uploads nothing. A failed job asked for again
        is tried again the same way, for `path`: the file asked for, not the one that failed."""
        with self._tx() as tx:
            self._queue_again(tx, q.REOPEN_JOB, key, path, options, run_id)

    def _queue_again(
        self, tx: Tx, query: Query, key: str, path: Path, options: Mapping[str, Any], run_id: str | None
    ) -> None:
        stored = options_to_json(options)
        tx.run(query, path=str(path), options=stored, run_id=run_id, now=time.time(), key=key)
        self._notify(tx)

    @staticmethod
    def _forget(tx: Tx, key: str) -> None:
        """Drop a job's stored answers, translations and speaker labels (not its ledger rows: they were
        paid)."""
        forgotten = (q.FORGET_CHUNK_RESULTS, q.FORGET_ANSWERS, q.FORGET_TRANSLATIONS, q.FORGET_SPEAKER_LABELS)
        for query in forgotten:
            tx.run(query, key=key)

    def retry_failed(self, keys: list[str] | None = None) -> int:
        with self._tx() as tx:
            count = tx.run(q.RETRY_FAILED, now=time.time(), keys=None if keys is None else json.dumps(keys))
            self._notify(tx)
            return count

    # ---- how far a running job is, and its cancel ------------------------------------------------------

    def job_started(self, key: str, audio_s: float) -> None:
        """Its run probed the recording (`audio_s` long) and begins: the pace of its ETA counts from now."""
        self._write(q.JOB_STARTED, audio_s=audio_s, now=time.time(), key=key)

    def chunk_done(self, key: str, covered_s: float) -> bool:
        """One more chunk answered, accounting for `covered_s` of the recording. True when a cancel was
        asked meanwhile."""
        with self._tx() as tx:
            rows = tx.all(q.CHUNK_DONE, covered_s=covered_s, key=key)
        return bool(rows and rows[0]["cancel_requested"])

    def chunks_counted(self, key: str, total: int) -> None:
        """The recording is cut: `total` chunks."""
        self._write(q.CHUNKS_COUNTED, total=total, key=key)

    def cancel(self, key: str) -> Job | None:
        """A queued job ends at once, failed as cancelled; a running one is marked, and the worker that
        runs it stops it (`cancels`). A job done or failed is left as it is. Returns the job after."""
        with self._tx() as tx:
            now = time.time()
            if not tx.run(q.CANCEL_QUEUED, error=CANCELLED, now=now, key=key):
                tx.run(q.REQUEST_CANCEL, now=now, key=key)
            rows = tx.all(q.JOB, key=key)
        return Job.from_row(rows[0]) if rows else None

    def cancels(self, owner: str) -> list[str]:
        """The keys of `owner`'s running jobs whose cancel was asked."""
        return [str(r["key"]) for r in self._rows(q.CANCELS, owner=owner)]

    # ---- what jobs made ---------------------------------------------------------------------------------

    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> EngineResult | None:
        rows = self._rows(q.CHUNK_RESULT, key=key, idx=idx, offset_s=offset_s, duration_s=duration_s)
        return result_from_json(rows[0]["result"]) if rows else None

    def save_chunk_result(
        self, key: str, idx: int, offset_s: float, duration_s: float, result: EngineResult
    ) -> None:
        self._write(
            q.SAVE_CHUNK_RESULT,
            key=key,
            idx=idx,
            offset_s=offset_s,
            duration_s=duration_s,
            result=result_to_json(result),
        )

    def answer(self, key: str, request: str) -> EngineResult | None:
        rows = self._rows(q.ANSWER, key=key, request=request)
        return result_from_json(rows[0]["result"]) if rows else None

    def save_answer(self, key: str, request: str, result: EngineResult) -> None:
        self._write(q.SAVE_ANSWER, key=key, request=request, result=result_to_json(result))

    def translation(self, key: str) -> list[str] | None:
        rows = self._rows(q.TRANSLATION, key=key)
        return texts_from_json(rows[0]["texts"]) if rows else None

    def save_translation(self, key: str, job_key: str, target: str, model: str, texts: Sequence[str]) -> None:
        self._write(
            q.SAVE_TRANSLATION,
            key=key,
            job_key=job_key,
            target=target,
            model=model,
            texts=texts_to_json(texts),
            now=time.time(),
        )

    # ---- which recording each output was written from --------------------------------------------------

    def record_outputs(self, paths: Sequence[Path], source: Path, job_key: str) -> None:
        """`job_key` is the job's key, or it with speaker options (`key:speakers:…`): kept whole, and the
        job's own key beside it, by which a job's outputs are found."""
        job, now = job_key.partition(":")[0], time.time()
        with self._tx() as tx:
            for path in paths:
                tx.run(q.RECORD_OUTPUT, path=str(path), source=str(source), job_key=job_key, job=job, now=now)

    def outputs(self, paths: Sequence[Path]) -> dict[Path, OutputRecord]:
        """The records of those of `paths` that whisperbatch wrote."""
        rows = self._rows(q.OUTPUTS, paths=json.dumps([str(p) for p in paths]))
        return {record.path: record for record in map(OutputRecord.from_row, rows)}

    def job_outputs(self, key: str) -> list[OutputRecord]:
        """The outputs written from job `key`'s transcript (with or without speaker labels)."""
        return [OutputRecord.from_row(r) for r in self._rows(q.JOB_OUTPUTS, key=key)]

    # ---- server keys --------------------------------------------------------------------------------------

    def add_key(self, name: str, prefix: str, sha256: str) -> bool:
        """Keep a new key by its hash; False, with nothing changed, when the name is taken."""
        with self._tx() as tx:
            return tx.run(q.ADD_KEY, name=name, prefix=prefix, sha256=sha256, now=time.time()) > 0

    def api_keys(self) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in self._rows(q.API_KEYS)]

    def revoke_key(self, name: str) -> bool:
        """False when no live key has that name."""
        with self._tx() as tx:
            return tx.run(q.REVOKE_KEY, name=name, now=time.time()) > 0

    # ---- who speaks ---------------------------------------------------------------------------------------

    def voices(self) -> list[Voice]:
        """The registered voices, by name."""
        return [Voice.from_row(r) for r in self._rows(q.VOICES)]

    def add_voice(self, name: str, embedding: Sequence[float], source: str, *, replace: bool) -> bool:
        """Register `name`'s voiceprint, from the clip `source`; False, with nothing changed, when the
        name is registered already and not `replace`."""
        query = q.PUT_VOICE if replace else q.ADD_VOICE
        values = {"embedding": embedding_to_json(embedding), "source": source, "now": time.time()}
        with self._tx() as tx:
            return tx.run(query, name=name, **values) > 0

    def remove_voice(self, name: str) -> bool:
        """Forget a voice; False when no voice has that name."""
        with self._tx() as tx:
            return tx.run(q.REMOVE_VOICE, name=name) > 0

    def speaker_labels(self, key: str) -> str | None:
        rows = self._rows(q.SPEAKER_LABELS, key=key)
        return str(rows[0]["diarization"]) if rows else None

    def save_speaker_labels(self, key: str, job_key: str, data: str) -> None:
        self._write(q.SAVE_SPEAKER_LABELS, key=key, job_key=job_key, data=data, now=time.time())
