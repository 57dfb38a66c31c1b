"""The webhook outbox over SQL, a part of `SqlStore` kept apart from the queue's operations.

Job ends are found in the jobs table itself, by the time each job ended, so a job finished by a worker
on another host is told as surely as one finished here; one delivery row per job end and receiver
(UNIQUE) makes recording an end twice, by two senders or after a restart, harmless. Every time is the
sender's own (`now`), so its clock decides what is due.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from . import queries as q
from .queries import Query
from .records import Delivery, DeliveryState, JobEnd, Row


class _Tx(Protocol):
    def all(self, query: Query, /, **params: Any) -> list[Row]: ...
    def run(self, query: Query, /, **params: Any) -> int: ...


class SqlWebhookOutbox:
    """`WebhookOutbox` over SQL; the store it is part of supplies `_tx`."""

    def _tx(self) -> AbstractContextManager[_Tx]:
        raise NotImplementedError

    def webhook_watermark(self, start: float) -> float:
        """How far job ends have been looked for; `start` on a store where no sender ever looked."""
        with self._tx() as tx:
            tx.run(q.START_WEBHOOK_WATERMARK, ended_at=start)
            return float(tx.all(q.WEBHOOK_WATERMARK)[0]["ended_at"])

    def advance_webhook_watermark(self, ended_at: float) -> None:
        """Job ends up to `ended_at` have been looked for (the watermark never moves back)."""
        with self._tx() as tx:
            tx.run(q.ADVANCE_WEBHOOK_WATERMARK, ended_at=ended_at)

    def job_ends(self, since: float, url: str, *, limit: int = 100) -> list[JobEnd]:
        """Jobs that ended after `since` with no delivery to `url` recorded for that end, oldest first."""
        with self._tx() as tx:
            rows = tx.all(q.JOB_ENDS, since=since, url=url, limit=limit)
        return [JobEnd.from_row(r) for r in rows]

    def record_deliveries(
        self,
        event_id: str,
        event_type: str,
        job_key: str,
        job_ended_at: float,
        body: str,
        urls: Sequence[str],
        *,
        now: float,
    ) -> int:
        """One pending delivery of the event to each of `urls`, due `now`, unless it is recorded already;
        returns how many were new."""
        values = {"event_id": event_id, "event_type": event_type, "job_key": job_key, "body": body}
        with self._tx() as tx:
            return sum(
                tx.run(q.RECORD_DELIVERY, url=url, job_ended_at=job_ended_at, now=now, **values)
                for url in urls
            )

    def take_delivery(self, lease_s: float, *, now: float) -> Delivery | None:
        """The delivery due first, taken for one attempt: it is due again `lease_s` later unless the
        attempt's outcome is written first (its sender died while posting)."""
        with self._tx() as tx:
            rows = tx.all(q.DUE_DELIVERY, now=now)
            if not rows:
                return None
            tx.run(q.TAKE_DELIVERY, lease_until=now + lease_s, id=rows[0]["id"])
        taken = Delivery.from_row(rows[0])
        return dataclasses.replace(taken, attempts=taken.attempts + 1, next_at=now + lease_s)

    def delivery_succeeded(self, delivery_id: int, *, now: float) -> None:
        with self._tx() as tx:
            tx.run(q.DELIVERED, id=delivery_id, now=now)

    def delivery_failed(self, delivery_id: int, error: str, *, retry_at: float | None) -> None:
        """An attempt failed: try again at `retry_at`, or (None) give the delivery up."""
        state = DeliveryState.FAILED if retry_at is None else DeliveryState.PENDING
        with self._tx() as tx:
            tx.run(
                q.DELIVERY_FAILED,
                id=delivery_id,
                state=str(state),
                next_at=0.0 if retry_at is None else retry_at,
                error=error,
            )

    def deliveries(self, job_key: str | None = None) -> list[Delivery]:
        """Every webhook delivery recorded (a job's, when `job_key` is given), oldest first."""
        with self._tx() as tx:
            rows = tx.all(q.DELIVERIES, job_key=job_key)
        return [Delivery.from_row(r) for r in rows]
