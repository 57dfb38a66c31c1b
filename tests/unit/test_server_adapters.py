"""The drop-in endpoints' pure parts: which model a client's `model` runs, what `/v1/models` lists,
and the WAV that raw PCM (`encode=false`) is stored as."""

from __future__ import annotations

import io
import wave

import pytest

from whisperbatch.catalog import ModelOverride
from whisperbatch.config import Settings
from whisperbatch.server.asr_api import wav_header
from whisperbatch.server.openai_api import job_model, listed_models, served_model


@pytest.fixture(autouse=True)
def today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPERBATCH_TODAY", "2026-11-23")


def test_whisper_1_and_unknown_names_mean_the_server_model_with_the_api_engine() -> None:
    api = Settings(engine="openai", api_key="k", model="gpt-4o-transcribe")
    assert served_model(api) == "gpt-4o-transcribe"
    assert job_model(api, "whisper-1") is None
    assert job_model(api, "large-v3") is None
    assert job_model(api, None) is None and job_model(api, "gpt-4o-transcribe") is None
    assert job_model(api, "gpt-transcribe") == "gpt-transcribe"  # in the catalog: honoured
    assert job_model(api, "gpt-5.4-mini") is None  # a chat model never transcribes


def test_a_configured_model_is_honoured_and_listed() -> None:
    api = Settings(
        engine="openai", base_url="http://x/v1", models={"Systran/faster-whisper-small": ModelOverride()}
    )
    assert served_model(api) == "whisper-1"  # the API's model of the day
    assert job_model(api, "Systran/faster-whisper-small") == "Systran/faster-whisper-small"
    listed = listed_models(api)
    assert listed[0] == "whisper-1" and "Systran/faster-whisper-small" in listed


def test_the_local_engine_runs_only_its_own_model() -> None:
    local = Settings(engine="local", local_model="base")
    assert served_model(local) == "base"
    assert job_model(local, "gpt-transcribe") is None and job_model(local, "tiny") is None
    assert listed_models(local) == ["base", "whisper-1"]


def test_raw_pcm_becomes_a_16_khz_mono_wav() -> None:
    pcm = bytes(range(256)) * 125  # 32000 bytes: one second
    with wave.open(io.BytesIO(wav_header(len(pcm)) + pcm)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (16000, 1, 2, 16000)
        assert w.readframes(16000) == pcm
