"""The engine protocol and the one table of model capabilities and prices.

Capabilities live in data, not in `if model == ...` branches, because the model line-up changes
(whisper-1 and the translations endpoint are announced for shutdown in February 2027) and users of
OpenAI-compatible servers bring their own model names: `[models."NAME"]` in config.toml extends it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..config import ModelOverride
from ..models import Chunk, EngineResult, Task

WHISPER_1_USD_PER_MIN = 0.006


@dataclass(frozen=True)
class ModelInfo:
    name: str
    usd_per_min: float
    timestamps: bool  # returns segment times (verbose_json)
    translate: bool  # usable on the translations endpoint / task=translate
    max_duration_s: float  # longest audio one request takes
    response_formats: tuple[str, ...] = ("json",)
    prompt_max_tokens: int = 224
    languages_param: bool = False  # takes `languages[]` instead of `language`
    price_known: bool = True


_ALL_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("whisper-1", WHISPER_1_USD_PER_MIN, True, True, 3000.0, _ALL_FORMATS),
        ModelInfo("gpt-4o-transcribe", 0.006, False, False, 1500.0, ("json", "text")),
        ModelInfo("gpt-4o-mini-transcribe", 0.003, False, False, 1500.0, ("json", "text")),
        ModelInfo("gpt-transcribe", 0.0045, False, False, 1500.0, ("json",), languages_param=True),
    )
}


def model_info(name: str, overrides: Mapping[str, ModelOverride] | None = None) -> ModelInfo:
    """Built-in facts for `name`, with config overrides applied; unknown names act like whisper-1.

    OpenAI-compatible servers (speaches, faster-whisper-server, Groq, vLLM) serve Whisper under their
    own names with verbose_json, so whisper-1's behaviour is the useful guess; the price is unknown
    and reported as such instead of invented.
    """
    base = MODELS.get(name) or dataclasses.replace(
        MODELS["whisper-1"], name=name, usd_per_min=0.0, price_known=False
    )
    o = (overrides or {}).get(name)
    if o is None:
        return base
    changes = {k: v for k, v in dataclasses.asdict(o).items() if v is not None}
    if "usd_per_min" in changes:
        changes["price_known"] = True
    return dataclasses.replace(base, **changes)


class Engine(Protocol):
    """One way of turning a chunk file into text. Implementations must be safe to call from threads."""

    name: str  # "openai" or "local"
    model: str
    info: ModelInfo
    chunk_suffix: str  # the file type chunks are exported as for this engine
    max_upload_bytes: int | None

    def transcribe(
        self,
        chunk: Chunk,
        *,
        task: Task,
        language: str | None,
        prompt: str | None,
        condition_on_previous_text: bool = False,
    ) -> EngineResult:
        """Text and segments for one chunk, times relative to the chunk. Raises EngineError subclasses.

        `condition_on_previous_text` lets an engine that decodes a chunk window by window feed each
        window its own earlier text (faster-whisper's option of that name); a server decides that itself.
        """
        ...

    def close(self) -> None: ...
