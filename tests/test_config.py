"""Settings precedence: flags > environment (and .env) > config.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisperbatch.config import load_settings
from whisperbatch.engines.base import model_info
from whisperbatch.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[run]\nmodel = "from-file"\nconcurrency = 2\nformat = "vtt"\n[audio]\nchunk_target_s = 300\n'
    )
    (tmp_path / ".env").write_text("WHISPERBATCH_CONCURRENCY=3\nOPENAI_API_KEY=sk-from-dotenv\n")
    env = {"WHISPERBATCH_MODEL": "from-env"}
    s = load_settings({"format": "json"}, env=env, cwd=tmp_path)
    assert (s.model, s.concurrency, s.format, s.chunk_target_s) == ("from-env", 3, "json", 300.0)
    assert s.api_key == "sk-from-dotenv" and s.has_api_config
    s2 = load_settings({"concurrency": 7}, env={"WHISPERBATCH_CONCURRENCY": "5"}, cwd=tmp_path)
    assert s2.concurrency == 7
    assert "sk-from-dotenv" not in repr(s)


def test_config_file_from_env_and_model_table(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('[models."Systran/faster-whisper-small"]\nusd_per_min = 0.001\ntimestamps = true\n')
    s = load_settings(env={"WHISPERBATCH_CONFIG": str(cfg)}, cwd=tmp_path)
    info = model_info("Systran/faster-whisper-small", s.models)
    assert info.usd_per_min == 0.001 and info.price_known and info.timestamps
    unknown = model_info("my-whisper", s.models)
    assert unknown.usd_per_min == 0.0 and not unknown.price_known
    assert model_info("gpt-4o-transcribe").timestamps is False


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"engine": "cloud"}, {}, "engine 'cloud'"),
        ({}, {"WHISPERBATCH_CONCURRENCY": "many"}, "WHISPERBATCH_CONCURRENCY"),
        ({"concurrency": 0}, {}, "concurrency"),
        ({}, {"WHISPERBATCH_CONFIG": "/nonexistent.toml"}, "config file not found"),
    ],
)
def test_bad_settings_name_the_cause(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env=env, cwd=tmp_path)
