"""How the store's JSON columns hold typed values: engine answers, transcripts, translations, options,
voiceprints.

Only the store reads or writes these texts: callers hand it typed values and get typed values back, so a
column's format can change in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..models import EngineResult, Segment, Span, SpeakerTurn, Task, Transcript, Usage, Word


def _segments_to_json(segments: tuple[Segment, ...]) -> list[dict[str, object]]:
    return [asdict(s) for s in segments]


def _segments_from_json(items: list[dict[str, Any]]) -> tuple[Segment, ...]:
    return tuple(
        Segment(**{**item, "words": tuple(Word(**w) for w in item.get("words", ()))}) for item in items
    )


def result_to_json(result: EngineResult) -> str:
    return json.dumps({**asdict(result), "segments": _segments_to_json(result.segments)})


def result_from_json(text: str) -> EngineResult:
    data = json.loads(text)
    usage = data.get("usage")
    return EngineResult(
        **{
            **data,
            "segments": _segments_from_json(data["segments"]),
            "usage": None if usage is None else Usage(**usage),
        }
    )


def transcript_to_json(t: Transcript) -> str:
    return json.dumps({**asdict(t), "segments": _segments_to_json(t.segments), "task": str(t.task)})


def transcript_from_json(text: str) -> Transcript:
    data = json.loads(text)
    return Transcript(
        **{
            **data,
            "segments": _segments_from_json(data["segments"]),
            "task": Task(data["task"]),
            "gaps": tuple(Span(**g) for g in data.get("gaps", ())),
            "speakers": tuple(SpeakerTurn(**turn) for turn in data.get("speakers", ())),
        }
    )


def options_to_json(options: Mapping[str, Any]) -> str:
    return json.dumps(dict(options), separators=(",", ":"), sort_keys=True)


def options_from_json(text: str | None) -> dict[str, Any]:
    """A job's options; {} for a job made before options were kept."""
    data = json.loads(text or "{}")
    return dict(data)


def texts_to_json(texts: Sequence[str]) -> str:
    return json.dumps(list(texts))


def texts_from_json(text: str) -> list[str]:
    return [str(t) for t in json.loads(text)]


def embedding_to_json(embedding: Sequence[float]) -> str:
    """A voiceprint as a JSON list; json writes each float's repr, so it reads back bit for bit."""
    return json.dumps([float(x) for x in embedding])


def embedding_from_json(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in json.loads(text))
