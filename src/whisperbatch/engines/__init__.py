"""Engines turn one chunk file into text and timed segments: the OpenAI API or faster-whisper in-process."""

from __future__ import annotations

from datetime import date

from ..catalog import MODELS, current_date, default_api_model, lineup_notice, model_info
from ..config import Settings
from ..errors import ConfigError
from ..models import Task
from .base import Engine


def select_engine(settings: Settings, task: Task, today: date | None = None) -> Engine:
    """Build the engine a run will use, refusing combinations that cannot work before any upload:
    a model already shut down is refused here, before a single request."""
    kind = settings.engine_name
    if kind == "openai":
        from .openai import OpenAIEngine, RequestTimeout

        if not settings.has_api_config:
            raise ConfigError(
                "engine openai needs an API key: set OPENAI_API_KEY (or base_url for a local server)"
            )
        if task is Task.TRANSLATE:
            raise ConfigError("the API path transcribes, then a chat model translates (translate_model)")
        info = model_info(settings.model or default_api_model(today or current_date()), settings.models)
        lineup_notice(info, today or current_date())
        return OpenAIEngine(
            info,
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=RequestTimeout(settings.timeout_min_s, settings.timeout_per_audio_s, settings.timeout_s),
            max_upload_bytes=settings.max_upload_bytes,
            word_timestamps=settings.word_timestamps,
            keywords=settings.keyword_list,
        )
    from .local import LocalEngine, device_and_compute_type

    name = settings.model or settings.local_model
    if name in MODELS:
        raise ConfigError(f"model {name} is an API model: set OPENAI_API_KEY or choose a local model")
    device, compute_type = device_and_compute_type(settings.local_device, settings.local_compute_type)
    engine = LocalEngine(
        name,
        cache_dir=settings.cache_dir,
        device=device,
        compute_type=compute_type,
        threads=settings.local_threads,
        beam_size=settings.beam_size,
        word_timestamps=settings.word_timestamps,
        batch_size=settings.local_batch_size,
    )
    if task is Task.TRANSLATE and not engine.info.translate:
        raise ConfigError(f"model {name} is English-only and cannot translate; use the bundled 'base'")
    return engine
