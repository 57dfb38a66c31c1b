"""The request gate alone, with a stub engine and a temporary SQLite store: no audio, no server, no
subprocess, so these run in milliseconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from whisperbatch import cost
from whisperbatch.catalog import MODELS
from whisperbatch.engines.base import Engine
from whisperbatch.errors import (
    AuthError,
    FatalEngineError,
    RetriesExhausted,
    RetryableEngineError,
    Stopped,
    StoreError,
)
from whisperbatch.models import Chunk, CostLine, EngineResult, Spend, Task
from whisperbatch.pipeline import Event, Gate, GateOptions, Notice
from whisperbatch.pipeline.gate import Bill
from whisperbatch.policy import RetryPolicy
from whisperbatch.store.sqlite import SqliteStore
from whisperbatch.testing import StubEngine
from whisperbatch.testing.engine import words_spoken_here

NO_WAIT = RetryPolicy(max_attempts=3, base_s=0.0, max_s=0.0, job_max_attempts=1)


def counted(counter: dict[str, int], answer_s: float) -> Callable[[Chunk], EngineResult]:
    """An answer after `answer_s` that counts the requests held at once across every engine using it."""
    lock = threading.Lock()

    def answer(piece: Chunk) -> EngineResult:
        with lock:
            counter["now"] += 1
            counter["most"] = max(counter["most"], counter["now"])
        time.sleep(answer_s)
        with lock:
            counter["now"] -= 1
        return words_spoken_here(piece)

    return answer


def chunk(index: int = 0, duration_s: float = 30.0) -> Chunk:
    return Chunk(
        index=index, offset_s=index * duration_s, duration_s=duration_s, path=Path("x.mp3"), size_bytes=1
    )


def price(bill: Bill) -> CostLine:
    return cost.cost_line(
        str(bill.path),
        audio_s=60.0,
        billed_s=bill.answered_s,
        engine="openai",
        info=MODELS["whisper-1"],
        task=Task.TRANSCRIBE,
        api_usd_per_min=0.006,
        usage=bill.usage,
    )


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def ask(gate: Gate, engine: Engine, bill: Bill, index: int = 0) -> EngineResult:
    piece = chunk(index)

    def send() -> EngineResult:
        return engine.transcribe(piece, task=Task.TRANSCRIBE, language=None, prompt=None)

    return gate.transcribe(bill, piece.duration_s, piece.index, send, notify=False)


def test_slots_bound_the_requests_in_flight_across_two_sets_of_job_options() -> None:
    """Two engines (two jobs' options, as a worker serving two `--format`s has) share one gate's two
    slots: never more than two requests at once, and both slots are used."""
    counter = {"now": 0, "most": 0}
    gate = Gate(GateOptions(concurrency=2, wait_notice_s=60.0), store=None, run_id="r", policy=NO_WAIT)
    answer = counted(counter, 0.01)
    engines = [StubEngine(default=answer), StubEngine(model="gpt-4o-transcribe", default=answer)]
    bills = [gate.open(Bill(Path(f"{i}.m4a"), f"job{i}", price)) for i in range(8)]
    threads = [
        threading.Thread(target=ask, args=(gate, engines[i % 2], bill, i)) for i, bill in enumerate(bills)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter["most"] == 2
    assert sum(len(e.calls) for e in engines) == 8
    assert gate.sent() == {f"job{i}" for i in range(8)}
    gate.close()


def test_retries_follow_the_policy_and_say_so() -> None:
    events: list[Event] = []
    gate = Gate(
        GateOptions(concurrency=1, wait_notice_s=60.0),
        store=None,
        run_id="r",
        policy=NO_WAIT,
        on_event=events.append,
    )
    engine = StubEngine(
        [RetryableEngineError("HTTP 503"), RetryableEngineError("HTTP 429", retry_after_s=0.0)]
    )
    bill = gate.open(Bill(Path("a.m4a"), "a", price))
    assert ask(gate, engine, bill).text == "Words spoken here."
    assert len(engine.calls) == 3
    assert [e.message for e in events if isinstance(e, Notice)] == [
        "a.m4a (chunk 1): HTTP 503; retrying in 0.0 s",
        "a.m4a (chunk 1): HTTP 429; retrying in 0.0 s",
    ]
    engine = StubEngine([RetryableEngineError("HTTP 503")] * 3)  # every attempt the policy allows
    with pytest.raises(RetriesExhausted, match="gave up after 3 attempts"):
        ask(gate, engine, bill)
    assert len(engine.calls) == 3
    gate.close()


def test_a_fatal_answer_is_told_at_once_and_halts_every_request_after_it() -> None:
    told: list[FatalEngineError | StoreError] = []
    gate = Gate(
        GateOptions(concurrency=2, wait_notice_s=60.0),
        store=None,
        run_id="r",
        policy=NO_WAIT,
        halted=lambda: bool(told),
        on_fatal=told.append,
    )
    engine = StubEngine([AuthError("HTTP 401: key refused")])
    bill = gate.open(Bill(Path("a.m4a"), "a", price))
    with pytest.raises(AuthError):
        ask(gate, engine, bill)
    assert len(told) == 1 and len(engine.calls) == 1  # not retried
    with pytest.raises(Stopped):
        ask(gate, engine, bill, 1)
    assert len(engine.calls) == 1  # nothing went out after it
    gate.stop.set()
    gate.close()


def test_each_answer_is_billed_into_the_ledger_as_it_arrives(store: SqliteStore) -> None:
    gate = Gate(GateOptions(concurrency=2, wait_notice_s=60.0), store=store, run_id="run-1", policy=NO_WAIT)
    engine = StubEngine([RetryableEngineError("HTTP 503")])  # a failed request is not billed
    bill = gate.open(Bill(Path("a.m4a"), "job-a", price))
    ask(gate, engine, bill, 0)
    [row] = store.ledger()
    assert (row.run_id, row.state, row.job_key, row.line.billed_min) == ("run-1", Spend.RUNNING, "job-a", 0.5)
    ask(gate, engine, bill, 1)
    gate.close_bill(bill, Spend.DONE)
    [row] = store.ledger()  # the same row, grown
    assert (row.state, row.line.billed_min) == (Spend.DONE, 1.0)
    assert gate.in_flight() == {}
    gate.close()


def test_abandoning_bills_the_requests_in_flight_as_unfinished(store: SqliteStore) -> None:
    gate = Gate(GateOptions(concurrency=1, wait_notice_s=60.0), store=store, run_id="run-1", policy=NO_WAIT)
    engine = StubEngine(delay_s=0.05)
    bill = gate.open(Bill(Path("a.m4a"), "job-a", price))
    asking = threading.Thread(target=lambda: ask(gate, engine, bill))
    asking.start()
    while not gate.in_flight().get(Path("a.m4a")):
        time.sleep(0.001)
    assert gate.abandon() == [Path("a.m4a")]
    [row] = store.ledger()
    assert (row.state, row.line.billed_min) == (Spend.UNFINISHED, 0.5)
    asking.join()
    gate.close_bill(bill, Spend.UNFINISHED)
    assert [r.line.billed_min for r in store.ledger()] == [0.5]  # the late answer is not billed twice
    gate.close()
