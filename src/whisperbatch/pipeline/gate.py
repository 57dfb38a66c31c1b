"""The request gate: what every recording in a process shares, whatever options its job was made with.

One gate per process (the job runner owns it): `concurrency` bounds the requests in flight for the
whole process, so `-j` keeps a key under its rate limit however many sets of job options a worker
serves. Through the gate go the files' turns to send (`Turns`), the one retry loop, the stop and the
halt after a fatal answer, each job's own cancel (on its bill), the record of which jobs sent a
request, and every answer's bill into the ledger. Each concern is a small wrapper around the request
(`_slot`, `_billed`, `_waiting`, `_with_retries`), composed in `transcribe` and `chat`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..errors import (
    Cancelled,
    EngineError,
    FatalEngineError,
    RequestTooLarge,
    RetriesExhausted,
    RetryableEngineError,
    Stopped,
    StoreError,
    UnreadableAnswer,
)
from ..models import NO_USAGE, CostLine, EngineResult, Spend, Usage
from ..policy import RetryPolicy
from ..store import JobStore
from ..translate import Reply
from .events import Event, Notice
from .prepare import files_preparing
from .turns import Turns

_T = TypeVar("_T")


@dataclass(frozen=True)
class GateOptions:
    """What the gate is run with."""

    concurrency: int  # requests in flight at once, for the whole process
    wait_notice_s: float  # an unanswered request says so this long after, and as its wait doubles


@dataclass(eq=False)
class Bill:
    """What one recording has cost in this run so far: requests answered and requests in flight.
    `price` turns it into its cost line (the recording's engine and translator price it). Each bill is
    its own: two are never equal."""

    path: Path
    job_key: str
    price: Callable[[Bill], CostLine]
    answered_s: float = 0.0
    usage: Usage = NO_USAGE  # transcription tokens reported (token-billed models)
    translate_usage: Usage = NO_USAGE  # chat tokens reported
    in_flight: dict[object, float] = field(default_factory=dict)  # request -> audio seconds
    row: int | None = None  # its ledger row, once written
    abandoned: bool = False
    # Set when the recording's job is cancelled: none of its requests starts after.
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def line(self) -> CostLine:
        return self.price(self)

    def check(self) -> None:
        """Raise Cancelled once the recording's job is cancelled."""
        if self.cancel.is_set():
            raise Cancelled(f"{self.path}: cancelled")


@dataclass
class _Ticket:
    """One transcription request: what its answer said was billed."""

    usage: Usage | None = None


class Gate:
    """Request slots, turns, retries, stop and halt, the sent-set and billing, for one process.

    A fatal answer (key, quota, model) is told at once (`on_fatal`), and no request starts while
    `halted` says so: the files in progress would only be refused the same way. So is a store that
    cannot keep an answer: every answer after it would be paid for and lost."""

    def __init__(
        self,
        options: GateOptions,
        *,
        store: JobStore | None,
        run_id: str,
        policy: RetryPolicy,
        stop: threading.Event | None = None,
        on_event: Callable[[Event], None] = lambda e: None,
        halted: Callable[[], bool] = lambda: False,
        on_fatal: Callable[[FatalEngineError | StoreError], None] = lambda e: None,
    ) -> None:
        self.options = options
        self.store, self.run_id, self.policy = store, run_id, policy
        self.stop = stop or threading.Event()
        self.on_event, self.halted, self.on_fatal = on_event, halted, on_fatal
        self._slots = threading.BoundedSemaphore(options.concurrency)
        # Files sending requests at once. The runner may have more files in progress (their chunks
        # prepared while every slot is busy); they send in turn, once their first chunk is ready, so
        # files still finish one after another rather than all late together.
        self.turns = Turns(options.concurrency)
        self.preparing = threading.Semaphore(files_preparing())  # files whose chunks are made at once
        self.pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="wb-chunk")
        self._lock = threading.Lock()
        self._bills: list[Bill] = []  # files in progress
        self._sent: set[str] = set()  # jobs with a request sent (`sent`)

    # ---- one request -------------------------------------------------------------------------------

    def transcribe(
        self, bill: Bill, seconds: float, chunk: int, send: Callable[[], EngineResult], *, notify: bool
    ) -> EngineResult:
        """One transcription request of `seconds` of audio, in a slot, billed by its answer, retried as
        the policy says; with `notify`, a long wait is said (`_waiting`)."""

        def request() -> EngineResult:
            with self._slot(), self._billed(bill, seconds) as ticket, self._waiting(bill, chunk, notify):
                bill.check()  # cancelled while it waited for a slot
                result = send()
                ticket.usage = result.usage
                return result

        return self._with_retries(bill, chunk, request)

    def chat(self, bill: Bill, ask: Callable[[], Reply]) -> Reply:
        """One chat request under the retry policy; its tokens go on the bill as soon as it is answered."""

        def request() -> Reply:
            with self._slot():
                bill.check()
                content, usage = ask()
            with self._lock:
                bill.translate_usage += usage
            self.record(bill, Spend.RUNNING)
            return content, usage

        return self._with_retries(bill, None, request)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with self._slots:
            yield

    @contextmanager
    def _waiting(self, bill: Bill, chunk: int, notify: bool) -> Iterator[None]:
        """While a server has not answered a chunk, say so after `wait_notice_s`, and again each time
        the wait doubles: minutes of silence look like a hang. (The local engine's work shows as its
        own progress, so it is not told.)"""
        if not notify:
            yield
            return
        answered = threading.Event()
        every_s = self.options.wait_notice_s

        def tell() -> None:
            waited_s = 0.0
            while not answered.wait(max(every_s, waited_s)) and not self.stop.is_set():
                waited_s += max(every_s, waited_s)
                self.on_event(
                    Notice(f"{bill.path}: still waiting for chunk {chunk + 1} after {waited_s:.0f} s")
                )

        threading.Thread(target=tell, name="wb-waiting", daemon=True).start()
        try:
            yield
        finally:
            answered.set()

    def _with_retries(self, bill: Bill, chunk: int | None, request: Callable[[], _T]) -> _T:
        """One request (a chunk's transcription, or a translation batch), retried as the policy says:
        the one retry loop for every request a process makes."""
        policy, path = self.policy, bill.path
        where = f"{path}" if chunk is None else f"{path} (chunk {chunk + 1})"
        for attempt in range(1, policy.max_attempts + 1):
            if self.stop.is_set() or self.halted():
                raise Stopped("the run was stopped")
            bill.check()
            with self._lock:
                self._sent.add(bill.job_key)
            try:
                return request()
            except RetryableEngineError as e:
                if attempt == policy.max_attempts:
                    raise RetriesExhausted(
                        f"gave up after {attempt} attempts: {e}", path=path, chunk=chunk
                    ) from e
                delay = policy.request_delay_s(attempt, e.retry_after_s)
                self.on_event(Notice(f"{where}: {e}; retrying in {delay:.1f} s"))
                self.wait(delay)
            except (FatalEngineError, StoreError) as e:  # a store error: the answer could not be billed
                self.on_fatal(e)
                raise
            except EngineError as e:
                kind = RequestTooLarge if isinstance(e, RequestTooLarge) else EngineError  # a chunk is halved
                raise kind(str(e), path=path, chunk=chunk) from e
        raise AssertionError("unreachable")

    def wait(self, seconds: float) -> None:
        """Back off, but wake at once when the run is stopped."""
        if self.stop.wait(seconds):
            raise Stopped("the run was stopped")

    # ---- what each file has cost in this run, in the ledger as it grows -----------------------------

    def open(self, bill: Bill) -> Bill:
        with self._lock:
            self._bills.append(bill)
        return bill

    def record(self, bill: Bill, state: Spend) -> CostLine:
        """Write the bill to the ledger: a file done, or anything that was sent (so `report` matches
        what the provider bills even when no output was written)."""
        line = bill.line()
        if self.store is not None and (state is Spend.DONE or bill.answered_s > 0):
            bill.row = self.store.record_cost(self.run_id, line, state, job_key=bill.job_key, row=bill.row)
        return line

    def close_bill(self, bill: Bill, state: Spend) -> CostLine:
        with self._lock:
            if bill in self._bills:
                self._bills.remove(bill)
            if bill.abandoned:  # already recorded, in-flight requests included
                return bill.line()
        return self.record(bill, state)

    @contextmanager
    def _billed(self, bill: Bill, seconds: float) -> Iterator[_Ticket]:
        """One request in flight: billed once answered (a failed request is not billed), by the usage
        its answer reports (`_Ticket`), else by the seconds sent. An answer that could not be read was
        billed all the same: it is counted by the seconds sent before it is asked again."""
        key = object()
        ticket = _Ticket()
        with self._lock:
            bill.in_flight[key] = seconds
        try:
            yield ticket
        except UnreadableAnswer:
            self._count(bill, key, seconds, NO_USAGE)
            raise
        except BaseException:
            with self._lock:
                bill.in_flight.pop(key, None)
            raise
        self._count(bill, key, seconds, ticket.usage or NO_USAGE)

    def _count(self, bill: Bill, key: object, seconds: float, usage: Usage) -> None:
        """An answered request on its file's bill, and the bill in the ledger."""
        with self._lock:
            counted = bill.in_flight.pop(key, None) is not None  # not if abandoned meanwhile
            if counted:
                bill.answered_s += seconds if usage.seconds is None else usage.seconds
                bill.usage += dataclasses.replace(usage, seconds=None)
        if counted:
            self.record(bill, Spend.RUNNING)

    # ---- how the process stands --------------------------------------------------------------------

    def in_flight(self) -> dict[Path, int]:
        """Files in progress and how many requests each has in flight."""
        with self._lock:
            return {b.path: len(b.in_flight) for b in self._bills}

    def sent(self) -> set[str]:
        """Jobs with a request sent: a file only prepared is not started."""
        with self._lock:
            return set(self._sent)

    def abandon(self) -> list[Path]:
        """Stop without waiting for requests in flight: each file still in progress goes to the ledger
        as unfinished with what it cost so far, the abandoned requests included (the provider bills
        them whether or not the answer is read). Returns those that sent a request."""
        self.stop.set()
        with self._lock:
            bills = list(self._bills)
            for bill in bills:
                bill.answered_s += sum(bill.in_flight.values())
                bill.in_flight.clear()
                bill.abandoned = True
        for bill in bills:
            self.record(bill, Spend.UNFINISHED)
        return [bill.path for bill in bills if bill.job_key in self._sent]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
