"""Translating with a chat model: a stage after the transcript.

The source's subtitle cues are translated (`translate.py`) and written as `<stem>.<lang>.<ext>` beside
the source-language outputs, each translated cue at its source cue's times. A transcript already in the
store (the recording was transcribed before) is translated without uploading anything, and a
translation already in the store is not paid for again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..cues import Cue, CueStyle, build_cues
from ..errors import EngineError
from ..models import Segment, Task, Transcript
from ..store import JobStore
from ..translate import BadReply, Translator
from .events import Event, Notice
from .gate import Gate
from .recording import Draft, Recording


@dataclass(frozen=True)
class TranslateOptions:
    """What a translation is made with: its language, the cues it is cut into, and the terms that
    guide it (the user's prompt and keywords)."""

    target: str
    style: CueStyle
    glossary: str | None


class TranslationStage:
    """Adds the transcript's translation to a recording's draft."""

    def __init__(
        self,
        translator: Translator,
        gate: Gate,
        options: TranslateOptions,
        *,
        store: JobStore | None,
        on_event: Callable[[Event], None],
    ) -> None:
        self.translator, self.gate, self.options = translator, gate, options
        self.store, self.on_event = store, on_event

    def __call__(self, rec: Recording, draft: Draft) -> Draft:
        """The transcript's cues in the target language, from the store or from the chat model (stored)."""
        transcript, path = draft.transcript, rec.path
        cues, tkey, stored = self.stored(rec.key, transcript)
        if stored is not None:
            return dataclasses.replace(draft, translated=self.translated(transcript, cues, stored))
        try:
            result = self.translator.translate(
                [" ".join(c.lines) for c in cues],
                source=transcript.language,
                target=self.options.target,
                glossary=self.options.glossary,
                call=lambda ask: self.gate.chat(rec.bill, ask),
                on_retry=lambda message: self.on_event(Notice(f"{path}: translation {message}")),
            )
        except BadReply as e:  # a line no reply would translate: the file fails, no cue is dropped
            raise EngineError(str(e), path=path) from e
        if self.store is not None:
            self.store.save_translation(
                tkey, rec.key, self.options.target, self.translator.model, result.texts
            )
        return dataclasses.replace(draft, translated=self.translated(transcript, cues, result.texts))

    def stored(self, key: str, transcript: Transcript) -> tuple[list[Cue], str, list[str] | None]:
        """The source's cues, the key of their translation (job, language, model and the cues themselves:
        another cue shape is another translation), and that translation's lines if the store has them."""
        cues = build_cues(transcript.segments, self.options.style, end_s=transcript.duration_s or None)
        identity: list[object] = [key, self.options.target, self.translator.model]
        identity += [[c.start_ms, c.end_ms, " ".join(c.lines)] for c in cues]
        tkey = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        return cues, tkey, None if self.store is None else self.store.translation(tkey)

    def translated(self, transcript: Transcript, cues: list[Cue], texts: Sequence[str]) -> Transcript:
        return dataclasses.replace(
            transcript,
            segments=tuple(
                Segment(c.start_ms / 1000, c.end_ms / 1000, text, speaker=_one(c.speakers))
                for c, text in zip(cues, texts, strict=True)
            ),
            language=self.options.target,
            task=Task.TRANSLATE,
            cued=True,
        )


def _one(speakers: tuple[str, ...]) -> str | None:
    """A translated cue's speaker: the source cue's, when it has one voice."""
    return speakers[0] if len(set(speakers)) == 1 else None
