"""`watch`: the service over a folder: every recording that lands in it is transcribed (or translated)
once, across restarts, until Ctrl-C or SIGTERM (or, with `--once`, until what is there is done)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .. import scratch
from ..errors import ConfigError, WhisperbatchError
from ..jobs import SERVICE, Service, serve
from . import wiring
from .options import Options, TaskOpt
from .output import Output, fail
from .wiring import EXIT_FAILED, parse_task, service_exit


def watch(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="The folder to watch.")],
    task: TaskOpt = "transcribe",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Watch subfolders too.")] = False,
    polling: Annotated[bool, typer.Option("--polling", help="Poll (NFS, SMB, container mounts).")] = False,
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")] = False,
    no_work: Annotated[
        bool, typer.Option("--no-work", help="Only enqueue: `worker` processes run the jobs.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo recordings already done, once each.")] = False,
) -> None:
    """Transcribe (or translate) every recording that lands in FOLDER, once, across restarts."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose, log=True)
    chosen = parse_task(out, task)
    if not folder.is_dir():
        raise fail(out, ConfigError(f"{folder}: not a folder"))
    ready = wiring.prepare(out, options, chosen)
    runner = ready.runner(SERVICE, on_event=out.event, folder=folder.absolute())
    service = Service(
        runner,
        root=folder.absolute(),
        settle_s=ready.settings.settle_s,
        rescan_s=ready.settings.rescan_s,
        recursive=recursive,
        polling=polling,
        force=force,
        once=once,
    )
    doing = "enqueueing only" if no_work else f"engine {ready.engine_line()}"
    out.info(
        f"watching {folder} ({task}; {doing}; store {ready.store})"
        + ("" if once else "; Ctrl-C or SIGTERM to stop")
    )
    started = time.monotonic()

    def done() -> bool:
        return once and time.monotonic() - started > ready.settings.settle_s and service.settled()

    with scratch.run_folder():
        try:
            service.start(work=not no_work)
        except WhisperbatchError as e:
            ready.store.close()
            raise fail(out, e) from None
        try:
            with out:
                interruption = serve(
                    runner, done=done, tick=service.tick, grace_s=ready.settings.shutdown_grace_s
                )
        finally:
            service.stop()
            runner.close()
            ready.store.close()
    service_exit(out, runner, interruption, once=once)
    if once and (runner.failed_keys or service.unsettled):
        raise typer.Exit(EXIT_FAILED)
