"""Files' turns to send requests, in queue order: the fairness a plain semaphore does not give."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import Stopped

# Waits for a file's turn: `take(stop, check)`, `check` raising when the file's job is cancelled.
TakeTurn = Callable[[threading.Event, Callable[[], None]], None]


class Turns:
    """Files' turns to send requests: at most `n` files at once, each from its first request until its
    outputs are written. A file waiting with a chunk ready takes a free turn unless as many files as
    there are free turns wait before it in the queue: at `-j 1` files go strictly in queue order, and
    at `-j N` the first N files in progress go as each is ready, as when only N files were started.

    Written here because a semaphore serves whichever waiter wakes first."""

    def __init__(self, n: int) -> None:
        self._cond = threading.Condition()
        self._free = n
        self._waiting: set[int] = set()  # places in the queue of files in line for a turn

    @contextmanager
    def queue(self, order: int) -> Iterator[TakeTurn]:
        """A file's place in line: yields `take(stop, check)`, which waits for its turn (raising Stopped
        when the run stops; `check` raises when the file's job is cancelled). Leaving gives up the
        place, or the turn."""
        took = False

        def take(stop: threading.Event, check: Callable[[], None]) -> None:
            nonlocal took
            with self._cond:
                while self._free == 0 or sum(o < order for o in self._waiting) >= self._free:
                    if stop.is_set():
                        raise Stopped("the run was stopped")
                    check()
                    self._cond.wait(0.2)
                self._waiting.discard(order)
                self._free -= 1
                took = True

        with self._cond:
            self._waiting.add(order)
        try:
            yield take
        finally:
            with self._cond:
                if took:
                    self._free += 1
                else:
                    self._waiting.discard(order)
                self._cond.notify_all()
