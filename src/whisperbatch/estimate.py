"""A forecast of what transcribing (and translating) recordings would bill, before anything is sent.

Minutes come from the same cuts a run makes (speech detection, silences skipped) or, for a quick upper
bound, from each recording's whole duration; prices come from the same tables a run bills with, so an
estimate and the run after it cannot disagree about a price. Measuring a recording is passed in, so the
arithmetic is tested without audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from . import audio, cost
from .catalog import ChatModelInfo, ModelInfo, default_api_model, model_info
from .engines import EngineOptions
from .errors import WhisperbatchError
from .models import Usage
from .pipeline import CutOptions, chunk_params, upload_forecast_s
from .translate import TranslationOptions

# A recording's whole duration and the seconds a run would upload of it.
Measure = Callable[[Path], tuple[float, float]]


@dataclass(frozen=True)
class Pricing:
    """What an estimate prices with: the transcription model (for the local engine, the API model it
    stands in for) and the chat model that translates, when the estimate includes a translation."""

    model: ModelInfo
    chat: ChatModelInfo | None
    translate_to: str | None  # None: not translated
    local: bool


@dataclass(frozen=True)
class Forecast:
    """Billed minutes and dollars for some seconds of audio; an amount is None when its price is not
    known, and so is the sum with it."""

    duration_s: float
    billed_min: float
    transcribe_usd: float | None
    translation_tokens: Usage | None  # None: not translated
    translate_usd: float | None
    usd: float | None


@dataclass(frozen=True)
class FileForecast:
    """One recording's forecast."""

    path: Path
    forecast: Forecast


@dataclass(frozen=True)
class Estimate:
    """Each recording that could be read, the total, and the errors of those that could not."""

    pricing: Pricing
    files: tuple[FileForecast, ...]
    total: Forecast
    errors: tuple[WhisperbatchError, ...]


def pricing(engine: EngineOptions, translation: TranslationOptions | None, today: date) -> Pricing:
    """`--model` names the API model to price, key or no key; a local model is priced as the API
    default. Translating into English with the local engine needs no chat model, so costs nothing.
    `translation` is None when the estimate leaves translation out."""
    local = engine.kind == "local"
    info = model_info(engine.model or default_api_model(today), engine.overrides)
    if local and not info.price_known:
        info = model_info(default_api_model(today), engine.overrides)
    chat = None
    if translation is not None and not (local and translation.to == "en"):
        chat = translation.model
    return Pricing(info, chat, None if translation is None else translation.to, local)


def forecast(prices: Pricing, duration_s: float, billed_s: float) -> Forecast:
    minutes = billed_s / 60
    info, chat = prices.model, prices.chat
    transcribing = minutes * info.usd_per_min if info.price_known else None
    if chat is None:
        return Forecast(duration_s, minutes, transcribing, None, None, transcribing)
    tokens = cost.translation_forecast(minutes)
    translating = chat.usd(tokens)
    total = None if translating is None or transcribing is None else transcribing + translating
    return Forecast(duration_s, minutes, transcribing, tokens, translating, total)


def measure_files(cut: CutOptions, info: ModelInfo, *, ffmpeg: str, quick: bool) -> Measure:
    """Duration from the file's header; seconds uploaded by the run's own decoding, speech detection and
    cuts for `info`'s model, or (`quick`) every second, an upper bound."""
    params = chunk_params(cut, info, max_bytes=None)

    def measure(path: Path) -> tuple[float, float]:
        duration_s = audio.probe(path, ffmpeg).duration_s
        return duration_s, duration_s if quick else upload_forecast_s(path, params, ffmpeg=ffmpeg)

    return measure


def estimate(files: Sequence[Path], prices: Pricing, measure: Measure) -> Estimate:
    """Forecast each file and the total (priced on the summed seconds, as a run of them all is)."""
    rows: list[FileForecast] = []
    errors: list[WhisperbatchError] = []
    total_s = total_billed_s = 0.0
    for path in files:
        try:
            duration_s, billed_s = measure(path)
        except WhisperbatchError as e:
            errors.append(e)
            continue
        total_s += duration_s
        total_billed_s += billed_s
        rows.append(FileForecast(path, forecast(prices, duration_s, billed_s)))
    return Estimate(prices, tuple(rows), forecast(prices, total_s, total_billed_s), tuple(errors))
