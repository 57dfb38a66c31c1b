"""The shared backend: a PostgreSQL database through psycopg 3, for workers on several hosts.

- Claims read candidate rows `FOR UPDATE SKIP LOCKED`: two workers never take the same job, and
  neither waits while the other decides. Leases are renewed by a heartbeat; a job whose lease
  expired (its worker died or lost the network) is taken over by whoever claims next.
- Budget reservations take a transaction-scoped advisory lock, so two hosts cannot both spend the
  last dollar.
- Idle workers wait on `LISTEN whisperbatch_jobs`; whatever makes a job runnable sends a NOTIFY in
  the same transaction, so a worker wakes when the job is committed instead of polling. (A job
  delayed by a retry's backoff wakes nobody; the wait's timeout covers it.)
- Migrations run under an advisory lock, so workers starting at once apply each one once.

Why not procrastinate: it is a good PostgreSQL task queue, but its jobs are calls of Python functions
with its own schema, lock and retry model, and it has no SQLite backend. Our queue also holds each
job's finished chunks, the spend ledger and the budget's reservations, and must behave the same on
the embedded SQLite store; one set of named statements (`queries`) over both backends keeps one behaviour,
where procrastinate would add a second queue beside the one SQLite needs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ..errors import ConfigError, StoreError
from . import queries as q
from .migrations import POSTGRES_TYPES
from .queries import Query
from .records import Row
from .sql import SqlStore, Tx

_MIGRATION_LOCK, _BUDGET_LOCK = 0x77687370, 0x77686264  # advisory lock ids ("whsp", "whbd")


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


@cache
def _statement(query: Query) -> sql.Composed:
    """The statement with psycopg's own placeholder for each `{name}`."""
    return sql.SQL(query.postgres).format(**{name: sql.Placeholder(name) for name in query.names})


class _PgTx:
    def __init__(self, cur: psycopg.Cursor[dict[str, Any]]) -> None:
        self.cur = cur

    def all(self, query: Query, /, **params: Any) -> list[Row]:
        self.cur.execute(_statement(query), params)
        return list(self.cur.fetchall()) if self.cur.description else []

    def run(self, query: Query, /, **params: Any) -> int:
        self.cur.execute(_statement(query), params)
        return self.cur.rowcount

    def ddl(self, statement: str) -> None:
        self.cur.execute(statement)


class PostgresStore(SqlStore):
    column_types = POSTGRES_TYPES

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._listener: psycopg.Connection[Any] | None = None
        self._listening = threading.Lock()  # one thread listens; the others wait for its word
        self._woken = threading.Condition()
        try:
            self._db: psycopg.Connection[dict[str, Any]] = psycopg.connect(
                url, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
            self.migrate()
        except psycopg.Error as e:
            raise ConfigError(f"{redacted(url)}: cannot open the state database ({_reason(e)})") from e
        except StoreError as e:
            raise ConfigError(str(e)) from e  # opened, then its first read or write failed

    def __str__(self) -> str:
        return redacted(self.url)

    @contextmanager
    def _tx(self) -> Iterator[_PgTx]:
        with self._lock:
            try:
                if self._db.closed:  # lost with the server or the network: connect again
                    self._db = psycopg.connect(
                        self.url, autocommit=True, row_factory=dict_row, connect_timeout=10
                    )
                with self._db.transaction(), self._db.cursor() as cur:
                    yield _PgTx(cur)
            except psycopg.Error as e:
                raise StoreError(f"{redacted(self.url)}: state database error ({_reason(e)})") from e

    def _lock_budget(self, tx: Tx) -> None:
        tx.all(q.ADVISORY_LOCK, lock_id=_BUDGET_LOCK)

    def _notify(self, tx: Tx) -> None:
        tx.all(q.NOTIFY_WORKERS)

    def migrate(self) -> list[str]:
        with self._tx() as tx:
            tx.all(q.ADVISORY_LOCK, lock_id=_MIGRATION_LOCK)
            return self._apply_migrations(tx)

    def wait_for_work(self, timeout_s: float) -> None:
        """Sleep until a NOTIFY says a job became runnable, or `timeout_s` passes. The listening
        connection stays open, so a notification sent between two waits ends the next one at once."""
        if not self._listening.acquire(blocking=False):
            with self._woken:
                self._woken.wait(timeout_s)
            return
        try:
            if self._listener is None:
                self._listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                self._listener.execute(_statement(q.LISTEN_WORKERS))
            for _ in self._listener.notifies(timeout=timeout_s, stop_after=1):
                pass
        except psycopg.Error:  # the claim that follows reports a lost server; here, stop waiting
            self._listener = None
        finally:
            self._listening.release()
            with self._woken:
                self._woken.notify_all()

    def close(self) -> None:
        for conn in (self._listener, self._db):
            if conn is not None:
                conn.close()


def _reason(e: psycopg.Error) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
