"""A recording's chunks, transcribed and checked, and stitched into one transcript.

Each file's chunks are decoded, cut and encoded in a thread of their own, ahead of its requests
(`ahead`), so a request never waits on preparation. By default no earlier text is carried (a model
given the previous chunk's words as its prompt continues them and skips new speech), so a server is
sent a file's chunks in parallel, each about `parallel_chunk_s` long; with `condition_on_previous`
they go one after another, each prompted with the previous one's tail. A recording's language is
detected once, on its first chunk, and given to the rest (which wait for it).
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .. import audio, stitch
from ..errors import Cancelled, Stopped, StoreError
from ..models import Chunk, EngineResult, Segment, Span, Task, Transcript
from .events import ChunkDone, ChunksCounted, Notice, gaps_message
from .prepare import CutOptions, ahead, chunk_params
from .recording import Recording
from .repair import Asker, AskOptions
from .turns import TakeTurn


@dataclass(frozen=True)
class ChunkOptions:
    """How a recording is cut and asked about."""

    ask: AskOptions
    cut: CutOptions  # made into the engine's own cuts (`chunk_params`) by the stage
    concurrency: int  # chunks prepared ahead, and in flight, per file


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk's checked result, its segments on the recording's timeline, and what it cost."""

    result: EngineResult
    placed: tuple[Segment, ...]
    uploaded: bool  # False when the result came from the chunk cache
    gaps: tuple[Span, ...]  # speech that stayed without text, on the recording's timeline


@dataclass(frozen=True)
class ChunksDone:
    """Every chunk of one recording, transcribed and checked."""

    placed: tuple[tuple[Segment, ...], ...]
    chunks: tuple[Chunk, ...]
    uploaded: int
    language: str | None
    gaps: tuple[Span, ...]
    decoded_s: float  # audio ffmpeg could decode


def _short(decoded_s: float, declared_s: float) -> bool:
    """Whether a recording decoded to much less than its header declares (truncated, damaged)."""
    return decoded_s < 0.9 * declared_s and declared_s - decoded_s > 0.5


