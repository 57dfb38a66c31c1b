"""The stub engine answers from its script, then by default, and counts what runs at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from whisperbatch.engines.base import Engine
from whisperbatch.errors import RetryableEngineError
from whisperbatch.models import Chunk, EngineResult, Segment, Span, Task
from whisperbatch.testing import StubEngine


def _chunk(index: int = 0, speech: tuple[Span, ...] = ()) -> Chunk:
    return Chunk(index, 30.0 * index, 30.0, Path(f"chunk{index}.mp3"), 1000, speech)


def _ask(engine: Engine, chunk: Chunk) -> EngineResult:
    return engine.transcribe(chunk, task=Task.TRANSCRIBE, language=None, prompt=None)


def test_the_script_is_answered_in_order_then_the_default() -> None:
    scripted = EngineResult("Hello.", (Segment(0.0, 1.0, " Hello."),))
    engine = StubEngine([RetryableEngineError("busy", retry_after_s=1), scripted])
    with pytest.raises(RetryableEngineError):
        _ask(engine, _chunk(0))
    assert _ask(engine, _chunk(1)) is scripted
    spoken = _ask(engine, _chunk(2, (Span(1.0, 2.5), Span(4.0, 6.0))))
    assert [(s.start_s, s.end_s) for s in spoken.segments] == [(1.0, 2.5), (4.0, 6.0)]
    assert spoken.usage is not None and spoken.usage.seconds == 30
    assert [c.chunk.index for c in engine.calls] == [0, 1, 2]
    engine.close()
    assert engine.closed and engine.info.name == "whisper-1"


def test_a_function_in_the_script_sees_the_chunk() -> None:
    engine = StubEngine([lambda chunk: EngineResult(f"chunk {chunk.index}", ())])
    assert _ask(engine, _chunk(4)).text == "chunk 4"


def test_calls_in_flight_at_once_are_counted() -> None:
    engine = StubEngine(delay_s=0.3)
    threads = [threading.Thread(target=_ask, args=(engine, _chunk(i))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine.max_in_flight == 3 and engine.in_flight == 0 and len(engine.calls) == 3
