"""Settings and the one place that decides their precedence.

flags > `WHISPERBATCH_*` / `OPENAI_*` environment (and a `.env` file) > config.toml > defaults.
Every setting is a field of `Settings`; its environment name is `WHISPERBATCH_<FIELD>` and its
config-file key is the field name in any section, so adding a setting is adding a field. A renamed
setting keeps its old names working through `_ENV_ALIASES` and `_KEY_ALIASES`.
The API key is kept out of `repr()` so it cannot leak into a log or a traceback by accident.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from dotenv import dotenv_values

from .catalog import ModelOverride
from .cues import CueStyle
from .errors import ConfigError, keep_secret
from .languages import language_code
from .writers import parse_formats

APP = "whisperbatch"
ENGINES = ("auto", "openai", "local")
# Sections are for people reading config.toml; keys are flat, so a key may sit in any section.
SECTIONS = ("run", "openai", "translate", "local", "audio", "subtitles", "service")


_MODEL_HINTS = typing.get_type_hints(ModelOverride)

# The local engine decodes one chunk at a time: more files at once only hold more jobs claimed (which
# other workers on a shared queue could have taken) without finishing any sooner (3 files of 3 minutes
# on 2 cores: 33-36 s at -j 1, 2 and 4 alike). Two let one file's translation requests to a chat model
# overlap the next file's transcription.
LOCAL_CONCURRENCY = 2


@dataclass(frozen=True)
class Settings:
    # run
    engine: str = "auto"
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    format: str = "txt,srt"
    out_dir: Path | None = None
    # Requests (API) or files (local engine) at once. 8 keeps a tier-1 OpenAI key (500 requests a
    # minute for whisper-1) under its limit with answers as quick as 1 s; `bench/speed.py` measures
    # what each step up gains. Left unset with the local engine it is LOCAL_CONCURRENCY.
    concurrency: int = 8
    budget_usd: float | None = None
    condition_on_previous: bool = False
    # openai
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # A transcription request waits `timeout_min_s` plus `timeout_per_audio_s` for each second of audio
    # it carries, and never more than `timeout_s` (the limit for every other request too): a server
    # that took a 40-s chunk and never answers is given up on after some seconds, not minutes.
    timeout_s: float = 300.0
    timeout_min_s: float = 30.0
    timeout_per_audio_s: float = 1.0
    wait_notice_s: float = 30.0  # an unanswered request says so this long after, and as its wait doubles
    max_attempts: int = 6
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    max_upload_bytes: int = 26_214_400
    keywords: str | None = None  # comma-separated terms for models that take `keywords` (gpt-transcribe)
    # translate: a chat model on any OpenAI-compatible server (by default the transcription server and key)
    translate_to: str = "en"
    translate_model: str = "gpt-5.4-mini"
    translate_base_url: str | None = None
    translate_api_key: str | None = field(default=None, repr=False)
    translate_batch_size: int = 20  # subtitle cues per request
    translate_context: int = 3  # neighbouring cues sent either side, not translated
    # local
    local_model: str = "base"
    local_device: str = "auto"  # CUDA where a GPU is present, else the CPU
    local_compute_type: str = "auto"  # float16 on CUDA, int8 on the CPU
    local_threads: int = 0
    local_batch_size: int = 8  # speech windows decoded side by side; 1: one after another
    beam_size: int = 5
    # audio
    chunk_target_s: float = 600.0
    # Without carried context a server is asked for a recording's chunks side by side (up to
    # `concurrency`): shorter chunks then finish together instead of waiting on the longest one.
    parallel_chunk_s: float = 40.0
    utterance_max_s: float = 30.0
    min_silence_s: float = 0.5
    skip_silence_s: float = 5.0
    silence_threshold_dbfs: float | None = None
    vad_threshold: float = 0.5
    word_timestamps: bool = True
    # subtitles (names as in the whisper CLI)
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: int | None = None
    max_cue_s: float = 7.0
    max_chars_per_s: float = 20.0
    # service
    settle_s: float = 2.0
    rescan_s: float = 60.0
    lease_s: float = 30.0
    job_max_attempts: int = 3
    pause_s: float = 300.0
    shutdown_grace_s: float = 5.0
    # where state and caches live: `database` is a postgresql:// URL or an SQLite file (default: in home)
    database: str | None = field(default=None, repr=False)
    home: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)))
    cache_dir: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP)))
    models: Mapping[str, ModelOverride] = field(default_factory=dict)

    @property
    def has_api_config(self) -> bool:
        return bool(self.api_key or self.base_url)

    @property
    def engine_name(self) -> str:
        """`auto` means the API when a key or base URL is configured, else the offline engine."""
        if self.engine != "auto":
            return self.engine
        return "openai" if self.has_api_config else "local"

    @property
    def has_chat_config(self) -> bool:
        """Whether a chat model can be reached: its own server or key, or the transcription server's."""
        return bool(self.translate_base_url or self.translate_api_key or self.has_api_config)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no output may show: the API keys, and a database URL's password (with the URL)."""
        found = [self.api_key, self.translate_api_key]
        if self.database and (password := urlsplit(self.database).password):
            found += [self.database, password]
        return tuple(s for s in found if s)

    @property
    def keyword_list(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in (self.keywords or "").split(",") if k.strip())

    @property
    def ledger_path(self) -> Path:
        """The SQLite file, when the store is SQLite (`database` a path or sqlite:///path, or unset)."""
        if self.database:
            return Path(self.database.removeprefix("sqlite://")).expanduser()
        return self.home / "whisperbatch.sqlite3"

    @property
    def cue_style(self) -> CueStyle:
        return CueStyle(
            max_line_width=self.max_line_width,
            max_line_count=self.max_line_count,
            max_words_per_line=self.max_words_per_line,
            max_cue_s=self.max_cue_s,
            max_chars_per_s=self.max_chars_per_s,
        )


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "models"}
_HINTS = typing.get_type_hints(Settings)
# Environment names that are not simply WHISPERBATCH_<FIELD>.
_ENV_ALIASES = {
    "api_key": ("WHISPERBATCH_API_KEY", "OPENAI_API_KEY"),
    "base_url": ("WHISPERBATCH_BASE_URL", "OPENAI_BASE_URL"),
    "budget_usd": ("WHISPERBATCH_BUDGET_USD", "WHISPERBATCH_BUDGET"),
    "database": ("WHISPERBATCH_DATABASE_URL", "WHISPERBATCH_DATABASE"),
    "translate_api_key": ("WHISPERBATCH_TRANSLATE_API_KEY",),
    "max_line_width": ("WHISPERBATCH_MAX_LINE_WIDTH", "WHISPERBATCH_MAX_LINE_CHARS"),
    "max_line_count": ("WHISPERBATCH_MAX_LINE_COUNT", "WHISPERBATCH_MAX_LINES"),
}
# Config-file keys of renamed settings -> their current name (which wins when a file has both).
_KEY_ALIASES = {"max_line_chars": "max_line_width", "max_lines": "max_line_count"}


