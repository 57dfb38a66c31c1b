"""`transcribe` and `translate`: one-off runs over the recordings named, with progress, a cost table and
an exit code that says whether every file was done. They share every option but translate's own
(`--to`, `--translate-model`); only the task differs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .. import scratch
from ..errors import WhisperbatchError
from ..inputs import collect_inputs
from ..jobs import ONE_OFF, Interruption, run_files
from ..models import RunSummary, Task
from . import wiring
from .options import Options, Paths
from .output import Output, cost_table, fail
from .wiring import EXIT_FAILED, EXIT_STOPPED

TRANSCRIBE_HELP = (
    "Transcribe recordings; outputs are written beside each one (or under --out-dir). A run stopped"
    " any way resumes where it left off."
)
TRANSLATE_HELP = (
    "Translate recordings: into English by default, into any language with --to (a chat model"
    " translates the transcript, each cue keeping its times). Outputs are <stem>.<lang>.<ext> beside the"
    " transcript's."
)


def files_command(task: Task) -> Callable[..., None]:
    """The command that runs `task` once over the paths given."""

    def command(
        ctx: typer.Context,
        paths: Paths,
        force: Annotated[bool, typer.Option("--force", help="Redo files already done.")] = False,
    ) -> None:
        _process(task, paths, force=force, options=Options.of(ctx))

    return command


def _process(task: Task, paths: list[str], *, force: bool, options: Options) -> None:
    out = Output(quiet=options.quiet, verbose=options.verbose)
    ready = wiring.prepare(out, options, task)
    inputs = collect_inputs(paths)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    out.info(f"engine: {ready.engine_line()}")
    runner = ready.runner(ONE_OFF, on_event=out.event)
    try:
        with scratch.run_folder() as tmp, out:
            out.expect_files(len(inputs.files))
            summary, interruption = run_files(runner, inputs.files, force=force)
            if interruption is not None and interruption.abandoned:
                _abandoned(out, interruption, tmp)
    except WhisperbatchError as e:
        raise fail(out, e) from None
    finally:
        runner.close()
        ready.store.close()
    if not options.quiet:
        cost_table(out, summary)
    _warnings(out, summary)
    if interruption is not None:
        out.error(
            f"interrupted ({signal.Signals(interruption.signum).name}): files not finished have no outputs;"
            " the same command resumes them"
        )
        raise typer.Exit(128 + interruption.signum)
    if summary.stopped_reason:
        out.error(f"stopped: {summary.stopped_reason}")
        raise typer.Exit(EXIT_STOPPED)
    if summary.failed or inputs.missing:
        raise typer.Exit(EXIT_FAILED)
    if not inputs.files:
        out.error("no audio files found")
        raise typer.Exit(EXIT_FAILED)


def _warnings(out: Output, summary: RunSummary) -> None:
    flagged = [r for r in summary.results if r.transcript is not None and r.transcript.warnings]
    if flagged:
        out.info(f"warning: {len(flagged)} file(s) done with warnings (also under `warnings` in the json):")
        for r in flagged:
            assert r.transcript is not None
            out.info(f"  {r.source}: {'; '.join(r.transcript.warnings)}")


def _abandoned(out: Output, interruption: Interruption, tmp: Path) -> NoReturn:
    """Requests were left in flight: say which files are unfinished, clean up, exit without waiting."""
    out.__exit__()
    for path in interruption.unfinished:
        out.error(f"{path}: not finished (interrupted); what it cost so far is in the ledger")
    for path in interruption.not_started:
        out.error(f"{path}: not started (interrupted)")
    scratch.remove(tmp)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + interruption.signum)  # threads blocked on the network cannot be joined
