"""`doctor`: each thing a run needs, checked before any paid work, as one result per thing with what
was found and, when it is wrong, what to do.

The checks live in the library, not in the CLI, because the web page shows the same ones. They are
independent: an unwritable state folder still lets the server be asked about the key. A check that can
only be decided through one that failed is left out rather than reported twice (the key and the model
are not asked about on a server that cannot be reached, nor the default database in a state folder
that cannot be written), so each problem is one failed line with its fix. Nothing here costs money
(`api` says how the server is asked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date

from .. import audio
from ..catalog import current_date, default_api_model
from ..config import Settings
from ..errors import mask
from ..models import Task
from .api import Servers, api_checks, translation_checks
from .check import Check
from .host import database_check, engine_check, ffmpeg_check, offline_model_check, state_folder_check

__all__ = ["PROBE_TIMEOUT_S", "Check", "run_checks"]

# A server that has not answered within this many seconds will not do better for a run.
PROBE_TIMEOUT_S = 10.0


def run_checks(
    settings: Settings,
    *,
    task: Task = Task.TRANSCRIBE,
    today: date | None = None,
    find_ffmpeg: Callable[[], str] = audio.find_ffmpeg,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> list[Check]:
    """Every check a run of `task` with `settings` needs, in a fixed order: ffmpeg, the engine, the API
    server (its URL, the key, the model) or the offline model, the chat model that translates, the state
    folder and the database. `today` is the day the model line-up is read by (default `current_date()`,
    which raises ConfigError for a bad WHISPERBATCH_TODAY). No secret appears in any detail or fix."""
    today = today or current_date()
    servers = Servers(timeout_s)
    checks = [ffmpeg_check(find_ffmpeg), engine := engine_check(settings, today)]
    try:
        if engine.ok and settings.engine_name == "openai":
            model = settings.model or default_api_model(today)
            checks += api_checks(settings, servers.probe(settings.api_key, settings.base_url), model, today)
        elif engine.ok:
            checks.append(offline_model_check(settings))
        if task is Task.TRANSLATE:
            checks += translation_checks(settings, servers)
    finally:
        servers.close()
    checks.append(state := state_folder_check(settings.home))
    if settings.database or state.ok:
        checks.append(database_check(settings))
    return [dataclasses.replace(c, detail=mask(c.detail), fix=c.fix and mask(c.fix)) for c in checks]
