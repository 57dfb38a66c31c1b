"""From a command's options to what it runs with: settings, ffmpeg, engine, store and job runner, each
checked before anything runs, so a user error is one line and its exit code before any request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import typer

from .. import audio
from ..catalog import chat_model_info, current_date, lineup_notice
from ..config import Settings, load_settings
from ..engines import select_engine
from ..engines.base import Engine
from ..errors import ConfigError, WhisperbatchError
from ..jobs import JobRunner
from ..models import Task
from ..policy import require_prices
from ..service import Interruption
from ..store import JobStore, open_store
from ..translate import translation_target
from .options import FLAG_NAMES, Options
from .output import Output, fail

EXIT_FAILED, EXIT_STOPPED = 1, 3

_T = TypeVar("_T")


def settings(options: Options) -> Settings:
    return load_settings(dict(options.flags), config_path=options.config, flag_names=FLAG_NAMES)


@dataclass(frozen=True)
class Prepared:
    """What a command that runs jobs needs, checked before anything runs. `task` is what the engine
    does: a translation through a chat model transcribes, then translates into `translate_to`."""

    settings: Settings
    ffmpeg: str
    engine: Engine
    store: JobStore
    task: Task
    translate_to: str | None


def prepare(out: Output, options: Options, task: Task) -> Prepared:
    """Settings, ffmpeg, engine and store for a command that runs jobs; a user error exits with its code.
    A model that is going says when; one that is gone stops here, before any request."""
    try:
        s = settings(options)
        ffmpeg = audio.find_ffmpeg()
        translate_to = None
        if task is Task.TRANSLATE:
            translate_to = translation_target(s.translation_options(), s.engine_name)
            task = Task.TRANSCRIBE if translate_to else Task.TRANSLATE
        today = current_date()
        engine = select_engine(s.engine_options(), task, today)
        chat = chat_model_info(s.translate_model, s.models) if translate_to else None
        require_prices(s.budget_usd, engine.info, chat)
        store = open_store(s.store_options())
    except WhisperbatchError as e:
        raise fail(out, e) from None
    if engine.name == "openai" and (notice := lineup_notice(engine.info, today)):
        out.info(notice)
    return Prepared(s, ffmpeg, engine, store, task, translate_to)


def with_store(out: Output, options: Options, use: Callable[[JobStore], _T]) -> _T:
    """Open the store, use it and close it; a store that cannot be read (a damaged file) or written (a
    full disk) is one line and its exit code."""
    try:
        store = open_store(settings(options).store_options())
    except WhisperbatchError as e:
        raise fail(out, e) from None
    try:
        return use(store)
    except WhisperbatchError as e:
        raise fail(out, e) from None
    finally:
        store.close()


def job_runner(out: Output, ready: Prepared, *, one_off: bool, folder: Path | None = None) -> JobRunner:
    return JobRunner(
        ready.settings,
        ready.engine,
        store=ready.store,
        ffmpeg=ready.ffmpeg,
        task=ready.task,
        one_off=one_off,
        on_event=out.event,
        translate_to=ready.translate_to,
        folder=folder,
    )


def plan_outputs(runner: JobRunner, sources: Sequence[Path]) -> None:
    """Fix where these recordings' outputs go before they are queued, so none overwrites another's."""
    runner.pipeline.plan_outputs(sources)


def engine_line(ready: Prepared) -> str:
    engine = ready.engine
    where = f" at {getattr(engine, 'host', '')}" if engine.name == "openai" else " (offline)"
    line = f"{engine.name}, model {engine.model}{where}"
    if ready.translate_to:
        line += f"; translating into {ready.translate_to} with {ready.settings.translate_model}"
    return line


def parse_task(out: Output, task: str) -> Task:
    if task not in ("transcribe", "translate"):
        raise fail(out, ConfigError(f"--task must be transcribe or translate (got {task!r})"))
    return Task(task)


def service_exit(out: Output, runner: JobRunner, interruption: Interruption | None, *, once: bool) -> None:
    """How `watch` and `worker` end: files whose requests were abandoned said; with `--once`, a pause
    (budget, quota, a rejected key) is exit code 3."""
    if interruption is not None and interruption.abandoned:
        for path in interruption.unfinished:
            out.info(
                f"{path}: not finished (requests abandoned); back in the queue, what it cost is in the ledger"
            )
    if once and runner.paused_reason:
        raise typer.Exit(EXIT_STOPPED)
