"""The job store: jobs, finished chunk results, seen files and the spend ledger, behind `JobStore`.

Two backends share one protocol, one SQL text and one list of migrations: SQLite, the embedded
default under WHISPERBATCH_HOME, and PostgreSQL, for workers on several hosts sharing one queue.
"""

from __future__ import annotations

from ..config import Settings
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
    "open_store",
]


def open_store(settings: Settings) -> JobStore:
    """The store `settings.database` names: a postgresql:// URL, or an SQLite file (default: under
    WHISPERBATCH_HOME). Raises ConfigError when it cannot be opened."""
    url = settings.database
    if url and url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    if url and "://" in url and not url.startswith("sqlite://"):
        scheme = url.split("://")[0]
        raise ConfigError(f"--database {scheme}://…: use a postgresql:// URL or an SQLite file path")
    return SqliteStore(settings.ledger_path)
