"""Webhooks over real HTTP: a receiver on 127.0.0.1 that refuses deliveries gets them again, signed over
the exact body, from a sender that finds job ends in the store (made here through the store's own API,
by a second connection standing for a worker on another host); a sender closed with a delivery pending
leaves it to the next one, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import wait_for
from unit.test_webhooks import end_job, recipe
from whisperbatch.server.webhooks import SIGNATURE_HEADER, Backoff, WebhookSender, verify
from whisperbatch.store import DeliveryState, JobStore, SqliteStore
from whisperbatch.store.postgres import PostgresStore

SECRET = "whsec-integration-8Hq3Vn5Tr1Ky"
QUICK = Backoff(base_s=0.05, factor=2, max_s=0.2, max_attempts=6)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """What the receiver got, and the statuses it answers with next (then 200)."""

    url: str
    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, event_type: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.got
                if r.status == 200 and event_type in (None, r.headers.get("Whisperbatch-Event"))
            ]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook = state[0]
            with hook.lock:
                status = hook.answers.pop(0) if hook.answers else 200
                hook.got.append(Received(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state[0]
    server.shutdown()
    server.server_close()


@pytest.fixture()
def hook(receiver: Receiver) -> Receiver:
    """The module's receiver, emptied and answering 200."""
    with receiver.lock:
        receiver.got.clear()
        receiver.answers.clear()
    return receiver


def sender_on(store: JobStore, url: str, said: list[str], backoff: Backoff = QUICK) -> WebhookSender:
    sender = WebhookSender(store, [url], SECRET, backoff=backoff, poll_s=0.05, timeout_s=2.0, say=said.append)
    sender.start()
    return sender


def test_refused_twice_then_delivered_signed_over_the_exact_body(tmp_path: Path, hook: Receiver) -> None:
    said: list[str] = []
    worker, server = SqliteStore(tmp_path / "state.sqlite3"), SqliteStore(tmp_path / "state.sqlite3")
    sender = sender_on(server, hook.url, said)
    try:
        hook.answers.extend([500, 500])
        end_job(worker, "k1")
        worker.record_outputs([Path("/out/k1.srt")], Path("/rec/k1.m4a"), "k1")
        wait_for(lambda: bool(hook.accepted()), "the third delivery", timeout=30)
    finally:
        sender.close()
        server.close()
    first, second, third = hook.got
    assert [r.status for r in hook.got] == [500, 500, 200]
    assert first.body == second.body == third.body  # a retry sends the same bytes
    assert third.path == "/hook" and third.headers["Content-Type"] == "application/json"
    header = third.headers[SIGNATURE_HEADER]
    assert verify(SECRET, header, third.body)
    valid = recipe()
    assert valid(SECRET, header, third.body)
    tampered = third.body.replace(b'"usd":0.012', b'"usd":0.0')
    assert tampered != third.body
    assert not verify(SECRET, header, tampered) and not valid(SECRET, header, tampered)
    assert not valid("not the secret", header, third.body)
    event = json.loads(third.body)
    assert event["type"] == "job.done" and third.headers["Whisperbatch-Event-Id"] == event["id"]
    assert event["data"]["job"]["recording"] == "k1.m4a" and event["data"]["job"]["usd"] == 0.012
    (delivery,) = worker.deliveries("k1")
    assert delivery.state is DeliveryState.DELIVERED and delivery.attempts == 3 and delivery.delivered_at
    assert len(said) == 2 and all("HTTP 500" in line for line in said)
    assert not any(SECRET in text for text in [*said, *(r.body.decode() for r in hook.got), str(sender)])
    worker.close()


def test_a_failed_job_is_told_with_its_reason(tmp_path: Path, hook: Receiver) -> None:
    worker, server = SqliteStore(tmp_path / "state.sqlite3"), SqliteStore(tmp_path / "state.sqlite3")
    sender = sender_on(server, hook.url, [])
    try:
        end_job(worker, "k2", error="/rec/k2.m4a: ffmpeg cannot read it (not audio)")
        wait_for(lambda: bool(hook.accepted("job.failed")), "job.failed", timeout=30)
    finally:
        sender.close()
        server.close()
    (received,) = hook.got
    event = json.loads(received.body)
    assert event["type"] == "job.failed" and event["data"]["job"]["state"] == "failed"
    assert event["data"]["job"]["error"] == "/rec/k2.m4a: ffmpeg cannot read it (not audio)"
    assert verify(SECRET, received.headers[SIGNATURE_HEADER], received.body)
    worker.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], JobStore]:
    """Opens one more connection to one store of the given backend."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        return lambda: PostgresStore(url)
    return lambda: SqliteStore(tmp_path / "state.sqlite3")


def test_a_restart_delivers_what_was_pending_and_what_ended_meanwhile(
    opener: Callable[[], JobStore], hook: Receiver
) -> None:
    worker = opener()
    hook.answers.extend([503] * 100)
    first_store = opener()
    first = sender_on(first_store, hook.url, [], Backoff(base_s=0.5))  # not given up before it closes
    end_job(worker, "k1")
    wait_for(lambda: len(hook.got) >= 1, "a first, refused attempt", timeout=30)
    first.close()
    first_store.close()
    (pending,) = worker.deliveries("k1")
    assert pending.state is DeliveryState.PENDING and pending.attempts >= 1
    end_job(worker, "k2", error="gone")  # ended while no sender ran
    with hook.lock:
        hook.answers.clear()
        refused = len(hook.got)
    second_store = opener()
    second = sender_on(second_store, hook.url, [])
    try:
        wait_for(lambda: len(hook.accepted()) >= 2, "both deliveries after the restart", timeout=30)
    finally:
        second.close()
        second_store.close()
    accepted = {json.loads(r.body)["data"]["job"]["key"]: r for r in hook.accepted()}
    assert sorted(accepted) == ["k1", "k2"] and len(hook.got) == refused + 2  # each once, none twice
    assert accepted["k1"].body == hook.got[0].body  # the body recorded before the restart
    assert json.loads(accepted["k2"].body)["type"] == "job.failed"
    assert {d.state for d in worker.deliveries()} == {DeliveryState.DELIVERED}
    worker.close()
