"""The job store: jobs, what they made, seen files, output records and the spend ledger.

Callers use it through its roles (`JobQueue`, `Ledger`, `ResultStore`, `OutputLog`; `JobStore` is all
of them) and get typed records back. Two backends share the roles, one file of named statements and one
list of migrations: SQLite, the embedded default under WHISPERBATCH_HOME, and PostgreSQL, for workers
on several hosts sharing one queue.
"""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .migrations import MIGRATIONS
from .records import BudgetCheck, Job, LedgerRow, OutputRecord
from .roles import JobQueue, JobStore, Ledger, OutputLog, ResultStore
from .sqlite import SqliteStore

__all__ = [
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
