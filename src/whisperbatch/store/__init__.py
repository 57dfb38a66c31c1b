"""The job store: jobs, what they made, seen files, output records, the spend ledger and voices.

Callers use it through its roles (`JobQueue`, `Ledger`, `ResultStore`, `OutputLog`, `SpeakerBook`;
`JobStore` is all of them) and get typed records back. Two backends share the roles, one file of named
statements and one list of migrations: SQLite, the embedded default under WHISPERBATCH_HOME, and
PostgreSQL, for workers on several hosts sharing one queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .migrations import MIGRATIONS
from .records import CANCELLED, BudgetCheck, Job, LedgerRow, OutputRecord, Voice
from .roles import JobQueue, JobStore, Ledger, OutputLog, ResultStore, SpeakerBook
from .sqlite import SqliteStore

__all__ = [
    "CANCELLED",
    "MIGRATIONS",
    "BudgetCheck",
    "Job",
    "JobQueue",
    "JobStore",
    "Ledger",
    "LedgerRow",
    "OutputLog",
    "OutputRecord",
    "ResultStore",
    "SpeakerBook",
    "SqliteStore",
    "StoreOptions",
    "Voice",
    "open_store",
]


@dataclass(frozen=True)
class StoreOptions:
    """Where the store is: `database` as given (a postgresql:// URL, an SQLite path or sqlite:///path,
    or None), and the SQLite file it means when it is not PostgreSQL."""

    database: str | None = field(repr=False)  # a URL may carry a password
    sqlite_path: Path


def open_store(options: StoreOptions) -> JobStore:
    """The store `options.database` names: a postgresql:// URL, or an SQLite file (default: under
    WHISPERBATCH_HOME). Raises ConfigError when it cannot be opened."""
    url = options.database
    if url and url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if url and "://" in url and not url.startswith("sqlite://"):
        scheme = url.split("://")[0]
        raise ConfigError(f"--database {scheme}://…: use a postgresql:// URL or an SQLite file path")
    return SqliteStore(options.sqlite_path)
