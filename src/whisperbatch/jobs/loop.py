"""Running jobs until done or told to stop: one loop for one-off runs, the watcher and workers.

`serve` is that loop: it owns the signals (Ctrl-C and SIGTERM alike), calls the source of jobs (the
watcher's `tick`, or nothing), and ends when the command's condition holds. On the first signal no
new work starts and the loop says what it is waiting for; requests still in flight after the grace
period, or at a second signal, are abandoned (their cost goes in the ledger). Either way this
process's jobs go back to the queue, so the next run, or another worker, resumes them from their
stored chunks. This module only decides when to stop.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .runner import JobRunner


@dataclass(frozen=True)
class Interruption:
    """A run stopped by Ctrl-C or SIGTERM."""

    signum: int
    # Files left in progress when requests in flight were abandoned, and files never started (both
    # empty if the run wound down within the grace period).
    unfinished: tuple[Path, ...] = ()
    not_started: tuple[Path, ...] = ()

    @property
    def abandoned(self) -> bool:
        """Requests were left in flight: the process must exit without waiting for them."""
        return bool(self.unfinished)


def serve(
    runner: JobRunner,
    *,
    done: Callable[[], bool],
    tick: Callable[[], None] = lambda: None,
    grace_s: float,
    poll_s: float = 0.2,
) -> Interruption | None:
    """Run `runner`'s workers, calling `tick` every `poll_s`, until `done()` or a signal; `done()` is
    also asked at once and whenever the last busy worker finishes, so a run ends with its last job.
    Signals are caught only on the main thread (the only one that can set their handlers); a run on
    another thread (the library called from a script's thread) ends by `done()` alone."""
    signals: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # a signal, or None: look again now
    on_main = threading.current_thread() is threading.main_thread()
    watched = (signal.SIGINT, signal.SIGTERM) if on_main else ()
    previous = {sig: signal.signal(sig, lambda signum, _frame: signals.put(signum)) for sig in watched}
    runner.on_idle = lambda: signals.put(None)
    signals.put(None)  # workers that went idle before on_idle was set are seen here
    first: int | None = None
    deadline = math.inf
    try:
        while True:
            try:
                signum = signals.get(timeout=poll_s)
            except queue.Empty:
                signum = None
            if first is None and signum is None:
                tick()
                if done():
                    runner.wind_down(grace_s)
                    return None
            elif first is None and signum is not None:
                first = signum
                runner.stop.set()
                deadline = time.monotonic() + grace_s
                runner.say(_waiting_line(first, runner.in_flight(), grace_s))
            elif first is None:
                continue
            elif signum is not None or time.monotonic() > deadline:
                unfinished = tuple(runner.abandon())
                runner.wind_down(0.0)
                return Interruption(first, unfinished)
            elif not runner.busy():
                runner.wind_down(0.0)
                return Interruption(first)
    finally:
        runner.on_idle = lambda: None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _waiting_line(signum: int, in_flight: dict[Path, int], grace_s: float) -> str:
    name = signal.Signals(signum).name
    waiting = {path: n for path, n in in_flight.items() if n}  # files between requests give nothing up
    if not waiting:
        return f"stopping ({name}): no new work"
    requests = sum(waiting.values())
    files = ", ".join(str(p) for p in waiting)
    return (
        f"stopping ({name}): no new work; {requests} request(s) in flight for {files} are given up after "
        f"{grace_s:.0f} s (again to stop now); their cost goes in the ledger"
    )
