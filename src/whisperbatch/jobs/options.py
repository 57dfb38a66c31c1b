"""A job's options: what it is run with, kept in the store so any worker runs it as it was asked for.

Each option is the setting of the same name (`SETTINGS_FIELDS`): configuration copies it from the
settings when the job is made and lays it over the running host's settings when it runs, making the
job's `JobSetup`; only the engine and model come from the engine chosen, and the translation options
are kept only when the job translates (`TRANSLATION_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engines import EngineOptions
from ..models import Task
from ..pipeline import StageOptions
from ..translate import TranslationOptions

# Kept only when the job translates: a job that does not runs with the host's own.
TRANSLATION_FIELDS = ("translate_to", "translate_model")


@dataclass(frozen=True)
class JobOptions:
    """What a job is run with. Every field but `engine` and `model` is the setting of that name."""

    engine: str
    model: str
    language: str | None = None
    prompt: str | None = None
    format: str = "txt,srt"
    out_dir: str | None = None  # absolute, as text (JSON)
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: int | None = None
    translate_to: str | None = None  # a chat model translates the transcript into this language
    translate_model: str | None = None
    diarize: bool = False  # speaker labels, made after the transcript (not part of the job key)
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOptions | None:
        """None for jobs made before options were kept (they run with the run's own options)."""
        return cls(**data) if data else None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    def key(self, sha256: str, task: Task) -> str:
        """The job key: content plus whatever changes the transcript (not the output format)."""
        identity = json.dumps(
            [str(task), self.engine, self.model, self.language, self.prompt], separators=(",", ":")
        )
        return hashlib.sha256(f"{sha256}|{identity}".encode()).hexdigest()


# The options that are settings of the same name: all of them but the engine's name and its model.
SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(JobOptions) if f.name not in ("engine", "model"))


@dataclass(frozen=True)
class JobSetup:
    """What a job's options make on this host (configuration builds it): each stage's options, the
    engine's, and the chat model's when the job translates."""

    options: JobOptions
    stages: StageOptions
    engine: EngineOptions
    translation: TranslationOptions | None  # None: no chat model translates