def _convert(name: str, raw: Any, source: str, hint: Any = None) -> Any:
    """Coerce a config or environment value to the field's type (`hint`, else the setting's), or say
    which setting is wrong."""
    hint = hint or _HINTS[name]
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if optional and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none"))):
        return None
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if base is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)  # concurrency = 2.7 is a mistake, not 2
            return int(raw)
        if base is float:
            if isinstance(raw, bool):
                raise ValueError(raw)  # true is not a price
            return float(raw)
        if base is Path:
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError) as e:
        kind = {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(base.__name__)
        raise ConfigError(f"{name} = {raw!r} (from {source}): must be {kind or base.__name__}") from e


def find_config_file(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """`--config`, then `$WHISPERBATCH_CONFIG`, then ./config.toml, then the user config dir."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return explicit
    if env.get("WHISPERBATCH_CONFIG"):
        path = Path(env["WHISPERBATCH_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from WHISPERBATCH_CONFIG)")
        return path
    for candidate in (cwd / "config.toml", Path(platformdirs.user_config_dir(APP)) / "config.toml"):
        if candidate.is_file():
            return candidate
    return None


def _read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, ModelOverride]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from e
    values: dict[str, Any] = {}
    models: dict[str, ModelOverride] = {}
    for key, value in data.items():
        if key == "models" and isinstance(value, dict):
            models = {name: _model_override(path, name, spec) for name, spec in value.items()}
        elif key in SECTIONS and isinstance(value, dict):
            values.update(value)
        else:
            values[key] = value
    for old, new in _KEY_ALIASES.items():
        if old in values:
            values.setdefault(new, values.pop(old))
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {k: _convert(k, v, str(path)) for k, v in values.items()}, models


def _model_override(path: Path, name: str, spec: Any) -> ModelOverride:
    """One `[models."NAME"]` table, each value of its own type and range: a price that is not a number
    (or is negative) would otherwise surface as a crash, or a negative bill, in the middle of a run."""
    known = {f.name for f in dataclasses.fields(ModelOverride)}
    if not isinstance(spec, dict) or set(spec) - known:
        raise ConfigError(f"{path}: [models.{name!r}] takes only {', '.join(sorted(known))}")
    spec = dict(spec)
    if "response_formats" in spec:
        spec = {**spec, "response_formats": tuple(spec["response_formats"])}
    retires = spec.get("retires")
    if retires is not None and retires is not False and not isinstance(retires, date):
        raise ConfigError(f"{path}: [models.{name!r}] retires must be a date (2027-02-26) or false")
    source = f'{path} [models."{name}"]'
    for key, value in spec.items():
        if key in ("retires", "response_formats"):
            continue
        spec[key] = _convert(key, value, source, _MODEL_HINTS[key])
        allowed = MODEL_RANGES.get(key)
        if allowed is not None and spec[key] is not None and not allowed.admits(spec[key]):
            raise ConfigError(f"{key} = {value!r} (from {source}): must be {allowed}")
    return ModelOverride(**spec)


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings found in the environment, and the variable each came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in _FIELDS:
        for var in _ENV_ALIASES.get(name, (f"WHISPERBATCH_{name.upper()}",)):
            if var in env and env[var] != "":
                values[name] = _convert(name, env[var], var)
                sources[name] = var
                break
    return values, sources


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults, config file, `.env`, environment and flags (later wins) and validate.

    `flag_names` maps a setting to the option that set it (`budget_usd` -> `--budget`), for messages.
    """
    cwd = cwd or Path.cwd()
    environ: dict[str, str] = dict(os.environ if env is None else env)
    dotenv_file = cwd / ".env"
    if dotenv_file.is_file():
        # The real environment wins over .env, as with docker compose and python-dotenv's default.
        dot = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
        environ = {**dot, **environ}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    models: dict[str, ModelOverride] = {}
    path = find_config_file(config_path, environ, cwd)
    if path is not None:
        values, models = _read_config_file(path)
        sources = dict.fromkeys(values, str(path))
    from_env, env_names = _from_env(environ)
    values.update(from_env)
    sources.update(env_names)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    values.update(given)
    sources.update({k: (flag_names or {}).get(k, "--" + k.replace("_", "-")) for k in given})
    if values.get("language") is not None:
        values["language"] = _language(values["language"], sources["language"], "language")
    if values.get("translate_to") is not None:
        target = _language(values["translate_to"], sources["translate_to"], "translate_to")
        if target is None:
            raise ConfigError(f"translate_to (from {sources['translate_to']}): needs a language, such as de")
        values["translate_to"] = target
    settings = Settings(**values, models=models)
    keep_secret(*settings.secrets)
    if "concurrency" not in values and settings.engine_name == "local":
        settings = dataclasses.replace(settings, concurrency=LOCAL_CONCURRENCY)
    _validate(settings, sources)
    return settings


def _language(value: str, source: str, name: str) -> str | None:
    """A language code or name as Whisper knows it, as its code; "auto" (or empty) detects it."""
    if value.strip().lower() in ("", "auto"):
        return None
    code = language_code(value)
    if code is None:
        raise ConfigError(
            f"{name} = {value!r} (from {source}): not a language Whisper knows; "
            "give a code such as en, de, fr, zh or a name such as German"
        )
    return code


@dataclass(frozen=True)
class Allowed:
    """The values a numeric setting may take: `low`/`high` bounds (inclusive unless `open_low`)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def admits(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def __str__(self) -> str:
        low = None if self.low is None else f"{'more than' if self.open_low else 'at least'} {self.low:g}"
        high = None if self.high is None else f"{'less than' if self.open_high else 'at most'} {self.high:g}"
        return " and ".join(x for x in (low, high) if x) or "a finite number"


# Every numeric setting and what it may be; `_validate` checks each before anything runs.
RANGES: dict[str, Allowed] = {
    "concurrency": Allowed(1, 256),
    "budget_usd": Allowed(0),
    "timeout_s": Allowed(0, open_low=True),
    "timeout_min_s": Allowed(0, open_low=True),
    "timeout_per_audio_s": Allowed(0),
    "wait_notice_s": Allowed(0, open_low=True),
    "max_attempts": Allowed(1),
    "retry_base_s": Allowed(0),
    "retry_max_s": Allowed(0),
    "max_upload_bytes": Allowed(128 * 1024),
    "translate_batch_size": Allowed(1, 500),
    "translate_context": Allowed(0, 50),
    "local_threads": Allowed(0),
    "local_batch_size": Allowed(1, 64),
    "beam_size": Allowed(1, 64),
    "chunk_target_s": Allowed(10),
    "parallel_chunk_s": Allowed(10),
    "utterance_max_s": Allowed(2),
    "min_silence_s": Allowed(0.1, 10),
    "skip_silence_s": Allowed(0.5),
    "silence_threshold_dbfs": Allowed(-120, 0),
    "vad_threshold": Allowed(0, 1, open_low=True, open_high=True),
    "max_line_width": Allowed(5),
    "max_line_count": Allowed(1),
    "max_words_per_line": Allowed(1),
    "max_cue_s": Allowed(1),
    "max_chars_per_s": Allowed(0, open_low=True),
    "settle_s": Allowed(0),
    "rescan_s": Allowed(0.1),
    "lease_s": Allowed(1),
    "job_max_attempts": Allowed(1),
    "pause_s": Allowed(0),
    "shutdown_grace_s": Allowed(0),
}
LOCAL_DEVICES = ("auto", "cpu", "cuda")
# What the numbers of a `[models."NAME"]` table may be: prices are never negative.
MODEL_RANGES: dict[str, Allowed] = {
    "usd_per_min": Allowed(0),
    "max_duration_s": Allowed(0, open_low=True),
    "usd_per_m_audio_tokens": Allowed(0),
    "usd_per_m_text_tokens": Allowed(0),
    "usd_per_m_output_tokens": Allowed(0),
    "usd_per_m_input": Allowed(0),
    "usd_per_m_output": Allowed(0),
}


def _validate(s: Settings, sources: Mapping[str, str]) -> None:
    """Every setting against what it may be; the first violation is one line naming its source."""

    def bad(name: str, allowed: str) -> ConfigError:
        value = getattr(s, name)
        return ConfigError(f"{name} = {value!r} (from {sources.get(name, 'the default')}): must be {allowed}")

    if s.engine not in ENGINES:
        raise bad("engine", f"one of {', '.join(ENGINES)}")
    if s.local_device not in LOCAL_DEVICES:
        raise bad("local_device", f"one of {', '.join(LOCAL_DEVICES)}")
    for name, allowed in RANGES.items():
        value = getattr(s, name)
        if value is not None and not allowed.admits(value):
            raise bad(name, str(allowed))
    try:
        parse_formats(s.format)
    except ConfigError as e:
        raise ConfigError(f"format = {s.format!r} (from {sources.get('format', 'the default')}): {e}") from e
