"""The job store: jobs, finished chunk results, seen files and the spend ledger, behind `JobStore`.

Two backends share one protocol, one SQL text and one list of migrations: SQLite, the embedded
default under WHISPERBATCH_HOME, and PostgreSQL, for workers on several hosts sharing one queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .base import MIGRATIONS, BudgetCheck, Job, JobStore, LedgerRow, OutputRecord
from .sqlite import SqliteStore

__all__ = [
    "MIGRATIONS",
    "BudgetCheck",
    "Job",
    "JobStore",
    "LedgerRow",
    "OutputRecord",
    "SqliteStore",
    "StoreOptions",
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
