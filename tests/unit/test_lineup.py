"""The model table on either side of 2027-02-26, and config overrides of it."""

from __future__ import annotations

from datetime import date

import pytest

from whisperbatch.catalog import LINEUP_CHANGE, ModelOverride, default_api_model, lineup_notice, model_info
from whisperbatch.errors import ConfigError


def test_the_table_and_its_overrides() -> None:
    assert default_api_model(date(2027, 2, 25)) == "whisper-1"
    assert default_api_model(LINEUP_CHANGE) == "gpt-transcribe"
    gpt = model_info("gpt-transcribe")
    assert gpt.languages_param and not gpt.timestamps and gpt.response_formats == ("json",)
    assert lineup_notice(gpt, date(2030, 1, 1)) is None
    for name in ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"):
        with pytest.raises(ConfigError, match="gpt-transcribe"):
            lineup_notice(model_info(name), LINEUP_CHANGE)
    # A compatible server that keeps serving whisper-1: `[models."whisper-1"] retires = false`.
    kept = model_info("whisper-1", {"whisper-1": ModelOverride(retires=False)})
    assert lineup_notice(kept, date(2030, 1, 1)) is None
    # Other servers' own model names carry no date.
    assert model_info("Systran/faster-whisper-small").retires is None
