"""Where settings are written and what each may be: config.toml, the environment, and their ranges.

Text from a file or a variable becomes the setting's own type here, or a ConfigError naming the
setting, its value and where it came from; `config.load_settings` decides which source wins. A
renamed setting keeps its old names working through `_ENV_ALIASES` and `_KEY_ALIASES`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import platformdirs

from .catalog import ModelOverride
from .errors import ConfigError

APP = "whisperbatch"
# Sections are for people reading config.toml; keys are flat, so a key may sit in any section.
SECTIONS = ("run", "openai", "translate", "local", "audio", "speakers", "subtitles", "service")
_MODEL_HINTS = typing.get_type_hints(ModelOverride)

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


def convert(name: str, raw: Any, source: str, hint: Any) -> Any:
    """Coerce a config or environment value to its type (`hint`, a type annotation), or say which
    setting is wrong."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if optional and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none"))):
        return None
    try:
        if typing.get_origin(base) is tuple:  # a list in config.toml; comma-separated in the environment
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(text for item in items if (text := str(item).strip()))
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


def read_config_file(path: Path, hints: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, ModelOverride]]:
    """The settings a config file gives (`hints`: each known setting's type), and its model tables."""
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
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return {k: convert(k, v, str(path), hints[k]) for k, v in values.items()}, models


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
        spec[key] = convert(key, value, source, _MODEL_HINTS[key])
        allowed = MODEL_RANGES.get(key)
        if allowed is not None and spec[key] is not None and not allowed.admits(spec[key]):
            raise ConfigError(f"{key} = {value!r} (from {source}): must be {allowed}")
    return ModelOverride(**spec)


def from_env(env: Mapping[str, str], hints: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings found in the environment (`hints`: each known setting's type), and the variable each
    came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, hint in hints.items():
        for var in _ENV_ALIASES.get(name, (f"WHISPERBATCH_{name.upper()}",)):
            if var in env and env[var] != "":
                values[name] = convert(name, env[var], var, hint)
                sources[name] = var
                break
    return values, sources


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


# Every numeric setting and what it may be; `config.load_settings` checks each before anything runs.
RANGES: dict[str, Allowed] = {
    "concurrency": Allowed(1, 256),
    "num_speakers": Allowed(1, 64),
    "min_speakers": Allowed(1, 64),
    "max_speakers": Allowed(1, 64),
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
