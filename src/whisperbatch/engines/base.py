"""The engine protocol: what a pipeline asks of any way of turning a chunk into text.

What each model can do and costs is the catalog's (catalog.py), so an engine carries its model's
`ModelInfo` instead of deciding capabilities by name.
"""

from __future__ import annotations

from typing import Protocol

from ..catalog import ModelInfo
from ..models import Chunk, EngineResult, Task


class Engine(Protocol):
    """One way of turning a chunk file into text. Implementations must be safe to call from threads."""

    name: str  # "openai" or "local"
    model: str
    info: ModelInfo
    chunk_suffix: str  # the file type chunks are exported as for this engine
    max_upload_bytes: int | None
    # Whether several chunks of one recording are worth asking for at once, and files worth preparing
    # while every request slot is busy (a server: yes; one local model decodes one chunk at a time on
    # this host's cores, so for it chunks only need to be long).
    parallel_chunks: bool

    def transcribe(
        self,
        chunk: Chunk,
        *,
        task: Task,
        language: str | None,
        prompt: str | None,
        condition_on_previous_text: bool = False,
    ) -> EngineResult:
        """Text and segments for one chunk, times relative to the chunk. Raises EngineError subclasses.

        `condition_on_previous_text` lets an engine that decodes a chunk window by window feed each
        window its own earlier text (faster-whisper's option of that name); a server decides that itself.
        """
        ...

    def close(self) -> None: ...
