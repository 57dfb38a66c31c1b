"""The embedded backend: one SQLite file under WHISPERBATCH_HOME, no server.

WAL so readers never block the writer, `busy_timeout` so brief contention waits rather than fails,
and every write inside BEGIN IMMEDIATE, which takes the database's one write lock up front: a claim's
read-then-update, or a budget reservation's sum-then-write, cannot interleave with another process's.
Workers on one host share the file this way (keep it on local disk: SQLite's locks do not hold over
NFS); workers on several hosts need the PostgreSQL backend.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StoreError
from .migrations import SQLITE_TYPES
from .queries import Query
from .records import Row
from .sql import SqlStore, Tx


@cache
def _text(query: Query) -> str:
    """The statement in sqlite3's named style: `{name}` becomes `:name`."""
    if query.sqlite is None:
        raise NotImplementedError("a PostgreSQL-only statement")
    return string.Formatter().vformat(query.sqlite, (), {name: f":{name}" for name in query.names})


class _SqliteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def all(self, query: Query, /, **params: Any) -> list[Row]:
        return self.db.execute(_text(query), params).fetchall()

    def run(self, query: Query, /, **params: Any) -> int:
        return self.db.execute(_text(query), params).rowcount

    def ddl(self, statement: str) -> None:
        self.db.execute(statement)


class SqliteStore(SqlStore):
    column_types = SQLITE_TYPES

    def __init__(self, path: Path, *, poll_s: float = 0.2) -> None:
        self.path = path
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._woken = threading.Condition()  # this process's own new work wakes its idle workers
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self.migrate()
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"{path}: cannot open the state database ({_reason(e, path)})") from e
        except StoreError as e:
            raise ConfigError(str(e)) from e  # opened, then its first read or write failed

    def __str__(self) -> str:
        return str(self.path)

    @contextmanager
    def _tx(self) -> Iterator[_SqliteTx]:
        """BEGIN IMMEDIATE under the thread lock, which keeps this process's workers from interleaving
        statements on the one connection."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield _SqliteTx(self._db)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # a failed COMMIT (a full disk) leaves it open
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StoreError(_store_message(e, self.path)) from e

    def _rows(self, query: Query, /, **params: Any) -> list[Row]:
        """A lone read takes no write lock: in WAL it reads the last commit while another process
        writes, so status reads (a server's polls) never wait behind a worker's transaction."""
        with self._lock:
            try:
                rows: list[Row] = self._db.execute(_text(query), params).fetchall()
            except sqlite3.Error as e:
                raise StoreError(_store_message(e, self.path)) from e
            return rows

    def migrate(self) -> list[str]:
        with self._tx() as tx:
            return self._apply_migrations(tx)

    def _notify(self, tx: Tx) -> None:
        with self._woken:
            self._woken.notify_all()

    def wait_for_work(self, timeout_s: float) -> None:
        """SQLite cannot tell another process's commit: an idle worker looks again after a short sleep,
        or at once when this process made a job runnable (a run admitting files while its workers
        already work)."""
        with self._woken:
            self._woken.wait(min(timeout_s, self.poll_s))

    def close(self) -> None:
        self._db.close()


def _full(e: sqlite3.Error | OSError, path: Path) -> bool:
    """Whether `e` comes of a full disk: SQLite says so, or (creating its write-ahead log) reports a
    "disk I/O error" on a disk with no room left."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return True
    try:
        return code == sqlite3.SQLITE_IOERR and shutil.disk_usage(path.parent).free < 1 << 20
    except OSError:
        return False


def _reason(e: sqlite3.Error | OSError, path: Path) -> str:
    return f"{e}: its disk is full" if _full(e, path) and "full" not in str(e) else str(e)


def _store_message(e: sqlite3.Error, path: Path) -> str:
    """One line for a store that failed in use, saying what the user can do about it."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return (
            f"{path}: the state database is damaged ({e}): restore a backup, or move it aside to start "
            "a new one"
        )
    if _full(e, path):
        return f"{path}: cannot write the state database ({_reason(e, path)}): free space, then run again"
    return f"{path}: state database error ({e})"
