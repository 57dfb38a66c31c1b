"""A stub `Engine` that answers from a script: no model, no network, no audio decoded.

Whatever sits above an engine (request slots, retries, billing, stitching, writing) can then be tested
in milliseconds, with every answer, failure and delay chosen by the test. It satisfies the `Engine`
protocol in `whisperbatch.engines.base`, so it goes wherever a real engine goes.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..catalog import ModelInfo, model_info
from ..models import Chunk, EngineResult, Segment, Span, Task, Usage

# One scripted answer: a result, an exception to raise (an `EngineError` subclass, as real engines
# raise), or a function of the chunk that returns a result or raises.
Answer = EngineResult | Exception | Callable[[Chunk], EngineResult]


@dataclass(frozen=True)
class StubCall:
    """One `transcribe` call as the stub saw it."""

    chunk: Chunk
    task: Task
    language: str | None
    prompt: str | None


def words_spoken_here(chunk: Chunk) -> EngineResult:
    """The answer when the script has run out: one segment per utterance the chunk lists (or one over the
    whole chunk), each saying "Words spoken here.", billed by the second as whisper-1 is."""
    spans = chunk.speech or (Span(0.0, chunk.duration_s),)
    segments = tuple(Segment(s.start_s, s.end_s, " Words spoken here.") for s in spans)
    text = " ".join(s.text.strip() for s in segments)
    return EngineResult(text, segments, "en", Usage(seconds=math.ceil(chunk.duration_s)))


class StubEngine:
    """`StubEngine([result, RetryableEngineError("busy"), ...])`: each call takes the next answer in order,
    then `default` once the script is spent. `delay_s` holds every call that long (to see how many run at
    once: `max_in_flight`); `calls` records every call, in the order they arrived. Thread-safe."""

    chunk_suffix = ".mp3"
    max_upload_bytes: int | None = None

    def __init__(
        self,
        script: Iterable[Answer] = (),
        *,
        name: str = "openai",
        model: str = "whisper-1",
        info: ModelInfo | None = None,
        default: Callable[[Chunk], EngineResult] = words_spoken_here,
        delay_s: float = 0.0,
        parallel_chunks: bool = True,
    ) -> None:
        self.name = name
        self.model = model
        self.info = info or model_info(model)
        self.parallel_chunks = parallel_chunks
        self.default = default
        self.delay_s = delay_s
        self.closed = False
        self.max_in_flight = 0
        self._script: deque[Answer] = deque(script)
        self._calls: list[StubCall] = []
        self._in_flight = 0
        self._lock = threading.Lock()

    def transcribe(
        self,
        chunk: Chunk,
        *,
        task: Task,
        language: str | None,
        prompt: str | None,
        condition_on_previous_text: bool = False,
    ) -> EngineResult:
        with self._lock:
            self._calls.append(StubCall(chunk, task, language, prompt))
            answer: Answer = self._script.popleft() if self._script else self.default
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if isinstance(answer, Exception):
                raise answer
            return answer if isinstance(answer, EngineResult) else answer(chunk)
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        self.closed = True

    @property
    def calls(self) -> list[StubCall]:
        with self._lock:
            return list(self._calls)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight
