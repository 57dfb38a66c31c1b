"""`doctor`: the checks a run needs (whisperbatch.doctor), one line each, before any paid work. The
checks are the library's, so the web page shows the same ones; this prints them and sets the exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ..catalog import current_date
from ..errors import WhisperbatchError
from ..models import Task
from .options import Options, TaskOpt
from .output import Output, fail
from .wiring import EXIT_FAILED, parse_task, settings

if TYPE_CHECKING:  # the checks (and the SDK they use) are imported by `doctor` alone
    from ..doctor import Check


def doctor(ctx: typer.Context, task: TaskOpt = "transcribe") -> None:
    """Check, without paying for anything, what a run needs: ffmpeg, the engine, the API server's URL,
    key and model (or the offline model), the chat model that translates (--to, or --task translate),
    the state folder and the database. Exits 1 when any check fails."""
    from ..doctor import run_checks

    options = Options.of(ctx)
    out = Output()
    chosen = parse_task(out, task)
    if options.flags.get("translate_to"):
        chosen = Task.TRANSLATE
    try:
        s = settings(options)
        today = current_date()
    except WhisperbatchError as e:
        raise fail(out, e) from None
    checks = run_checks(s, task=chosen, today=today)
    for check in checks:
        out.out.print(out.mask(line(check)), markup=False, soft_wrap=True)
    if not all(c.ok for c in checks):
        raise typer.Exit(EXIT_FAILED)


def line(check: Check) -> str:
    """`✔ ffmpeg: /usr/bin/ffmpeg`, or `✘ API key: refused by … — fix: …`."""
    if check.ok:
        return f"✔ {check.name}: {check.detail}"
    return f"✘ {check.name}: {check.detail} — fix: {check.fix}"
