"""Answers kept the moment they arrive: what makes a stopped run resumable without paying twice."""

from __future__ import annotations

from ..models import Chunk, EngineResult
from ..store import ResultStore


class ChunkCache:
    """A job's checked chunk results and every answer they were made from, kept in the store the moment
    each arrives (before anything else can fail, re-asks included), so a resumed job sends only what is
    missing and no answer is paid for twice."""

    def __init__(self, store: ResultStore | None, key: str) -> None:
        self.store, self.key = store, key
        self.sent: set[int] = set()  # chunks a request was sent for in this run

    def get(self, chunk: Chunk) -> EngineResult | None:
        if self.store is None:
            return None
        return self.store.chunk_result(self.key, chunk.index, chunk.offset_s, chunk.duration_s)

    def put(self, chunk: Chunk, result: EngineResult) -> None:
        if self.store is not None:
            self.store.save_chunk_result(self.key, chunk.index, chunk.offset_s, chunk.duration_s, result)

    @staticmethod
    def _request(chunk: Chunk, name: str) -> str:
        return f"{chunk.index}@{chunk.offset_s:.3f}+{chunk.duration_s:.3f} {name}"

    def answer(self, chunk: Chunk, name: str) -> EngineResult | None:
        """The answer to request `name` about `chunk` ("first", "again", a stretch), if one arrived."""
        if self.store is None:
            return None
        return self.store.answer(self.key, self._request(chunk, name))

    def save_answer(self, chunk: Chunk, name: str, result: EngineResult) -> None:
        self.sent.add(chunk.index)
        if self.store is not None:
            self.store.save_answer(self.key, self._request(chunk, name), result)
