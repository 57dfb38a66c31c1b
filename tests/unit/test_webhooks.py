"""Webhooks without a network: signatures and the receiver's documented recipe, the backoff schedule,
the store's outbox (job ends found once, deliveries recorded once, taken under a lease), and the
settings that turn webhooks on."""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from unit.test_store import old_database
from whisperbatch.config import load_settings
from whisperbatch.errors import ConfigError
from whisperbatch.models import Segment, Task, Transcript
from whisperbatch.server import webhooks
from whisperbatch.server.webhooks import Backoff, WebhookSender, sign, verify
from whisperbatch.store import DeliveryState, JobStore, SqliteStore

SECRET = "whsec-test-4Jd9Qw2Lm7Zx"
BODY = '{"id":"k:done:1.5","type":"job.done"}'


def recipe() -> Callable[[str, str, bytes], bool]:
    """The receiver's recipe as the module's docstring writes it, run as written."""
    doc = webhooks.__doc__ or ""
    code = textwrap.dedent(
        re.search(r"\n(    import hashlib.*?return hmac\.compare_digest\(.*?\)\n)", doc, re.S)[1]
    )
    namespace: dict[str, object] = {}
    exec(code, namespace)
    valid = namespace["valid"]
    assert callable(valid)
    return lambda secret, header, body: bool(valid(secret, header, body))


def test_a_signature_verifies_only_its_own_body_secret_and_time() -> None:
    now = 1_800_000_000
    header = sign(SECRET, now, BODY)
    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, BODY, now=now) and verify(SECRET, header, BODY.encode(), now=now + 299)
    assert not verify(SECRET, header, BODY.replace("done", "dune"), now=now)  # tampered body
    assert not verify("another secret", header, BODY, now=now)
    assert not verify(SECRET, header, BODY, now=now + 301)  # an old delivery replayed
    assert not verify(SECRET, header, BODY, now=now - 301)  # from the future
    assert verify(SECRET, header, BODY, now=now + 500, tolerance_s=600)
    # the time is signed with the body: moving it breaks the signature
    assert not verify(SECRET, header.replace("t=1800000000", "t=1800000100"), BODY, now=now + 100)
    for broken in ("", "t=1800000000", header.split(",")[1], "t=soon," + header.split(",")[1], "v1=,t=1"):
        assert not verify(SECRET, broken, BODY, now=now)
    # several signatures (a receiver changing secrets): any one may match
    old = sign("old secret", now, BODY).split(",")[1]
    assert verify(SECRET, f"{header},{old}", BODY, now=now) and verify(
        "old secret", f"{header},{old}", BODY, now=now
    )


def test_the_documented_recipe_agrees_with_verify() -> None:
    valid = recipe()
    header = sign(SECRET, int(time.time()), BODY)
    assert valid(SECRET, header, BODY.encode())
    assert not valid(SECRET, header, BODY.replace("done", "dune").encode())
    assert not valid("another secret", header, BODY.encode())
    assert not valid(SECRET, sign(SECRET, int(time.time()) - 3600, BODY), BODY.encode())


def test_backoff_grows_fourfold_to_its_cap_then_gives_up() -> None:
    schedule = [Backoff().delay_s(n) for n in range(1, 12)]
    assert schedule == [1, 4, 16, 64, 256, 1024, 3600, 3600, 3600, None, None]
    quick = Backoff(base_s=0.05, factor=2, max_s=0.3, max_attempts=5)
    assert [quick.delay_s(n) for n in range(1, 6)] == [0.05, 0.1, 0.2, 0.3, None]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[JobStore]:
    s = SqliteStore(tmp_path / "state.sqlite3")
    yield s
    s.close()


def end_job(store: JobStore, key: str, *, error: str | None = None, usd: float = 0.012) -> None:
    """A job queued, claimed and finished (or failed with `error`) through the store."""
    store.enqueue(key, "sha-" + key, Task.TRANSCRIBE, Path(f"/rec/{key}.m4a"), 100, 1)
    claimed = store.claim("host:1:w", lease_s=30)
    assert claimed is not None and claimed.key == key
    if error is not None:
        store.fail(key, error)
        return
    transcript = Transcript((Segment(0.0, 1.0, "hello"),), "en", 1.0, "openai", "whisper-1", Task.TRANSCRIBE)
    store.finish(key, transcript, usd)


