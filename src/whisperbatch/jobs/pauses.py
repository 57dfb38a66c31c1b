"""A queue's pauses: after a fatal answer (key, quota, model), a budget refusal, or a store that cannot
be written, no job starts, and after a fatal answer no request goes out either, until the pause ends.
A one-off run pauses for good (it then ends); the service pauses for a while and tries again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import BudgetExceeded, FatalEngineError, StoreError
from .mode import RunMode

STORE_RETRY_S = 5.0  # a worker that cannot reach the store tries again after this long


class Pauses:
    def __init__(self, mode: RunMode, pause_s: float, say: Callable[[str], None]) -> None:
        self.mode, self.pause_s, self.say = mode, pause_s, say
        self.reason: str | None = None
        self._until = 0.0
        self._halt_until = 0.0  # requests held back until then (`halted`)
        self._lock = threading.Lock()

    def length_s(self, error: BudgetExceeded | FatalEngineError | StoreError) -> float | None:
        """How long the queue pauses after `error`: for good after a budget refusal or when the mode
        ends on a fatal error."""
        return None if isinstance(error, BudgetExceeded) or self.mode.ends_on_fatal else self.pause_s

    def fatal(self, error: FatalEngineError | StoreError) -> None:
        """A server refused this host's key, quota or model: pause the queue, and let no request go out
        until the pause ends. Called where the answer arrives, before the file that got it unwinds, so
        no other file in progress sends one meanwhile (each would only be refused the same way).

        A store that cannot be written would lose every answer paid for from then on: a one-off run
        stops at once (what is stored is kept, and the same command resumes from it); the service holds
        its requests back for a while, and its workers try the store again."""
        if isinstance(error, StoreError) and not self.mode.ends_on_fatal:
            with self._lock:
                fresh = time.monotonic() >= self._halt_until
                self._halt_until = max(self._halt_until, time.monotonic() + STORE_RETRY_S)
            if fresh:
                self.say(f"job store error ({error}); no request goes out for {STORE_RETRY_S:.0f} s")
            return
        self.pause(str(error), seconds=self.length_s(error), halt=True)

    def halted(self) -> bool:
        """Whether requests are held back after a fatal answer (a budget pause lets files already
        started finish within their reservations)."""
        with self._lock:
            return time.monotonic() < self._halt_until

    def pause(self, reason: str, *, seconds: float | None, halt: bool = False) -> None:
        """Stop taking jobs: for a while (a rejected key or quota may come back), or for good (the
        budget; a one-off run then ends, leaving its jobs queued for the next run). With `halt`, no
        request goes out either until then (`halted`)."""
        with self._lock:
            fresh = self.reason != reason
            self.reason = reason
            self._until = float("inf") if seconds is None else time.monotonic() + seconds
            if halt:
                self._halt_until = self._until
        if fresh and self.mode.tells_queue:
            when = "until restarted" if seconds is None else f"for {seconds:.0f} s, then trying again"
            self.say(f"queue paused {when}: {reason}")

    def paused(self) -> bool:
        with self._lock:
            if self.reason is None:
                return False
            if time.monotonic() < self._until:
                return True
            self._until = float("inf")  # one worker probes; success clears the pause
            return False

    def resumed(self) -> None:
        with self._lock:
            if self.reason is None:
                return
            self.reason = None
            self._halt_until = 0.0
        self.say("queue resumed")
