"""The engine protocol and the one table of model capabilities, prices and retirement dates.

Capabilities live in data, not in `if model == ...` branches, because the model line-up changes
(whisper-1, the gpt-4o transcribe models and the translations endpoint shut down on 2027-02-26) and
users of OpenAI-compatible servers bring their own model names: `[models."NAME"]` in config.toml
extends the table or corrects it (a compatible server that keeps serving whisper-1 sets
`retires = false`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from ..config import ModelOverride
from ..errors import ConfigError
from ..models import Chunk, EngineResult, Task

WHISPER_1_USD_PER_MIN = 0.006
LINEUP_CHANGE = date(2027, 2, 26)  # OpenAI's announced shutdown of whisper-1 and the gpt-4o transcribers


@dataclass(frozen=True)
class ModelInfo:
    """One transcription model. Token-billed models also carry USD per million tokens, which price
    the `usage` their answers report; `usd_per_min` is then the per-minute equivalent for forecasts."""

    name: str
    usd_per_min: float
    timestamps: bool  # returns segment times (verbose_json)
    translate: bool  # Whisper's own task=translate works (the local engine)
    max_duration_s: float  # longest audio one request takes
    response_formats: tuple[str, ...] = ("json",)
    prompt_max_tokens: int = 224
    languages_param: bool = False  # takes `languages[]` instead of `language`
    price_known: bool = True
    retires: date | None = None  # the provider shuts it down on this day
    successor: str | None = None
    usd_per_m_audio_tokens: float | None = None
    usd_per_m_text_tokens: float | None = None
    usd_per_m_output_tokens: float | None = None


_ALL_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "whisper-1",
            WHISPER_1_USD_PER_MIN,
            True,
            False,
            3000.0,
            _ALL_FORMATS,
            retires=LINEUP_CHANGE,
            successor="gpt-transcribe",
        ),
        ModelInfo(
            "gpt-4o-transcribe",
            0.006,
            False,
            False,
            1500.0,
            ("json", "text"),
            usd_per_m_audio_tokens=6.0,
            usd_per_m_text_tokens=2.5,
            usd_per_m_output_tokens=10.0,
            retires=LINEUP_CHANGE,
            successor="gpt-transcribe",
        ),
        ModelInfo(
            "gpt-4o-mini-transcribe",
            0.003,
            False,
            False,
            1500.0,
            ("json", "text"),
            usd_per_m_audio_tokens=3.0,
            usd_per_m_text_tokens=1.25,
            usd_per_m_output_tokens=5.0,
            retires=LINEUP_CHANGE,
            successor="gpt-transcribe",
        ),
        ModelInfo("gpt-transcribe", 0.0045, False, False, 1500.0, ("json",), languages_param=True),
    )
}


def current_date() -> date:
    """Today, or the day `WHISPERBATCH_TODAY` (YYYY-MM-DD) names: the clock the line-up is read by,
    settable to see how a run behaves on either side of a shutdown date."""
    value = os.environ.get("WHISPERBATCH_TODAY")
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise ConfigError(f"WHISPERBATCH_TODAY = {value!r}: must be a date such as 2027-02-26") from e


def default_api_model(today: date) -> str:
    """whisper-1 while it is served, gpt-transcribe from the day it goes."""
    return "whisper-1" if today < LINEUP_CHANGE else "gpt-transcribe"


def model_info(name: str, overrides: Mapping[str, ModelOverride] | None = None) -> ModelInfo:
    """Built-in facts for `name`, with config overrides applied; unknown names act like whisper-1.

    OpenAI-compatible servers (speaches, faster-whisper-server, Groq, vLLM) serve Whisper under their
    own names with verbose_json, so whisper-1's behaviour is the useful guess; the price is unknown
    and reported as such instead of invented, and no retirement date is assumed.
    """
    base = MODELS.get(name) or dataclasses.replace(
        MODELS["whisper-1"], name=name, usd_per_min=0.0, price_known=False, retires=None, successor=None
    )
    o = (overrides or {}).get(name)
    if o is None:
        return base
    changes = {
        k: v
        for k, v in dataclasses.asdict(o).items()
        if v is not None and k in {f.name for f in dataclasses.fields(ModelInfo)}
    }
    if "usd_per_min" in changes:
        changes["price_known"] = True
    if changes.get("retires") is False:
        changes["retires"] = None
    return dataclasses.replace(base, **changes)


def lineup_notice(info: ModelInfo, today: date) -> str | None:
    """A warning for a model that is going, or None. Raises ConfigError for one already gone, before
    any request is made: every request would fail."""
    if info.retires is None:
        return None
    successor = f"; its successor is {info.successor} (--model {info.successor})" if info.successor else ""
    if today >= info.retires:
        raise ConfigError(
            f"model {info.name} was shut down on {info.retires.isoformat()}{successor}; a compatible "
            f'server that still serves it: set [models."{info.name}"] retires = false in config.toml'
        )
    days = (info.retires - today).days
    return f"warning: model {info.name} shuts down on {info.retires.isoformat()} (in {days} days){successor}"


class Engine(Protocol):
    """One way of turning a chunk file into text. Implementations must be safe to call from threads."""

    name: str  # "openai" or "local"
    model: str
    info: ModelInfo
    chunk_suffix: str  # the file type chunks are exported as for this engine
    max_upload_bytes: int | None
    # Whether several chunks of one recording are worth asking for at once, and files worth preparing
    # while every request slot is busy (a server: yes; one local model decodes one chunk at a time on
    # this host's cores, so for it chunks only need to be long).
    parallel_chunks: bool

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
