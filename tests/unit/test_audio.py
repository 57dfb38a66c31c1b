"""Chunks prepared ahead of their consumer: failures arrive in order, stopping early closes what
prepares, and a shared gate lets one producer work at a time."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from whisperbatch.errors import AudioError
from whisperbatch.pipeline import ahead


def test_a_failure_while_preparing_reaches_the_consumer_in_order() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise AudioError(Path("talk.m4a"), "cannot decode audio (truncated)")

    got: list[int] = []
    with pytest.raises(AudioError, match="truncated"):
        got.extend(ahead(items(), 1))
    assert got == [1, 2]


def test_stopping_early_closes_what_prepares() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield from itertools.count()
        finally:
            closed.set()

    prepared = ahead(items(), 2)
    assert next(prepared) == 0
    prepared.close()
    assert closed.is_set()


def test_a_shared_gate_lets_one_producer_work_at_a_time() -> None:
    """Producers sharing a gate never produce at once, and one waiting to hand over an item (its
    consumer is slow) does not hold the gate."""
    gate = threading.Semaphore(1)
    working = 0
    most = 0
    lock = threading.Lock()

    def items(name: str) -> Iterator[str]:
        nonlocal working, most
        for i in range(5):
            with lock:
                working += 1
                most = max(most, working)
            time.sleep(0.01)
            with lock:
                working -= 1
            yield f"{name}{i}"

    first = ahead(items("a"), 1, gate)
    second = ahead(items("b"), 1, gate)
    with closing(first), closing(second):
        assert next(first) == "a0"  # `first` now waits with a1 ready, outside the gate
        assert list(second) == [f"b{i}" for i in range(5)]
        assert list(first) == [f"a{i}" for i in range(1, 5)]
    assert most == 1
