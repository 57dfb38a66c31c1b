"""The two policies every run shares: when to try again, and how much may be spent.

One `RetryPolicy` decides both a request's backoff (inside a file) and a job's (a file tried again
later); one `Budget` decides whether a file may start. One-off runs and the service differ only in
their parameters: a one-off run's budget covers that run and its files are tried once, the service's
budget covers the ledger's whole history and a file that ran out of retries is tried again later.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .catalog import ChatModelInfo, ModelInfo
from .cost import price_hint
from .errors import BudgetExceeded, ConfigError
from .store import Ledger


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int  # requests per chunk
    base_s: float
    max_s: float
    job_max_attempts: int  # runs of a whole file

    def request_delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """How long to wait before request attempt `attempt + 1`: the server's Retry-After if it sent
        one, else exponential backoff with jitter; never more than `max_s`."""
        if retry_after_s is None:
            retry_after_s = min(self.max_s, self.base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        return min(retry_after_s, self.max_s)

    def job_delay_s(self, attempts: int) -> float | None:
        """When a file whose requests ran out of retries is run again (None: it has failed)."""
        return None if attempts >= self.job_max_attempts else self.max_s * attempts


def require_prices(budget_usd: float | None, info: ModelInfo, chat: ChatModelInfo | None) -> None:
    """A budget can only hold what it can price: under `--budget` a transcription or chat model whose
    price is not known is refused before anything is sent, naming the setting that prices it."""
    if budget_usd is None:
        return
    if not info.price_known:
        raise ConfigError(f"--budget needs the price of {info.name}: {price_hint(info.name)}")
    if chat is not None and not chat.price_known:
        raise ConfigError(f"--budget needs the price of {chat.name}: {price_hint(chat.name, chat=True)}")


class Budget:
    """The one budget authority: a file starts only if what is spent (the ledger) plus what running
    files hold (their reservations) plus its own worst case stays within the limit. Both are read
    from the store in the transaction that writes the reservation, so workers in other processes and
    on other hosts count against the same money.

    `this_run_only` scopes it to one run's ledger rows (a one-off `--budget`); otherwise it spans the
    ledger's whole history (the service's budget, across restarts and hosts).
    """

    def __init__(self, store: Ledger, limit_usd: float | None, run_id: str, *, this_run_only: bool) -> None:
        self.store, self.limit_usd, self.run_id, self.this_run_only = store, limit_usd, run_id, this_run_only

    def reserve(self, key: str, path: Path, usd: float) -> None:
        """Hold `usd` for job `key` until `release`; raises BudgetExceeded when it does not fit."""
        if self.limit_usd is None:
            return
        check = self.store.reserve_budget(
            key, self.run_id, usd, limit_usd=self.limit_usd, this_run_only=self.this_run_only
        )
        if not check.granted:
            raise BudgetExceeded(
                f"{path}: not started: it would cost up to ${usd:.4f}, and "
                f"${max(0.0, check.left_usd):.4f} of the ${self.limit_usd:.2f} budget is left"
            )

    def release(self, key: str) -> None:
        """The file ended: its spend is in the ledger now, which the next reservation reads."""
        if self.limit_usd is not None:
            self.store.release_budget(key)