class ChunkStage:
    """Makes a recording's transcript from its chunks."""

    def __init__(self, asker: Asker, options: ChunkOptions) -> None:
        """`asker` asks about each chunk (with `options.ask`), through its engine and gate; the chunks
        are cut for that engine's model, upload limit and file type."""
        self.asker, self.options = asker, options
        self.engine, self.gate = asker.engine, asker.gate
        self.ffmpeg, self.on_event = asker.ffmpeg, asker.on_event
        self.params = chunk_params(
            options.cut,
            self.engine.info,
            max_bytes=self.engine.max_upload_bytes,
            suffix=self.engine.chunk_suffix,
            parallel=self.engine.parallel_chunks,
        )

    def transcript(self, rec: Recording, take_turn: TakeTurn) -> tuple[Transcript, ChunksDone]:
        """The chunks transcribed, then stitched into one timeline, with what could not be heard said
        aloud."""
        with tempfile.TemporaryDirectory(prefix="whisperbatch-") as tmp:
            done = self._chunks(rec, Path(tmp), take_turn)
        path, task, duration_s = rec.path, rec.task, rec.duration_s
        transcript = Transcript(
            segments=stitch.stitch(done.placed),
            language="en" if task is Task.TRANSLATE else (done.language or self.options.ask.language),
            duration_s=duration_s,
            engine=self.engine.name,
            model=self.engine.model,
            task=task,
            gaps=done.gaps,
            decoded_s=done.decoded_s if _short(done.decoded_s, duration_s) else None,
        )
        if done.gaps:
            self.on_event(Notice(gaps_message(path, done.gaps)))
        elif not transcript.segments:  # the outputs are written all the same: the recording is done
            self.on_event(Notice(f"{path}: no speech found; its outputs are empty"))
        if transcript.decoded_s is not None:
            self.on_event(Notice(f"{path}: warning: {transcript.warnings[0]}"))
        return transcript, done

    def _chunks(self, rec: Recording, workdir: Path, take_turn: TakeTurn) -> ChunksDone:
        """Every chunk's outcome. Chunks are decoded, cut and encoded in a thread of their own, ahead of
        the requests: one chunk ahead when each request waits for the previous answer (context
        carried), `concurrency` ahead when they go out side by side, so a free slot never waits. The
        first request waits for the file's turn (`Turns`). A cancelled job sends nothing more; its
        requests in flight are answered and billed before it stops."""
        chunker = audio.Chunker(rec.path, ffmpeg=self.ffmpeg, workdir=workdir, params=self.params)
        chunks: list[Chunk] = []
        pending: list[Future[ChunkOutcome] | ChunkOutcome] = []
        try:
            self._ask_all(rec, chunker, take_turn, chunks, pending)
            self.on_event(ChunksCounted(rec.path, rec.key, len(chunks)))
            outcomes = [p.result() if isinstance(p, Future) else p for p in pending]
        except Cancelled:  # the chunks not yet asked are dropped; those in flight are awaited
            futures = [p for p in pending if isinstance(p, Future)]
            for fut in futures:
                fut.cancel()
            wait(futures)
            raise
        return ChunksDone(
            placed=tuple(tuple(o.placed) for o in outcomes),
            chunks=tuple(chunks),
            uploaded=sum(1 for o in outcomes if o.uploaded),
            language=next((o.result.language for o in outcomes if o.result.language), None),
            gaps=tuple(g for o in outcomes for g in o.gaps),
            decoded_s=chunker.decoded_s,
        )

    def _ask_all(
        self,
        rec: Recording,
        chunker: audio.Chunker,
        take_turn: TakeTurn,
        chunks: list[Chunk],
        pending: list[Future[ChunkOutcome] | ChunkOutcome],
    ) -> None:
        """Ask about each chunk as it is cut (in `chunks`), its outcome or its future in `pending`."""
        options, stop = self.options, self.gate.stop
        sequential = options.ask.condition_on_previous
        previous_text = ""
        # Bounds chunk files waiting on disk when chunks are sent in parallel.
        window = threading.BoundedSemaphore(options.concurrency * 2)
        prepared = ahead(chunker.chunks(), 1 if sequential else options.concurrency, self.gate.preparing)
        with closing(prepared):  # an early exit stops the decoder at once
            for chunk in prepared:
                if not chunks:  # prepared ahead of this file's turn to send
                    take_turn(stop, rec.bill.check)
                if stop.is_set():
                    raise Stopped("the run was stopped")
                rec.bill.check()
                end_s = chunk.offset_s + chunk.duration_s
                told = ChunkDone(
                    path=rec.path,
                    key=rec.key,
                    index=chunk.index,
                    end_s=end_s,
                    covered_s=end_s - (chunks[-1].offset_s + chunks[-1].duration_s if chunks else 0.0),
                    duration_s=rec.duration_s,
                    uploaded=False,
                )
                chunks.append(chunk)
                if sequential:
                    prompt = stitch.prompt_for(
                        options.ask.prompt, previous_text, self.engine.info.prompt_max_tokens
                    )
                    outcome = self._outcome(rec, chunk, prompt)
                    previous_text = " ".join(s.text for s in outcome.placed) or previous_text
                    pending.append(outcome)
                    self.on_event(dataclasses.replace(told, uploaded=outcome.uploaded))
                else:
                    if len(pending) == 1 and self._asks_in_first_language():
                        self._await_first(rec, cast(Future[ChunkOutcome], pending[0]))
                    window.acquire()
                    fut = self.gate.pool.submit(self._outcome, rec, chunk, options.ask.prompt)
                    fut.add_done_callback(self._chunk_callback(window, told))
                    pending.append(fut)

    def _asks_in_first_language(self) -> bool:
        """Whether a recording's later chunks are asked in the language its first chunk was heard in:
        unless the user gave one, or the model never says what it heard (json-only)."""
        info = self.engine.info
        return not self.options.ask.language and (info.timestamps or info.languages_param)

    def _await_first(self, rec: Recording, first: Future[ChunkOutcome]) -> None:
        """Hold a recording's later chunks until its first is answered: asked without the language,
        a short chunk can be heard in another one, and `-j 2` would read a recording unlike `-j 1`.
        Only this file's own thread waits; its chunks are still prepared ahead meanwhile."""
        while rec.language is None and not first.done():
            if self.gate.stop.is_set():
                raise Stopped("the run was stopped")
            rec.bill.check()
            wait([first], timeout=0.2)

    def _chunk_callback(
        self, window: threading.BoundedSemaphore, told: ChunkDone
    ) -> Callable[[Future[ChunkOutcome]], None]:
        """What a chunk's end does: frees its place in the window, and tells it (`told`, once it is
        known whether it was uploaded)."""

        def done(fut: Future[ChunkOutcome]) -> None:
            window.release()
            if not fut.cancelled() and isinstance(fut.exception(), StoreError):
                # told before the chunks still to go are sent
                self.gate.on_fatal(cast(StoreError, fut.exception()))
            if not fut.cancelled() and fut.exception() is None:
                self.on_event(dataclasses.replace(told, uploaded=fut.result().uploaded))

        return done

    def _outcome(self, rec: Recording, chunk: Chunk, prompt: str | None) -> ChunkOutcome:
        """One chunk's checked result: stored by an earlier run, or asked (and asked again where speech
        was lost), each answer stored as it arrives."""
        cache = rec.cache
        hit = cache.get(chunk)
        if hit is None:
            try:
                result = self.asker.checked(rec, chunk, prompt)
            finally:
                chunk.path.unlink(missing_ok=True)  # keep at most the in-flight chunks on disk
            cache.put(chunk, result)
        else:
            chunk.path.unlink(missing_ok=True)
            result = hit
        rec.hear(result)
        gaps = self.asker.uncovered(chunk, result)
        return ChunkOutcome(
            result=result,
            placed=tuple(stitch.place(chunk, result)),
            uploaded=chunk.index in cache.sent,
            gaps=tuple(Span(g.start_s + chunk.offset_s, g.end_s + chunk.offset_s) for g in gaps),
        )
