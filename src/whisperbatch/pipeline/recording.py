"""One recording's run: the state that belongs to it alone, made when its job starts and dropped when
it ends, and the shape of a stage that works on it.

A stage takes the recording and what the stages before it made (`Draft`) and returns what it adds: a
translation, speaker labels. Stages run in order after the transcript is made; a new capability is one
more stage in the pipeline's list, not a branch inside another."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..models import EngineResult, Task, Transcript
from .cache import ChunkCache
from .gate import Bill


@dataclass
class Recording:
    """A recording in progress: its job, its bill, its chunks' cache and the language it was heard in."""

    path: Path
    task: Task
    key: str
    duration_s: float
    bill: Bill
    cache: ChunkCache
    # The language the recording is heard in: detected once, on the first chunk answered, then given
    # to its later requests (as Whisper does for a whole file).
    language: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def hear(self, result: EngineResult) -> None:
        """Its first answer that says a language sets the recording's."""
        if result.language:
            with self._lock:
                if self.language is None:
                    self.language = result.language


@dataclass(frozen=True)
class Draft:
    """What the stages have made of a recording so far."""

    transcript: Transcript
    translated: Transcript | None = None
    chunks_total: int = 0
    chunks_uploaded: int = 0


class Stage(Protocol):
    """A step after the transcript: it reads the recording and the draft, and returns the draft with
    its own part added."""

    def __call__(self, rec: Recording, draft: Draft) -> Draft: ...
