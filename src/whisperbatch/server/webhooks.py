"""Webhooks: each job's end (`job.done`, `job.failed`) posted to the configured URLs, signed, retried
with backoff, and kept in the store until delivered.

- Job ends are found by the store (jobs that reached done or failed since a watermark), not by this
  process's runner: with `serve --no-work` the jobs are run by workers on other hosts, and a job that
  ended while no server ran is told when one starts. The first sender on a store starts the watermark at
  its start (jobs that ended within `lookback_s` before are told too), so turning webhooks on does not
  replay a store's history; looking `lookback_s` behind the watermark each time covers a worker that
  commits late or whose clock is a little behind.
- Each delivery is a row (`webhook_deliveries`, one per event and URL) with the exact body that is
  signed and sent, recorded before the first attempt: a retry sends the same bytes, a restart resends
  what was not delivered, and a receiver can drop a repeat by the event's `id`.
- The sender is a thread of its own that posts with no store lock held, so a slow or dead receiver never
  holds up the queue; a delivery is taken for one attempt under a lease, so two senders on one
  PostgreSQL store never post it at once.
- Signatures as Stripe makes them: `Whisperbatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>.<body>" with the shared secret>`, the time signed with the body, so a receiver can refuse a
  replay of an old delivery. Each attempt is signed afresh at its own time.

A receiver checks a delivery with the raw body as received (before any JSON parsing):

    import hashlib, hmac, time

    def valid(secret: str, header: str, body: bytes, tolerance_s: int = 300) -> bool:
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        timestamp, signature = parts.get("t", ""), parts.get("v1", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
            return False  # an old delivery replayed, or a clock far off
        signed = timestamp.encode() + b"." + body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ConfigError, WhisperbatchError, keep_secret, mask
from ..models import JobState
from ..store import Delivery, JobEnd, OutputLog, WebhookOutbox


class Outbox(WebhookOutbox, OutputLog, Protocol):
    """What the sender reads and writes: the outbox, and which outputs each job wrote."""


SIGNATURE_HEADER = "Whisperbatch-Signature"
EVENT_TYPES = {JobState.DONE: "job.done", JobState.FAILED: "job.failed"}
_BATCH = 100  # job ends recorded per look


def sign(secret: str, timestamp: int, body: str | bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: str, header: str, body: str | bytes, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance_s` of `now` (a replay of an
    old delivery, or one from the future, is refused). Any `v1` may match (a receiver changing secrets
    may be sent several); compared in constant time."""
    timestamp, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures)


def event_id(end: JobEnd) -> str:
    """The same for every delivery of one end of one job; another run of the job ends anew."""
    return f"{end.key}:{end.state}:{end.ended_at!r}"


def event_body(end: JobEnd, outputs: Sequence[Path]) -> str:
    """The JSON sent for a job's end (ASCII, so its text and its bytes are signed alike)."""
    job = {
        "id": end.id,
        "key": end.key,
        "recording": end.path.name,
        "task": str(end.task),
        "state": str(end.state),
        "outputs": [str(p) for p in outputs],
        "usd": end.usd,
        "error": end.error,
    }
    event = {"id": event_id(end), "type": EVENT_TYPES[end.state], "created": int(end.ended_at)}
    return json.dumps({**event, "data": {"job": job}}, separators=(",", ":"))


@dataclass(frozen=True)
class Backoff:
    """When a failed delivery is tried again: `base_s` after the first attempt, `factor` times longer
    after each next one, never more than `max_s`; given up on after `max_attempts`."""

    base_s: float = 1.0
    factor: float = 4.0
    max_s: float = 3600.0
    max_attempts: int = 10

    def delay_s(self, attempts: int) -> float | None:
        """The wait after the `attempts`-th attempt failed; None: no attempt is left."""
        if attempts >= self.max_attempts:
            return None
        return min(self.base_s * self.factor ** max(attempts - 1, 0), self.max_s)


def _where(url: str) -> str:
    """A receiver as messages name it: its scheme, host and port (a path may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookSender:
    """Finds job ends in `store`, records a delivery of each to each of `urls`, and posts what is due,
    on a thread of its own between `start()` and `close()`. `clock` (unix seconds) dates signatures and
    schedules retries; `say` hears a line for each failed attempt (no secret, no URL path)."""

    def __init__(
        self,
        store: Outbox,
        urls: Sequence[str],
        secret: str,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff = Backoff(),
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
        lookback_s: float = 300.0,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        if not secret:
            raise ConfigError("webhooks need a secret to sign with: set WHISPERBATCH_WEBHOOK_SECRET")
        keep_secret(secret)
        self.store, self.urls, self._secret = store, tuple(urls), secret
        self.clock, self.backoff, self.poll_s, self.lookback_s = clock, backoff, poll_s, lookback_s
        self.say = say
        self._lease_s = 4 * timeout_s + 10  # longer than any one attempt (its connect, write and read)
        self._client = httpx.Client(timeout=timeout_s, headers={"User-Agent": f"whisperbatch/{__version__}"})
        self._watermark: float | None = None  # the store's, read once, then kept here as it moves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WebhookSender({', '.join(map(_where, self.urls))})"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop after the attempt in flight (what is not delivered stays in the store for the next
        sender)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.record_job_ends()
                self.deliver_due()
            except WhisperbatchError as e:  # the store unreachable for a while: look again later
                self.say(f"webhooks: {e}")
            except Exception as e:  # a bug must not end the deliveries for good
                self.say(mask(f"webhooks: internal error ({type(e).__name__}: {e})"))
            self._stop.wait(self.poll_s)

    def record_job_ends(self) -> int:
        """Record a delivery of each job end not yet recorded, to each URL; returns how many are new."""
        now = self.clock()
        if self._watermark is None:
            self._watermark = self.store.webhook_watermark(now)
        since = self._watermark - self.lookback_s
        bodies: dict[str, str] = {}
        recorded, newest = 0, None
        for url in self.urls:
            while True:
                ends = self.store.job_ends(since, url, limit=_BATCH)
                added = 0
                for end in ends:
                    eid = event_id(end)
                    if eid not in bodies:
                        bodies[eid] = event_body(end, [r.path for r in self.store.job_outputs(end.key)])
                    kind = EVENT_TYPES[end.state]
                    added += self.store.record_deliveries(
                        eid, kind, end.key, end.ended_at, bodies[eid], [url], now=now
                    )
                    newest = max(newest or end.ended_at, end.ended_at)
                recorded += added
                if len(ends) < _BATCH or not added:
                    break
        if newest is not None and newest > self._watermark:
            self.store.advance_webhook_watermark(newest)
            self._watermark = newest
        return recorded

    def deliver_due(self) -> None:
        """Post every delivery due now, one attempt each, until none is due or the sender stops."""
        while not self._stop.is_set():
            delivery = self.store.take_delivery(self._lease_s, now=self.clock())
            if delivery is None:
                return
            self._attempt(delivery)

    def _attempt(self, delivery: Delivery) -> None:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(self.clock()), delivery.body),
            "Whisperbatch-Event": delivery.event_type,
            "Whisperbatch-Event-Id": delivery.event_id,
        }
        try:
            response = self._client.post(delivery.url, content=delivery.body.encode(), headers=headers)
            error = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}".strip().rstrip(":")
        if error is None:
            self.store.delivery_succeeded(delivery.id, now=self.clock())
            return
        error = mask(error)[:300]
        delay = self.backoff.delay_s(delivery.attempts)
        retry_at = None if delay is None else self.clock() + delay
        self.store.delivery_failed(delivery.id, error, retry_at=retry_at)
        then = "given up" if delay is None else f"trying again in {delay:g} s"
        self.say(
            f"webhook {delivery.event_type} to {_where(delivery.url)}: attempt {delivery.attempts} failed "
            f"({error}); {then}"
        )
