"""Asking about a chunk until its text covers its speech: nothing spoken is silently dropped.

Every answer is checked against the speech detected in its chunk; an answer that leaves speech without
text is asked again without context, speech still without text is asked about alone, stretch by
stretch, and what stays without text is reported as the transcript's `gaps`. A chunk a server refuses
as too large is asked for in halves. Each answer is kept in the store the moment it arrives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .. import audio, speech, stitch
from ..engines.base import Engine
from ..errors import AudioError, EngineError, FatalEngineError, RequestTooLarge
from ..models import Chunk, EngineResult, Segment, Span
from .events import Event, Notice
from .gate import Gate
from .recording import Recording

GAP_PAD_S = 0.5  # a stretch asked about alone keeps this much audio either side of the lost speech


@dataclass(frozen=True)
class AskOptions:
    """What the requests about a chunk are asked with."""

    language: str | None  # the user's; None: detected on the recording's first chunk
    prompt: str | None  # the user's own prompt, always sent
    condition_on_previous: bool  # the previous chunk's words are sent as context


def _total_s(spans: Iterable[Span]) -> float:
    return sum(s.duration_s for s in spans)


def _inside(gap: Span, start_s: float, end_s: float) -> bool:
    return gap.start_s <= (start_s + end_s) / 2 <= gap.end_s


def _split_around(seg: Segment, gap: Span) -> list[Segment]:
    """A segment whose words skip `gap` becomes the part before it and the part after it."""
    if not seg.words or not (seg.start_s < gap.start_s and seg.end_s > gap.end_s):
        return [seg]
    before = tuple(w for w in seg.words if (w.start_s + w.end_s) / 2 < gap.start_s)
    after = tuple(w for w in seg.words if (w.start_s + w.end_s) / 2 > gap.end_s)
    if not before or not after or len(before) + len(after) != len(seg.words):
        return [seg]
    return [
        dataclasses.replace(seg, end_s=before[-1].end_s, text=stitch.words_text(before), words=before),
        dataclasses.replace(seg, start_s=after[0].start_s, text=stitch.words_text(after), words=after),
    ]


def _fill(result: EngineResult, answer: EngineResult, offset_s: float, gap: Span) -> EngineResult:
    """`result` with what `answer` (about a stretch starting at `offset_s`, a little wider than `gap`)
    heard inside `gap`, in time order. Only words whose middle lies in the gap are taken, so the
    neighbours' words that the stretch's edges reach are not said twice."""
    found: list[Segment] = []
    for seg in answer.segments:
        if seg.words:
            words = tuple(w.shifted(offset_s) for w in seg.words)
            heard = stitch.with_words(seg, [w for w in words if _inside(gap, w.start_s, w.end_s)])
            if heard is not None:
                found.append(heard)
        elif seg.text.strip() and _inside(gap, offset_s + seg.start_s, offset_s + seg.end_s):
            found.append(seg.shifted(offset_s))
    if not found:
        return result
    kept = [part for seg in result.segments for part in _split_around(seg, gap)]
    segments = tuple(sorted((*kept, *found), key=lambda seg: seg.start_s))
    return dataclasses.replace(
        result, segments=segments, text=" ".join(seg.text.strip() for seg in segments if seg.text.strip())
    )


def _joined(answers: Sequence[EngineResult], pieces: Sequence[Chunk]) -> EngineResult:
    """The answers for consecutive pieces of one chunk (`offset_s` relative to it) as one answer."""
    usages = [a.usage for a in answers if a.usage is not None]
    return EngineResult(
        text=" ".join(a.text.strip() for a in answers if a.text.strip()),
        segments=tuple(
            seg.shifted(piece.offset_s)
            for a, piece in zip(answers, pieces, strict=True)
            for seg in a.segments
        ),
        language=next((a.language for a in answers if a.language), None),
        usage=sum(usages[1:], usages[0]) if usages else None,
    )


class Asker:
    """Asks the engine about chunks through the gate, and checks each answer against the speech."""

    def __init__(
        self,
        engine: Engine,
        gate: Gate,
        options: AskOptions,
        *,
        ffmpeg: str,
        on_event: Callable[[Event], None],
    ) -> None:
        self.engine, self.gate, self.options = engine, gate, options
        self.ffmpeg, self.on_event = ffmpeg, on_event

    def uncovered(self, chunk: Chunk, result: EngineResult) -> list[Span]:
        """Detected speech in the chunk that the answer's (kept) text does not cover."""
        kept = stitch.filter_segments(result.segments)
        if not self.engine.info.timestamps:  # text laid over our own utterances: only emptiness tells
            return list(chunk.speech) if not kept else []
        return speech.uncovered(chunk.speech, kept)

    def checked(self, rec: Recording, chunk: Chunk, prompt: str | None) -> EngineResult:
        """Ask for a chunk, then make sure its text covers its speech.

        A model given earlier text as context can continue that text instead of hearing new words.
        So an answer that leaves speech uncovered, runs a segment far past the speech under it, or
        repeats the context is asked again without any (the user's own prompt is always sent). Speech
        still uncovered is then asked about alone, stretch by stretch; what stays uncovered becomes
        the transcript's `gaps`. Text its seconds cannot hold is taken out before coverage is judged
        (`stitch.filter_segments`), so the speech under it is asked about again; an untimed answer
        with more text than the chunk's speech holds is asked again whole.
        """
        where = f"{rec.path} (chunk {chunk.index + 1})"
        carried = self.options.condition_on_previous
        result = self._asked(rec, chunk, prompt, "first", condition=carried)
        gaps = self.uncovered(chunk, result)
        if carried and self._suspect(chunk, result, prompt, gaps):
            self.on_event(Notice(f"{where}: text may be missing; asked again without context"))
            again = self._asked(rec, chunk, self.options.prompt, "again")
            again_gaps = self.uncovered(chunk, again)
            if _total_s(again_gaps) <= _total_s(gaps):
                result, gaps = again, again_gaps
        if not self.engine.info.timestamps:  # untimed text cannot say which stretch it missed
            gaps = []
            result = self._not_overfull(rec, chunk, result, where)
        for gap in gaps:
            stretch = Span(max(0.0, gap.start_s - GAP_PAD_S), min(chunk.duration_s, gap.end_s + GAP_PAD_S))
            try:
                answer = self._asked(rec, chunk, self.options.prompt, stretch)
            except FatalEngineError:
                raise
            except (EngineError, AudioError) as e:  # the first answer stands; the gap stays reported
                self.on_event(Notice(f"{where}: could not ask again ({e})"))
                continue
            result = _fill(result, answer, stretch.start_s, gap)
        return result

    def _not_overfull(self, rec: Recording, chunk: Chunk, result: EngineResult, where: str) -> EngineResult:
        """An untimed answer with more text than the chunk's speech can hold is asked again; if it comes
        back overfull, none of it is laid over speech."""
        speech_s = _total_s(chunk.speech or (Span(0.0, chunk.duration_s),))
        if not stitch.overfull(result.text, speech_s):
            return result
        self.on_event(Notice(f"{where}: more text than its speech can hold; asked again"))
        again = self._asked(rec, chunk, self.options.prompt, "again")
        result = again if len(again.text) < len(result.text) else result
        if stitch.overfull(result.text, speech_s):
            result = dataclasses.replace(result, text="", segments=())
        return result

    def _asked(
        self,
        rec: Recording,
        chunk: Chunk,
        prompt: str | None,
        request: str | Span,
        *,
        condition: bool = False,
    ) -> EngineResult:
        """The answer to one request about `chunk`: the whole chunk ("first", or "again" without context),
        or a stretch of it alone. Stored by an earlier run, or asked now and stored the moment it
        arrives."""
        name = request if isinstance(request, str) else f"stretch {request.start_s:.3f}-{request.end_s:.3f}"
        stored = rec.cache.answer(chunk, name)
        if stored is not None:
            rec.hear(stored)
            return stored
        if isinstance(request, str):
            result = self._call(rec, chunk, prompt, condition=condition)
        else:
            piece = audio.cut_chunk(chunk, request, ffmpeg=self.ffmpeg)
            try:
                result = self._call(rec, piece, prompt)
            finally:
                piece.path.unlink(missing_ok=True)
        rec.cache.save_answer(chunk, name, result)
        rec.hear(result)
        return result

    def _suspect(self, chunk: Chunk, result: EngineResult, prompt: str | None, gaps: list[Span]) -> bool:
        if gaps:
            return True
        kept = stitch.filter_segments(result.segments)
        if self.engine.info.timestamps and speech.overlong(chunk.speech, kept):
            return True
        carried = prompt[len(self.options.prompt or "") :] if prompt else ""
        return stitch.repeats_context(kept, carried)

    def _call(
        self, rec: Recording, chunk: Chunk, prompt: str | None, *, condition: bool = False
    ) -> EngineResult:
        """Ask for one chunk through the gate (a slot, the bill, the retry policy). A chunk that the
        server refuses as too large (HTTP 413: a server whose cap is lower than the API's) is asked for
        in two halves, each halved again while it is refused, and their answers are joined."""

        def send() -> EngineResult:
            return self.engine.transcribe(
                chunk,
                task=rec.task,
                language=self.options.language or rec.language,
                prompt=prompt,
                condition_on_previous_text=condition,
            )

        try:
            return self.gate.transcribe(
                rec.bill, chunk.duration_s, chunk.index, send, notify=self.engine.parallel_chunks
            )
        except RequestTooLarge as e:
            try:
                halves = audio.halve(chunk, ffmpeg=self.ffmpeg)
            except AudioError as cut:
                raise EngineError(f"{e}, and it cannot be cut smaller ({cut.reason})") from e
            self.on_event(Notice(f"{e}; sending it in two halves"))
            try:
                answers = [self._call(rec, h, prompt, condition=condition) for h in halves]
            finally:
                for half in halves:
                    half.path.unlink(missing_ok=True)
            return _joined(answers, halves)
