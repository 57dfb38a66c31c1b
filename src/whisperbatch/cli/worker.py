"""`worker`: runs jobs from the store, watching no folder; many hosts may share one store."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import scratch
from ..jobs import SERVICE, serve
from ..models import Task
from . import wiring
from .options import Options
from .output import Output
from .wiring import EXIT_FAILED, service_exit


def worker(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run what is queued, then exit.")] = False,
) -> None:
    """Run jobs from the store (`--database` shared by many hosts), watching no folder.

    Each job runs with the options it was enqueued with; this host adds its API key, base URL and
    concurrency. Recordings must be readable here at the path stored (a shared mount)."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose, log=True)
    ready = wiring.prepare(out, options, Task.TRANSCRIBE)
    runner = ready.runner(SERVICE, on_event=out.event)
    out.info(
        f"worker {runner.owner} on {ready.store}, {ready.settings.concurrency} at once"
        + ("" if once else "; Ctrl-C or SIGTERM to stop")
    )
    with scratch.run_folder():
        runner.start()
        try:
            with out:
                interruption = serve(
                    runner, done=lambda: once and runner.idle(), grace_s=ready.settings.shutdown_grace_s
                )
        finally:
            runner.close()
            ready.store.close()
    service_exit(out, runner, interruption, once=once)
    if once and runner.failed_keys:
        raise typer.Exit(EXIT_FAILED)
