"""A job's options: what it is run with, kept in the store so any worker runs it as it was asked for.

Each option is the `Settings` field of the same name (`SETTINGS_FIELDS`), copied from the settings when
the job is made and laid over the running host's settings when it runs; only the engine and model
come from the engine chosen, and the translation options are kept only when the job translates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..engines.base import Engine
from ..models import Task

_TRANSLATION = ("translate_to", "translate_model")


@dataclass(frozen=True)
class JobOptions:
    """What a job is run with. Every field but `engine` and `model` is the `Settings` field of that name."""

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

    @classmethod
    def of(cls, settings: Settings, engine: Engine, translate_to: str | None = None) -> JobOptions:
        copied = {name: getattr(settings, name) for name in SETTINGS_FIELDS if name not in _TRANSLATION}
        copied["out_dir"] = None if settings.out_dir is None else str(settings.out_dir.absolute())
        return cls(
            engine=engine.name,
            model=engine.model,
            translate_to=translate_to,
            translate_model=settings.translate_model if translate_to else None,
            **copied,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOptions | None:
        """None for jobs made before options were kept (they run with the runner's own settings)."""
        return cls(**data) if data else None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), sort_keys=True)

    def settings(self, base: Settings) -> Settings:
        """`base` (this host's key, URL, concurrency, paths) with the job's own options."""
        fields = dataclasses.asdict(self)
        fields["out_dir"] = None if self.out_dir is None else Path(self.out_dir)
        for name in _TRANSLATION:  # the host's own unless the job translates
            if fields[name] is None:
                del fields[name]
        return dataclasses.replace(base, **fields)

    def key(self, sha256: str, task: Task) -> str:
        """The job key: content plus whatever changes the transcript (not the output format)."""
        identity = json.dumps(
            [str(task), self.engine, self.model, self.language, self.prompt], separators=(",", ":")
        )
        return hashlib.sha256(f"{sha256}|{identity}".encode()).hexdigest()


# The options that are settings of the same name: all of them but the engine's name and its model.
SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(JobOptions) if f.name not in ("engine", "model"))
