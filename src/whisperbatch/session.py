"""What a run needs, from settings: ffmpeg, the engine, its prices and the store, each checked before
anything runs. The CLI's commands and the library call `whisperbatch.transcribe` open a session the
same way, so a script meets the same checks (a model that is gone, a budget over unknown prices) as a
command line does, raised as `WhisperbatchError` instead of printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType

from . import audio
from .catalog import chat_model_info, current_date, lineup_notice
from .config import Settings
from .engines import select_engine
from .engines.base import Engine
from .jobs import JobRunner, JobSetup, RunMode
from .models import Task
from .pipeline import Event
from .policy import require_prices
from .store import JobStore, open_store
from .translate import translation_target


@dataclass(frozen=True)
class Session:
    """Settings, ffmpeg, engine and store for a run. `task` is what the engine does: a translation
    through a chat model transcribes, then translates into `translate_to`. `notice` says when an API
    model is going (None when it is not). Closing it closes the store."""

    settings: Settings
    ffmpeg: str
    engine: Engine
    store: JobStore
    task: Task
    translate_to: str | None
    notice: str | None = None

    def engine_line(self) -> str:
        """`local, model base (offline)`, `openai, model whisper-1 at api.openai.com; translating …`."""
        engine = self.engine
        where = f" at {getattr(engine, 'host', '')}" if engine.name == "openai" else " (offline)"
        line = f"{engine.name}, model {engine.model}{where}"
        if self.translate_to:
            line += f"; translating into {self.translate_to} with {self.settings.translate_model}"
        return line

    def runner(
        self, mode: RunMode, *, on_event: Callable[[Event], None] = lambda e: None, folder: Path | None = None
    ) -> JobRunner:
        """The job runner for this session's runs in `mode` (a watcher also names its `folder`)."""
        return JobRunner(
            self.settings.runner_options(mode),
            self.engine,
            self.settings.run_setup(self.engine, self.translate_to),
            setup_for=self.settings.job_setup,
            store=self.store,
            ffmpeg=self.ffmpeg,
            task=self.task,
            mode=mode,
            on_event=on_event,
            folder=folder,
        )

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class RunPlan:
    """How `settings` run a task: the engine, what it is asked to do (a translation through a chat
    model transcribes first), and the language the chat model translates into (None: none does)."""

    engine: Engine
    task: Task
    translate_to: str | None

    def setup(self, settings: Settings) -> JobSetup:
        """The options jobs of this plan are kept with, and what they make."""
        return settings.run_setup(self.engine, self.translate_to)


def plan_run(settings: Settings, task: Task, today: date | None = None) -> RunPlan:
    """The engine and task for `settings`; raises WhisperbatchError for a model that is gone, prices
    unknown under a budget, or a translation no chat model can make."""
    translate_to = None
    if task is Task.TRANSLATE:
        translate_to = translation_target(settings.translation_options(), settings.engine_name)
        task = Task.TRANSCRIBE if translate_to else Task.TRANSLATE
    engine = select_engine(settings.engine_options(), task, today or current_date())
    chat = chat_model_info(settings.translate_model, settings.models) if translate_to else None
    require_prices(settings.budget_usd, engine.info, chat)
    return RunPlan(engine, task, translate_to)


def open_session(settings: Settings, task: Task, today: date | None = None) -> Session:
    """Check everything a run of `task` needs and open the store; raises WhisperbatchError (a model that
    is gone, prices unknown under a budget, no ffmpeg, a store that cannot be opened)."""
    ffmpeg = audio.find_ffmpeg()
    today = today or current_date()
    plan = plan_run(settings, task, today)
    store = open_store(settings.store_options())
    engine = plan.engine
    notice = lineup_notice(engine.info, today) if engine.name == "openai" else None
    return Session(settings, ffmpeg, engine, store, plan.task, plan.translate_to, notice)
