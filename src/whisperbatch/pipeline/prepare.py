"""Getting a recording's chunks ready before their requests: how a recording is cut (the one rule,
for a run and for its estimate), and chunks produced in a thread of their own ahead of the requests,
so a free request slot never waits on decoding or encoding."""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from .. import audio
from ..catalog import ModelInfo

_T = TypeVar("_T")


@dataclass(frozen=True)
class CutOptions:
    """How recordings are cut, whatever the model: what `chunk_params` turns into one model's cuts."""

    target_s: float  # a chunk's length, where nothing shorter is asked for
    parallel_s: float  # a chunk's length when a server answers a recording's chunks side by side
    utterance_max_s: float  # the longest chunk for a model that returns no timestamps
    condition_on_previous: bool  # each chunk waits for the previous one's words as context
    min_silence_s: float
    skip_silence_s: float
    vad_threshold: float
    energy_dbfs: float | None


def chunk_params(
    cut: CutOptions, info: ModelInfo, *, max_bytes: int | None, suffix: str = ".mp3", parallel: bool = True
) -> audio.ChunkParams:
    """How a recording is cut for `info`'s model: the one rule, for a run and for its estimate.

    Chunks a server answers side by side (`parallel`, and no context carried from one to the next) aim
    at `parallel_s`, so a long recording's requests share the `concurrency` slots evenly; the
    length does not depend on `concurrency`, so a run resumed with another `-j` finds its chunks.
    """
    target = cut.target_s
    if parallel and not cut.condition_on_previous:
        target = min(target, cut.parallel_s)
    longest = target * 1.5
    if not info.timestamps:
        # Untimed text is laid over the chunk's utterances, so chunks stay short: never longer than
        # `utterance_max_s`, which also keeps each inside one 30-s window of a Whisper server.
        longest = min(cut.utterance_max_s, target)
        target = longest * 2 / 3
    return audio.ChunkParams(
        target_s=min(target, info.max_duration_s * 0.8),
        max_s=min(longest, info.max_duration_s),
        min_silence_s=cut.min_silence_s,
        skip_silence_s=cut.skip_silence_s,
        vad_threshold=cut.vad_threshold,
        energy_dbfs=cut.energy_dbfs,
        max_bytes=max_bytes,
        suffix=suffix,
    )


def upload_forecast_s(path: Path, params: audio.ChunkParams, *, ffmpeg: str) -> float:
    """Seconds a run would upload for `path`: the same decoding, speech detection and cuts, nothing
    encoded or sent (far faster than real time)."""
    chunker = audio.Chunker(path, ffmpeg=ffmpeg, workdir=Path(tempfile.gettempdir()), params=params)
    return sum(span.duration_s for span in chunker.plan())


def ahead(
    items: Iterator[_T], n: int, gate: AbstractContextManager[object] | None = None
) -> Generator[_T, None, None]:
    """`items`, produced in a thread of their own up to `n` ahead of the consumer. An error raised while
    producing is raised to the consumer at that point; a consumer that stops early closes `items`
    (a generator's `finally` runs) and what was produced but not taken is dropped. With a `gate`,
    each item is produced inside it (a semaphore shared by several producers bounds how many work at
    once; waiting to hand an item over is outside it).

    Written here because neither the standard library nor a dependency reads a generator ahead in a
    bounded queue and hands its errors and its closing across the thread."""
    slots: queue.Queue[tuple[_T | None, BaseException | None, bool]] = queue.Queue(maxsize=n)
    quit = threading.Event()
    end = object()

    def put(entry: tuple[_T | None, BaseException | None, bool]) -> bool:
        while not quit.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while True:
                with gate or nullcontext():
                    item = next(items, end)
                if item is end:
                    break
                if not put((cast(_T, item), None, False)):
                    return
            put((None, None, True))
        except BaseException as e:  # handed over to the consumer, raised there
            put((None, e, True))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="wb-prepare", daemon=True)
    worker.start()
    try:
        while True:
            item, error, last = slots.get()
            if error is not None:
                raise error
            if last:
                return
            yield cast(_T, item)
    finally:
        quit.set()
        worker.join()


def files_preparing() -> int:
    """Files whose chunks are prepared at once: each keeps about two cores busy (speech detection,
    decoder and encoders), and the first file's chunks are better ready early than all files' first
    chunks late: with more files than cores, the first requests wait on the fewest."""
    return max(1, audio.usable_cores() // 2)
