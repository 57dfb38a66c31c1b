"""The command line: parse, call the library, render with rich. The only code that prints or exits; one
module per command, the options they share in `options`, what they show in `output`.

Exit codes: 0 all done; 1 some file failed (the rest still processed); 2 usage or configuration
error; 3 stopped early by budget, exhausted quota or a rejected API key; 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Annotated

import typer
from rich.console import Console

from .. import __version__
from ..models import Task
from . import doctor, enqueue, estimate, keys, report, retry, serve, status, transcribe, voices, watch, worker
from .options import RUN, STORE, TRANSCRIBING, WORKER, taking

app = typer.Typer(
    name="whisperbatch",
    help="Transcribe and translate recordings into text and subtitles, with a cost report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Every command, in the order `--help` lists them, with the shared options it takes after its own; its
# help in plain words (HelpCommand).
app.command("transcribe", help=transcribe.TRANSCRIBE_HELP, cls=taking(*TRANSCRIBING))(
    transcribe.files_command(Task.TRANSCRIBE)
)
app.command("translate", help=transcribe.TRANSLATE_HELP, cls=taking(*RUN))(
    transcribe.files_command(Task.TRANSLATE)
)
app.command("estimate", cls=taking("model", "engine", "to", "translate_model", "config"))(
    estimate.estimate_command
)
app.command(cls=taking("database", "config"))(report.report)
app.command(cls=taking(*RUN))(watch.watch)
app.command(cls=taking(*WORKER))(worker.worker)
app.command(cls=taking(*RUN))(enqueue.enqueue)
app.command(cls=taking(*STORE))(status.status)
app.command(cls=taking(*STORE))(retry.retry)
app.command("serve", cls=taking(*WORKER))(serve.serve_command)
app.add_typer(voices.app)
app.add_typer(keys.app)
app.command(
    cls=taking("engine", "model", "base_url", "language", "to", "translate_model", "database", "config")
)(doctor.doctor)


def _version(value: bool) -> None:
    if value:
        Console().print(f"whisperbatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """whisperbatch: recordings in, text and subtitles out, with what it cost."""


def main() -> None:
    """The `whisperbatch` command. Once a command has returned with every thread of its own finished,
    the process ends at once (`os._exit`, as mypy does): Python's teardown of the SDK's modules and
    objects frees nothing the system would not. Logs and output are flushed first; a thread still
    running (a library's own) gets the ordinary exit, which waits for it."""
    code: str | int | None = 0
    try:
        app()
    except SystemExit as e:
        code = e.code
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if not isinstance(code, int):  # None is success; a message is printed and exits 1, as sys.exit does
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
