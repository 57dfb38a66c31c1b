"""Live events, from the runner's threads to every open event stream.

The runner tells what happens through a callback on its own threads; each stream is an asyncio queue
on the server's loop, fed with `call_soon_threadsafe`. A stream that falls behind loses its oldest
events rather than holding memory or the runner up: the stream is for watching, the store is the
record.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..pipeline import ChunkDone, ChunksCounted, Event, FileFinished, FileStarted

STREAM_MAX = 1000  # events a stream may hold before its oldest are dropped


@dataclass(frozen=True)
class Published:
    kind: str  # "job.started", "job.progress", "job.finished", "notice"
    data: dict[str, Any]

    def sse(self) -> str:
        return f"event: {self.kind}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


def published(event: Event) -> Published:
    """A runner event as a stream message, naming its job by key (paths as file names only: a stream
    shows no server folders)."""
    now = time.time()
    if isinstance(event, FileStarted):
        data = {"key": event.key, "recording": event.path.name, "audio_s": event.duration_s}
        return Published("job.started", data | {"at": now})
    if isinstance(event, ChunkDone):
        data = {"key": event.key, "recording": event.path.name, "chunk": event.index, "end_s": event.end_s}
        return Published("job.progress", data | {"audio_s": event.duration_s, "at": now})
    if isinstance(event, ChunksCounted):
        data = {"key": event.key, "recording": event.path.name, "chunks_total": event.total}
        return Published("job.progress", data | {"at": now})
    if isinstance(event, FileFinished):
        result = event.result
        data = {"recording": result.source.name, "error": result.error, "at": now}
        return Published("job.finished", data | {"usd": None if result.cost is None else result.cost.usd})
    return Published("notice", {"message": event.message, "at": now})


class EventHub:
    def __init__(self) -> None:
        self._streams: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Published]]] = set()
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        """Called on any thread by the runner."""
        message = published(event)
        with self._lock:
            streams = list(self._streams)
        for loop, queue in streams:
            loop.call_soon_threadsafe(_put, queue, message)

    def subscribe(self) -> asyncio.Queue[Published]:
        queue: asyncio.Queue[Published] = asyncio.Queue()
        with self._lock:
            self._streams.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Published]) -> None:
        with self._lock:
            self._streams = {s for s in self._streams if s[1] is not queue}


def _put(queue: asyncio.Queue[Published], message: Published) -> None:
    if queue.qsize() >= STREAM_MAX:
        queue.get_nowait()
    queue.put_nowait(message)
