"""The estimate's arithmetic, with recordings measured by a stub: no audio, no ffmpeg."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from whisperbatch.catalog import ChatModelInfo, ModelInfo, default_api_model
from whisperbatch.config import Settings, load_settings
from whisperbatch.errors import DecodeError
from whisperbatch.estimate import Pricing, estimate, forecast, pricing
from whisperbatch.models import Usage

MODEL = ModelInfo("m", usd_per_min=0.006, timestamps=True, translate=False, max_duration_s=1500)
UNPRICED = ModelInfo(
    "own", usd_per_min=0.0, timestamps=True, translate=False, max_duration_s=1500, price_known=False
)
CHAT = ChatModelInfo("chat", usd_per_m_input=1.0, usd_per_m_output=2.0)
TODAY = date(2026, 11, 23)


def test_a_forecast_bills_the_seconds_uploaded_not_the_duration() -> None:
    f = forecast(Pricing(MODEL, None, "en", local=False), duration_s=300.0, billed_s=120.0)
    assert (f.duration_s, f.billed_min) == (300.0, 2.0)
    assert f.transcribe_usd == pytest.approx(0.012)
    assert f.usd == f.transcribe_usd
    assert (f.translation_tokens, f.translate_usd) == (None, None)


def test_a_translation_adds_its_forecast_tokens_and_their_price() -> None:
    f = forecast(Pricing(MODEL, CHAT, "de", local=False), duration_s=60.0, billed_s=60.0)
    assert f.translation_tokens == Usage(text_tokens=525, output_tokens=273)
    assert f.translate_usd == pytest.approx((525 * 1.0 + 273 * 2.0) / 1e6)
    assert f.usd == pytest.approx(0.006 + (525 + 546) / 1e6)


def test_an_unknown_price_is_unknown_never_zero() -> None:
    f = forecast(Pricing(UNPRICED, CHAT, "de", local=False), duration_s=60.0, billed_s=60.0)
    assert f.transcribe_usd is None
    assert f.translate_usd is not None
    assert f.usd is None
    unknown_chat = ChatModelInfo("x", 0.0, 0.0, price_known=False)
    g = forecast(Pricing(MODEL, unknown_chat, "de", local=False), duration_s=60.0, billed_s=60.0)
    assert (g.translate_usd, g.usd) == (None, None)


def test_each_file_and_the_total_and_an_unreadable_file_apart() -> None:
    measured = {Path("a.m4a"): (100.0, 60.0), Path("b.m4a"): (200.0, 120.0)}

    def measure(path: Path) -> tuple[float, float]:
        if path not in measured:
            raise DecodeError(path, "not audio")
        return measured[path]

    prices = Pricing(MODEL, None, "en", local=False)
    result = estimate([Path("a.m4a"), Path("bad.txt"), Path("b.m4a")], prices, measure)
    assert [row.path for row in result.files] == [Path("a.m4a"), Path("b.m4a")]
    assert [row.forecast.billed_min for row in result.files] == [1.0, 2.0]
    assert (result.total.duration_s, result.total.billed_min) == (300.0, 3.0)
    assert result.total.usd == pytest.approx(0.018)
    assert [str(e) for e in result.errors] == ["bad.txt: not audio"]


def test_nothing_to_measure_is_a_total_of_zero() -> None:
    result = estimate([], Pricing(MODEL, None, "en", local=False), lambda path: (0.0, 0.0))
    assert (result.files, result.errors, result.total.usd) == ((), (), 0.0)


def _pricing(settings: Settings, *, translating: bool) -> Pricing:
    translation = settings.translation_options() if translating else None
    return pricing(settings.engine_options(), translation, TODAY)


def test_pricing_reads_the_settings(tmp_path: Path) -> None:
    api = _pricing(
        load_settings({"engine": "openai", "model": "whisper-1"}, env={}, cwd=tmp_path),
        translating=True,
    )
    assert (api.model.name, api.chat and api.chat.name, api.local) == ("whisper-1", "gpt-5.4-mini", False)
    assert _pricing(load_settings({}, env={}, cwd=tmp_path), translating=False).chat is None
    # The local engine is priced as the API default; into English it translates itself, at no cost.
    local = load_settings({"engine": "local", "model": "base"}, env={}, cwd=tmp_path)
    into_english = _pricing(local, translating=True)
    assert (into_english.model.name, into_english.chat, into_english.local) == (
        default_api_model(TODAY),
        None,
        True,
    )
    into_german = load_settings({"engine": "local", "translate_to": "de"}, env={}, cwd=tmp_path)
    assert _pricing(into_german, translating=True).chat is not None
