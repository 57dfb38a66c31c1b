"""One recording from audio to written outputs: probe → reserve → chunks → stitch → [stages] → write.

A `Pipeline` is what one set of job options makes: an engine, the stages after the transcript (speaker
labels, a translation), where the outputs go. The job runner keeps one per distinct set of options, all
sharing the process's one `Gate`, and hands each job's recording to `Pipeline.process_file`. Each recording
gets its own `Recording` for the length of its run, so nothing about one file is kept in the pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import audio, cost
from ..catalog import api_equivalent_usd_per_min
from ..engines.base import Engine
from ..errors import Stopped
from ..models import CostLine, FileResult, Spend, Task, Transcript
from ..policy import Budget
from ..speakers import SpeakerOptions
from ..store import JobStore
from ..translate import Translator
from .cache import ChunkCache
from .chunks import ChunkOptions, ChunkStage
from .events import Event, FileStarted
from .gate import Bill, Gate
from .outputs import OutputBook, OutputOptions
from .recording import Draft, Recording, Stage
from .repair import Asker
from .speakers import SpeakerStage
from .translation import TranslateOptions, TranslationStage
from .turns import TakeTurn


@dataclass(frozen=True)
class StageOptions:
    """Each stage's own options, as one set of job options makes them (configuration builds them)."""

    chunks: ChunkOptions
    outputs: OutputOptions
    translation: TranslateOptions | None  # None: no chat model translates
    speakers: SpeakerOptions | None = None  # None: no speaker labels


