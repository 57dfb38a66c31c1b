"""`enqueue`: adds recordings to the queue and returns; `worker` or `watch` processes run them."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import StoreError, WhisperbatchError
from ..inputs import collect_inputs
from ..jobs import SERVICE
from ..models import JobState
from . import wiring
from .options import Options, Paths, TaskOpt
from .output import Output, fail
from .wiring import EXIT_FAILED, parse_task


def enqueue(
    ctx: typer.Context,
    paths: Paths,
    task: TaskOpt = "transcribe",
    force: Annotated[bool, typer.Option("--force", help="Redo recordings already done.")] = False,
) -> None:
    """Add recordings to the queue without waiting: `worker` or `watch` processes run them."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    chosen = parse_task(out, task)
    ready = wiring.prepare(out, options, chosen)
    inputs = collect_inputs(paths)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    runner = ready.runner(SERVICE, on_event=out.event)
    runner.outputs.plan(inputs.files)
    failed = bool(inputs.missing)
    added = 0
    try:
        for path in inputs.files:
            try:
                job = runner.admission.admit(path, force=force)
            except StoreError as e:  # no file can be queued: said once
                raise fail(out, e) from None
            except WhisperbatchError as e:
                out.error(str(e))
                failed = True
                continue
            if job is not None and job.state is JobState.QUEUED:
                added += 1
    finally:
        runner.close()
        ready.store.close()
    out.info(f"{added} job{'s' if added != 1 else ''} queued on {ready.store}")
    if failed:
        raise typer.Exit(EXIT_FAILED)
