"""Engines turn one chunk file into text and timed segments: the OpenAI API or faster-whisper in-process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ..catalog import MODELS, ModelOverride, current_date, default_api_model, lineup_notice, model_info
from ..errors import ConfigError
from ..models import Task
from .base import Engine


@dataclass(frozen=True)
class EngineOptions:
    """What building an engine needs: which engine and model, and each engine's own settings."""

    kind: str  # "openai" or "local"
    model: str | None  # None: the API's model for the day, or `local_model`
    overrides: Mapping[str, ModelOverride]  # config.toml's `[models."NAME"]` tables
    word_timestamps: bool
    # openai
    api_key: str | None = field(repr=False)
    base_url: str | None
    timeout_s: float
    timeout_min_s: float
    timeout_per_audio_s: float
    max_upload_bytes: int
    keywords: tuple[str, ...]
    # local
    local_model: str
    device: str
    compute_type: str
    threads: int
    beam_size: int
    batch_size: int
    cache_dir: Path


def select_engine(options: EngineOptions, task: Task, today: date | None = None) -> Engine:
    """Build the engine a run will use, refusing combinations that cannot work before any upload:
    a model already shut down is refused here, before a single request."""
    if options.kind == "openai":
        from .openai import OpenAIEngine, RequestTimeout

        if not (options.api_key or options.base_url):
            raise ConfigError(
                "engine openai needs an API key: set OPENAI_API_KEY (or base_url for a local server)"
            )
        if task is Task.TRANSLATE:
            raise ConfigError("the API path transcribes, then a chat model translates (translate_model)")
        info = model_info(options.model or default_api_model(today or current_date()), options.overrides)
        lineup_notice(info, today or current_date())
        return OpenAIEngine(
            info,
            api_key=options.api_key,
            base_url=options.base_url,
            timeout=RequestTimeout(options.timeout_min_s, options.timeout_per_audio_s, options.timeout_s),
            max_upload_bytes=options.max_upload_bytes,
            word_timestamps=options.word_timestamps,
            keywords=options.keywords,
        )
    from .local import LocalEngine, device_and_compute_type

    name = options.model or options.local_model
    if name in MODELS:
        raise ConfigError(f"model {name} is an API model: set OPENAI_API_KEY or choose a local model")
    device, compute_type = device_and_compute_type(options.device, options.compute_type)
    engine = LocalEngine(
        name,
        cache_dir=options.cache_dir,
        device=device,
        compute_type=compute_type,
        threads=options.threads,
        beam_size=options.beam_size,
        word_timestamps=options.word_timestamps,
        batch_size=options.batch_size,
    )
    if task is Task.TRANSLATE and not engine.info.translate:
        raise ConfigError(f"model {name} is English-only and cannot translate; use the bundled 'base'")
    return engine