class Pipeline:
    """The stages one set of job options makes, its requests going through the process's gate."""

    def __init__(
        self,
        options: StageOptions,
        engine: Engine,
        *,
        gate: Gate,
        book: OutputBook,
        ffmpeg: str,
        store: JobStore | None = None,
        budget: Budget | None = None,
        translator: Translator | None = None,
        on_event: Callable[[Event], None] = lambda e: None,
    ) -> None:
        self.options, self.engine, self.translator = options, engine, translator
        self.gate, self.ffmpeg, self.store, self.budget = gate, ffmpeg, store, budget
        self.on_event = on_event
        self.outputs = book.outputs(options.outputs)
        asker = Asker(engine, gate, options.chunks.ask, ffmpeg=ffmpeg, on_event=on_event)
        self.chunks = ChunkStage(asker, options.chunks)
        self.translation: TranslationStage | None = None
        if translator is not None and options.translation is not None:
            self.translation = TranslationStage(
                translator, gate, options.translation, store=store, on_event=on_event
            )
        self.speakers = None
        if options.speakers is not None:
            self.speakers = SpeakerStage(options.speakers, ffmpeg=ffmpeg, store=store, stop=gate.stop)
        # The stages after the transcript, in order: a translation keeps the labelled cues' speakers.
        self.stages: tuple[Stage, ...] = tuple(s for s in (self.speakers, self.translation) if s is not None)

    def process_file(
        self,
        path: Path,
        task: Task,
        key: str,
        *,
        order: int = 0,
        unchanged: Callable[[], object] = lambda: None,
        cancel: threading.Event | None = None,
    ) -> FileResult:
        """Transcribe or translate job `key`'s recording and write its outputs. Raises WhisperbatchError.
        `order` is the job's place in the queue, for its turn to send (`Turns`); `unchanged` raises
        SourceChanged when the recording is no longer what was transcribed, before anything is written.
        Once `cancel` is set, no request starts and nothing is written: it raises Cancelled.

        The stages: probe, reserve the budget, transcribe the chunks (each stored as it arrives), stitch
        them into a transcript, the stages after it, write the outputs, and record the spend."""
        with self.gate.turns.queue(order) as take_turn:
            return self._process(path, task, key, take_turn, unchanged, cancel or threading.Event())

    def _process(
        self,
        path: Path,
        task: Task,
        key: str,
        take_turn: TakeTurn,
        unchanged: Callable[[], object],
        cancel: threading.Event,
    ) -> FileResult:
        info = audio.probe(path, self.ffmpeg)
        if self.budget is not None:
            self.budget.reserve(key, path, self.worst_case_usd(info.duration_s))
        price = functools.partial(self._cost_line, task=task, audio_s=info.duration_s)
        bill = self.gate.open(Bill(path, key, price, cancel=cancel))
        rec = Recording(path, task, key, info.duration_s, bill, ChunkCache(self.store, key))
        state = Spend.FAILED
        try:
            self.on_event(FileStarted(path, key, info.duration_s))
            draft = self._draft(rec, take_turn)
            heard = draft.transcript
            for stage in self.stages:
                bill.check()
                draft = stage(rec, draft)
            line = bill.line()
            if self.gate.stop.is_set():
                raise Stopped(f"{path}: stopped before writing outputs")
            bill.check()
            unchanged()
            outputs = self.outputs.write(path, task, key, draft.transcript, draft.translated, line)
            state = Spend.DONE
            self.outputs.append_costs(outputs, line)
        except Stopped:
            state = Spend.UNFINISHED
            raise
        finally:
            self.gate.close_bill(bill, state)
            if self.budget is not None:
                self.budget.release(key)
        return FileResult(
            source=path,
            outputs=outputs,
            cost=line,
            transcript=draft.transcript,
            heard=heard,
            translation=draft.translated,
            chunks_total=draft.chunks_total,
            chunks_uploaded=draft.chunks_uploaded,
        )

    def _draft(self, rec: Recording, take_turn: TakeTurn) -> Draft:
        """The recording's transcript: the one stored for its job (a job done before and queued again
        for another translation), or made from its chunks."""
        stored = self._stored_transcript(rec.key)
        if stored is not None:
            return Draft(stored)
        transcript, done = self.chunks.transcript(rec, take_turn)
        return Draft(transcript, chunks_total=len(done.chunks), chunks_uploaded=done.uploaded)

    def _stored_transcript(self, key: str) -> Transcript | None:
        job = None if self.store is None or not self.stages else self.store.job(key)
        return None if job is None else job.transcript

    def stored_translation(self, key: str, transcript: Transcript) -> Transcript | None:
        """This pipeline's translation of job `key`'s transcript, if the store holds it."""
        if self.translation is None:
            return None
        cues, _, texts = self.translation.stored(key, transcript)
        return None if texts is None else self.translation.translated(transcript, cues, texts)

    def write_stored(
        self, source: Path, task: Task, key: str, transcript: Transcript, *, same_as: Path
    ) -> FileResult | None:
        """Outputs for `source` from what is in the store (the transcript of `same_as`, the recording
        with its content): nothing is sent or billed, and its cost row, at $0, says which recording
        it matched. None, and nothing written, when the speaker labels or the translation this pipeline
        makes are not stored yet."""
        heard, translated = transcript, None
        if self.speakers is not None:
            found = self.speakers.stored(key)
            if found is None:
                return None
            transcript = self.speakers.labelled(transcript, found)
        if self.translation is not None:
            translated = self.stored_translation(key, transcript)
            if translated is None:
                return None
        line = cost.cost_line(
            str(source),
            audio_s=transcript.duration_s,
            billed_s=0.0,
            engine=self.engine.name,
            info=self.engine.info,
            task=task,
            api_usd_per_min=api_equivalent_usd_per_min(),
        )
        line = dataclasses.replace(line, same_as=str(same_as))
        outputs = self.outputs.write(source, task, key, transcript, translated, line)
        self.outputs.append_costs(outputs, line)
        if self.store is not None:
            self.store.record_cost(self.gate.run_id, line, Spend.DONE, job_key=key)
        return FileResult(
            source=source,
            outputs=outputs,
            cost=line,
            transcript=transcript,
            heard=heard,
            translation=translated,
        )

    def _cost_line(self, bill: Bill, *, task: Task, audio_s: float) -> CostLine:
        translation = self.options.translation
        return cost.cost_line(
            str(bill.path),
            audio_s=audio_s,
            billed_s=bill.answered_s,
            engine=self.engine.name,
            info=self.engine.info,
            task=task,
            api_usd_per_min=api_equivalent_usd_per_min(),
            usage=bill.usage,
            translator=None if self.translator is None else self.translator.info,
            translate_to="" if translation is None else translation.target,
            translate_usage=bill.translate_usage,
        )

    def worst_case_usd(self, duration_s: float) -> float:
        """What a recording costs at most: every second billed (silences skipped cost less), and its
        translation at twice the usual tokens for that much speech."""
        minutes = duration_s / 60.0
        usd = minutes * self.engine.info.usd_per_min
        if self.translator is not None:
            usd += 2 * (self.translator.info.usd(cost.translation_forecast(minutes)) or 0.0)
        return usd

    def close(self) -> None:
        self.engine.close()
        if self.translator is not None:
            self.translator.close()
