"""From a command's options to what it runs with: settings, ffmpeg, engine, store and job runner, each
checked before anything runs, so a user error is one line and its exit code before any request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from ..config import Settings, load_settings
from ..errors import ConfigError, WhisperbatchError
from ..jobs import Interruption, JobRunner
from ..models import Task
from ..session import Session, open_session
from ..store import JobStore, open_store
from .options import FLAG_NAMES, Options
from .output import Output, fail

EXIT_FAILED, EXIT_STOPPED = 1, 3

_T = TypeVar("_T")


def settings(options: Options) -> Settings:
    return load_settings(dict(options.flags), config_path=options.config, flag_names=FLAG_NAMES)


def prepare(out: Output, options: Options, task: Task) -> Session:
    """The session for a command that runs jobs; a user error exits with its code. A model that is
    going says when; one that is gone stops here, before any request."""
    try:
        session = open_session(settings(options), task)
    except WhisperbatchError as e:
        raise fail(out, e) from None
    if session.notice:
        out.info(session.notice)
    return session


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
