"""What a command shows: events as progress bars (a terminal) or lines (a pipe, the service's log),
messages with the API key masked, and the cost table after a run. Everything the CLI prints goes
through `Output`, which masks the key (`errors.mask`) should any text ever contain it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import cost
from ..errors import WhisperbatchError, cause_chain, mask
from ..models import CostLine, RunSummary
from ..pipeline import ChunkDone, Event, FileFinished, FileStarted, Notice
from ..report import CostTotals, MoneyColumns, cost_totals, money_columns, unpriced_models


class Output:
    """Console output with secrets masked (the settings keep them as they load); progress bars on a
    terminal, plain lines otherwise."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, log: bool = False) -> None:
        # Pipes and CI logs get a wide table instead of rich's 80-column default.
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet, self.verbose = quiet, verbose
        self.log = log  # the service: timestamped lines, one per event, chunks included
        self.live = self.err.is_terminal and not quiet
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[Path, TaskID] = {}
        self._files_task: TaskID | None = None

    def mask(self, text: str) -> str:
        return mask(text)

    def _stamp(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S ") if self.log else ""

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(self._stamp() + self.mask(text), markup=False)

    def error(self, text: str) -> None:
        self.err.print(self._stamp() + "error: " + self.mask(text), markup=False, style="red")

    def __enter__(self) -> Output:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[chunks]}"),
                TimeRemainingColumn(),
                console=self.err,
                transient=True,
            )
            self._progress.start()
        return self

    def expect_files(self, count: int) -> None:
        """An overall bar (files done of total) above the per-file ones."""
        if self._progress is not None and count > 1:
            self._files_task = self._progress.add_task("files", total=count, chunks=f"0/{count}")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: Event) -> None:
        with self._lock:
            self._event(event)

    def _event(self, event: Event) -> None:
        p = self._progress
        if isinstance(event, FileStarted):
            if p is not None:
                self._tasks[event.path] = p.add_task(
                    self.mask(event.path.name), total=max(event.duration_s, 0.001), chunks="0 chunks"
                )
            elif self.verbose:
                self.info(f"{event.path}: started ({event.duration_s:.1f} s of audio)")
        elif isinstance(event, ChunkDone):
            if p is not None and event.path in self._tasks:
                p.update(self._tasks[event.path], completed=event.end_s, chunks=f"{event.index + 1} chunks")
            if self.verbose or self.log:
                how = "" if event.uploaded else " (from before a restart)"
                self.info(f"{event.path}: chunk {event.index + 1} done{how}, {event.end_s:.0f} s in")
        elif isinstance(event, FileFinished):
            r = event.result
            if p is not None and r.source in self._tasks:
                p.remove_task(self._tasks.pop(r.source))
            if p is not None and self._files_task is not None:
                p.advance(self._files_task)
                done = int(p.tasks[self._files_task].completed)
                p.update(self._files_task, chunks=f"{done}/{int(p.tasks[self._files_task].total or 0)}")
            if r.error and self.log:  # the service goes on: a failed file is a line of its log
                self.info(f"failed: {r.error}")
            elif r.error:
                self.error(r.error)
                if self.verbose:
                    for cause in r.causes:
                        self.info(f"  caused by {cause}")
            elif r.cost is not None:
                outputs = ", ".join(o.name for o in r.outputs)
                sent = "transcribed here" if r.cost.engine == "local" else "uploaded"  # nothing leaves
                chunks = f"{r.chunks_uploaded} of {r.chunks_total} chunk(s) {sent}"
                spent = "cost unknown" if r.cost.usd is None else f"${r.cost.usd:.4f}"
                self.info(f"{r.source}: done -> {outputs} ({chunks}, {spent})")
        elif isinstance(event, Notice):
            self.info(event.message)


def fail(out: Output, e: WhisperbatchError) -> typer.Exit:
    """Say a user error (and, verbose, what lies under it); the exit that carries its code."""
    out.error(str(e))
    if out.verbose:
        for cause in cause_chain(e):
            out.info(f"  caused by {cause}")
    return typer.Exit(e.exit_code)


def duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def usd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


def money_names(columns: MoneyColumns) -> list[str]:
    """The money columns' headings, in the order `money_cells` fills them."""
    names = ["Transcription USD", "Translation USD"] if columns.translated else []
    names.append("USD")
    if columns.local:
        names.append("API equiv. USD")
    return names


def money_cells(columns: MoneyColumns, totals: CostTotals) -> list[str]:
    cells = [usd(totals.transcribe_usd), usd(totals.translate_usd)] if columns.translated else []
    cells.append(usd(totals.usd))
    if columns.local:
        cells.append(usd(totals.api_equivalent_usd))
    return cells


def cost_table(out: Output, summary: RunSummary) -> None:
    """Each file's cost after a run and the total; how to price a model whose price is not known."""
    lines = [r.cost for r in summary.results if r.cost is not None]
    if not lines:
        return
    columns = money_columns(lines)
    table = Table(title="Cost (estimated)", title_justify="left")
    for col in ("File", "Audio", "Billed min", "Engine", "Model", "USD/min", *money_names(columns)):
        table.add_column(col, justify="left" if col in ("File", "Engine", "Model") else "right")
    for line in lines:
        table.add_row(*_cost_row(out, line), *money_cells(columns, cost_totals([line])))
    totals = cost_totals(lines)
    table.add_row(
        f"Total ({totals.files} file{'' if totals.files == 1 else 's'})",
        duration(totals.audio_s),
        f"{totals.billed_min:.2f}",
        "",
        "",
        "",
        *money_cells(columns, totals),
        style="bold",
    )
    out.out.print(table)
    unpriced = unpriced_models(lines)
    for model in unpriced.transcription:
        out.info(f"no price is known for {model}: {cost.price_hint(model)}")
    if unpriced.chat is not None:
        out.info(f"no price is known for {unpriced.chat}: {cost.price_hint(unpriced.chat, chat=True)}")


def _cost_row(out: Output, line: CostLine) -> Sequence[str]:
    same = f" (same as {Path(line.same_as).name})" if line.same_as and line.same_as != line.file else ""
    return (
        out.mask(Path(line.file).name + same),
        duration(line.audio_s),
        f"{line.billed_min:.2f}",
        line.engine,
        line.model + (f" + {line.translate_model} ({line.translate_to})" if line.translate_model else ""),
        usd(line.usd_per_min),
    )