def test_each_job_end_is_recorded_once_per_url_with_its_outputs(store: JobStore) -> None:
    urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    sender = WebhookSender(store, urls, SECRET)
    try:
        assert sender.record_job_ends() == 0
        end_job(store, "k1")
        outputs = [Path("/out/k1.srt"), Path("/out/k1.txt")]
        store.record_outputs(outputs, Path("/rec/k1.m4a"), "k1")
        store.record_outputs([Path("/out/k1.rttm")], Path("/rec/k1.m4a"), "k1:speakers:2:None:None")
        store.record_outputs([Path("/out/k10.txt")], Path("/rec/k10.m4a"), "k10")  # another job's
        end_job(store, "k2", error="/rec/k2.m4a: not audio")
        assert sender.record_job_ends() == 4
        assert sender.record_job_ends() == 0  # found once
        again = WebhookSender(store, urls, SECRET)  # a restart finds nothing new either
        assert again.record_job_ends() == 0
        again.close()
    finally:
        sender.close()
    deliveries = store.deliveries()
    assert sorted((d.job_key, d.url) for d in deliveries) == sorted(
        (k, u) for k in ("k1", "k2") for u in urls
    )
    assert all(d.state is DeliveryState.PENDING and d.attempts == 0 for d in deliveries)
    done, failed = (json.loads(store.deliveries(k)[0].body) for k in ("k1", "k2"))
    job = store.job("k1")
    assert job is not None and done["id"] == f"k1:done:{job.updated_at!r}" and done["type"] == "job.done"
    assert done["created"] == int(job.updated_at)
    assert done["data"]["job"] == {
        "id": job.id,
        "key": "k1",
        "recording": "k1.m4a",
        "task": "transcribe",
        "state": "done",
        "outputs": ["/out/k1.rttm", "/out/k1.srt", "/out/k1.txt"],
        "usd": 0.012,
        "error": None,
    }
    assert failed["type"] == "job.failed" and failed["data"]["job"]["error"] == "/rec/k2.m4a: not audio"
    assert failed["data"]["job"]["outputs"] == []
    # one event, one body for every URL
    assert len({d.body for d in store.deliveries("k1")}) == 1


def test_a_job_ended_again_is_a_new_event_and_recording_is_idempotent(store: JobStore) -> None:
    end_job(store, "k1", error="boom")
    sender = WebhookSender(store, ["http://127.0.0.1:9/"], SECRET)
    try:
        assert sender.record_job_ends() == 1
        store.retry_failed(["k1"])
        assert store.claim("host:1:w", lease_s=30) is not None
        store.fail("k1", "boom again")
        assert sender.record_job_ends() == 1
    finally:
        sender.close()
    first, second = store.deliveries("k1")
    assert first.event_id != second.event_id
    assert json.loads(second.body)["data"]["job"]["error"] == "boom again"
    # the same event recorded again (by a second sender on the store) adds nothing
    assert store.record_deliveries(first.event_id, "job.failed", "k1", 1.0, "{}", [first.url], now=1.0) == 0


def test_job_ends_from_before_the_first_sender_are_not_replayed(store: JobStore) -> None:
    end_job(store, "old")
    sender = WebhookSender(store, ["http://127.0.0.1:9/"], SECRET, clock=lambda: time.time() + 3600)
    try:
        assert sender.record_job_ends() == 0
    finally:
        sender.close()
    assert store.webhook_watermark(0.0) > time.time()  # set once by the first sender, kept after


