"""Settings precedence: flags > environment (and .env) > config.toml > defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from whisperbatch import cli
from whisperbatch.catalog import model_info
from whisperbatch.cli import wiring
from whisperbatch.cli.options import Options
from whisperbatch.config import load_settings
from whisperbatch.cues import CueStyle
from whisperbatch.errors import ConfigError
from whisperbatch.translate import translation_target


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


def test_concurrency_defaults_to_the_engines_own(tmp_path: Path) -> None:
    """Requests side by side pay on the API; the local engine decodes one chunk at a time, so it
    claims only the file it works on and the next one. Whatever the user sets wins on both."""
    assert load_settings(env={}, cwd=tmp_path).concurrency == 2
    assert load_settings(env={"OPENAI_API_KEY": "sk-x"}, cwd=tmp_path).concurrency == 8
    assert (
        load_settings(
            env={"WHISPERBATCH_ENGINE": "openai", "OPENAI_BASE_URL": "http://h"}, cwd=tmp_path
        ).concurrency
        == 8
    )
    assert load_settings({"engine": "local"}, env={"OPENAI_API_KEY": "sk-x"}, cwd=tmp_path).concurrency == 2
    assert load_settings({"concurrency": 5}, env={}, cwd=tmp_path).concurrency == 5
    assert (
        load_settings(
            env={"WHISPERBATCH_CONCURRENCY": "1", "OPENAI_API_KEY": "sk-x"}, cwd=tmp_path
        ).concurrency
        == 1
    )


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
        (
            {"engine": "cloud"},
            {},
            r"^engine = 'cloud' \(from --engine\): must be one of auto, openai, local$",
        ),
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


def test_subtitle_settings_and_their_old_names(tmp_path: Path) -> None:
    s = load_settings(env={}, cwd=tmp_path)
    assert (s.max_line_width, s.max_line_count, s.max_words_per_line) == (42, 2, None)
    assert (s.max_cue_s, s.max_chars_per_s) == (7.0, 20.0)
    assert s.cue_style == CueStyle()
    # Old config-file keys and environment names still work; the current names win over them.
    (tmp_path / "config.toml").write_text("[subtitles]\nmax_line_chars = 30\nmax_lines = 3\n")
    s = load_settings(env={}, cwd=tmp_path)
    assert (s.max_line_width, s.max_line_count) == (30, 3)
    (tmp_path / "config.toml").write_text("[subtitles]\nmax_line_width = 35\nmax_line_chars = 30\n")
    assert load_settings(env={}, cwd=tmp_path).max_line_width == 35
    env = {"WHISPERBATCH_MAX_LINE_CHARS": "40", "WHISPERBATCH_MAX_LINES": "1"}
    s = load_settings(env=env, cwd=tmp_path)
    assert (s.max_line_width, s.max_line_count) == (40, 1)
    s = load_settings(env={**env, "WHISPERBATCH_MAX_LINE_WIDTH": "50"}, cwd=tmp_path)
    assert s.max_line_width == 50
    env = {
        "WHISPERBATCH_MAX_WORDS_PER_LINE": "5",
        "WHISPERBATCH_MAX_CUE_S": "6",
        "WHISPERBATCH_MAX_CHARS_PER_S": "17",
    }
    s = load_settings({"max_line_count": 1}, env=env, cwd=tmp_path)
    assert s.cue_style == CueStyle(35, 1, max_words_per_line=5, max_cue_s=6.0, max_chars_per_s=17.0)
    assert load_settings(env={"WHISPERBATCH_MAX_WORDS_PER_LINE": ""}, cwd=tmp_path).max_words_per_line is None


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"max_line_width": 4}, {}, r"^max_line_width = 4 \(from --max-line-width\): must be at least 5$"),
        ({}, {"WHISPERBATCH_MAX_LINE_CHARS": "3"}, "max_line_width"),
        ({"max_line_count": 0}, {}, "max_line_count"),
        ({"max_words_per_line": 0}, {}, "max_words_per_line"),
        ({"max_cue_s": 0.5}, {}, "max_cue_s"),
        ({}, {"WHISPERBATCH_MAX_CHARS_PER_S": "0"}, "max_chars_per_s"),
        ({}, {"WHISPERBATCH_MAX_CHARS_PER_S": "nan"}, "max_chars_per_s"),
        ({}, {"WHISPERBATCH_MAX_CUE_S": "inf"}, "max_cue_s"),
        ({}, {"WHISPERBATCH_MAX_LINES": "two"}, "WHISPERBATCH_MAX_LINES"),
    ],
)
def test_bad_subtitle_settings(
    tmp_path: Path, flags: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env=env, cwd=tmp_path)


def test_subtitle_options_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def prepare(out: object, options: Options, task: object) -> None:
        seen.append(options.flags)
        raise typer.Exit(0)

    monkeypatch.setattr(wiring, "prepare", prepare)
    options = ["--max-line-width", "30", "--max-line-count", "1", "--max-words-per-line", "4"]
    commands = (
        ["transcribe", "a.m4a"],
        ["translate", "a.m4a"],
        ["watch", str(tmp_path)],
        ["enqueue", "a.m4a"],
    )
    for command in commands:
        result = CliRunner().invoke(cli.app, [*command, *options])
        assert result.exit_code == 0, result.output
    assert len(seen) == 4
    for flags in seen:
        assert (flags["max_line_width"], flags["max_line_count"], flags["max_words_per_line"]) == (30, 1, 4)


def test_each_stage_gets_its_own_options_record(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-x", "WHISPERBATCH_KEYWORDS": "Kubernetes, gRPC,"}
    env["WHISPERBATCH_HOME"] = str(tmp_path)
    s = load_settings({"translate_to": "de", "max_attempts": 4}, env=env, cwd=tmp_path)
    engine = s.engine_options()
    assert (engine.kind, engine.keywords, engine.api_key) == ("openai", ("Kubernetes", "gRPC"), "sk-x")
    chat = s.translation_options()
    assert (chat.to, chat.model.name, chat.api_key, chat.reachable) == ("de", "gpt-5.4-mini", "sk-x", True)
    assert "sk-x" not in repr(engine) + repr(chat)
    assert translation_target(chat, "openai") == "de"
    assert s.store_options().sqlite_path == tmp_path / "whisperbatch.sqlite3"
    assert (s.retry_policy().max_attempts, s.retry_policy(job_max_attempts=1).job_max_attempts) == (4, 1)
    on_file = load_settings({"database": "sqlite:///x/jobs.db"}, env={}, cwd=tmp_path).store_options()
    assert on_file.sqlite_path == Path("/x/jobs.db")
    offline = load_settings({"translate_to": "de"}, env={}, cwd=tmp_path).translation_options()
    assert not offline.reachable
    with pytest.raises(ConfigError, match="needs a chat model"):
        translation_target(offline, "local")
    assert translation_target(dataclasses.replace(offline, to="en"), "local") is None