def test_a_delivery_is_taken_under_a_lease_and_retried_or_given_up(store: JobStore) -> None:
    store.record_deliveries("e1", "job.done", "k1", 5.0, BODY, ["http://h/"], now=100.0)
    assert store.take_delivery(30.0, now=99.0) is None  # not due yet
    taken = store.take_delivery(30.0, now=100.0)
    assert taken is not None and taken.attempts == 1 and taken.body == BODY
    assert store.take_delivery(30.0, now=101.0) is None  # held while it is posted
    again = store.take_delivery(30.0, now=131.0)  # its sender died: due again when the lease ends
    assert again is not None and again.attempts == 2
    store.delivery_failed(again.id, "HTTP 500", retry_at=140.0)
    assert store.take_delivery(30.0, now=139.0) is None
    third = store.take_delivery(30.0, now=140.0)
    assert third is not None and third.attempts == 3
    store.delivery_failed(third.id, "HTTP 503", retry_at=None)
    assert store.take_delivery(30.0, now=10_000.0) is None
    (given_up,) = store.deliveries()
    assert (
        given_up.state is DeliveryState.FAILED
        and given_up.last_error == "HTTP 503"
        and given_up.attempts == 3
    )


def test_webhooks_settings_from_file_and_environment(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[service]\nwebhooks = ["https://a.example/hook", "http://b.example:8080/x"]\n'
        f'webhook_secret = "{SECRET}"\n'
    )
    s = load_settings(env={}, cwd=tmp_path)
    assert s.webhooks == ("https://a.example/hook", "http://b.example:8080/x")
    assert s.webhook_secret == SECRET and SECRET in s.secrets and SECRET not in repr(s)
    env = {
        "WHISPERBATCH_WEBHOOKS": "https://c.example/1, https://d.example/2",
        "WHISPERBATCH_WEBHOOK_SECRET": SECRET + "-2",
    }
    s = load_settings(env=env, cwd=tmp_path)
    assert s.webhooks == ("https://c.example/1", "https://d.example/2") and s.webhook_secret == SECRET + "-2"
    assert load_settings({"webhooks": ("https://e.example/",)}, env={}, cwd=tmp_path).webhooks == (
        "https://e.example/",
    )


def test_webhooks_without_a_secret_or_with_a_bad_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as no_secret:
        load_settings(
            {"webhooks": ("https://a.example/",)}, env={}, cwd=tmp_path, flag_names={"webhooks": "--webhook"}
        )
    message = str(no_secret.value)
    assert "\n" not in message and "--webhook" in message and "WHISPERBATCH_WEBHOOK_SECRET" in message
    with pytest.raises(ConfigError, match="must be an http:// or https:// URL"):
        load_settings({"webhooks": ("ftp://a.example/",), "webhook_secret": SECRET}, env={}, cwd=tmp_path)
    assert load_settings(env={}, cwd=tmp_path).webhooks == ()
    store = SqliteStore(tmp_path / "s.sqlite3")
    with pytest.raises(ConfigError, match="secret"):
        WebhookSender(store, ["https://a.example/"], "")
    store.close()


def test_a_database_from_before_webhooks_upgrades_in_place_and_keeps_its_past_quiet(tmp_path: Path) -> None:
    """A database with every migration up to 010 gets 011; a job that ended long before webhooks were
    turned on is not told, one that ends after is."""
    path = tmp_path / "old.sqlite3"
    db = old_database(path, 10)
    db.execute(
        "INSERT INTO jobs (key, content_sha256, task, path, state, created_at, updated_at)"
        " VALUES ('old', 'sha', 'transcribe', '/rec/a.m4a', 'done', 0, 0)"
    )
    db.commit()
    db.close()
    store = SqliteStore(path)
    sender = WebhookSender(store, ["http://127.0.0.1:9/"], SECRET)
    try:
        assert sender.record_job_ends() == 0
        end_job(store, "new")
        assert sender.record_job_ends() == 1
        assert [d.job_key for d in store.deliveries()] == ["new"]
    finally:
        sender.close()
        store.close()
    applied = sqlite3.connect(path).execute("SELECT name FROM schema_migrations").fetchall()
    assert "011_webhooks" in {name for (name,) in applied}
