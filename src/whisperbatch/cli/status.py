"""`status`: the jobs of every run, watcher and worker (whisperbatch.report), as a table or JSON."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from ..models import JobState
from ..report import JobRow, jobs_report
from .options import Options
from .output import Output
from .wiring import with_store


def status(
    ctx: typer.Context,
    state: Annotated[JobState | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Jobs as JSON.")] = False,
) -> None:
    """Jobs of every run, watcher and worker: queued, running (and on which host), done, failed."""
    options = Options.of(ctx)
    out = Output()
    jobs = jobs_report(with_store(out, options, lambda store: store.jobs(state)))
    if as_json:
        out.out.print_json(json.dumps([_record(out, row) for row in jobs.rows]))
        return
    table = Table(title=", ".join(f"{n} {s}" for s, n in jobs.counts.items()), title_justify="left")
    for col in ("State", "File", "Task", "Attempts", "Updated", "USD", "Run", "Worker", "Reason"):
        table.add_column(col)
    for row in jobs.rows:
        j = row.job
        table.add_row(
            j.state,
            str(j.path),
            f"{j.task} + translate into {row.translate_to}" if row.translate_to else str(j.task),
            str(j.attempts),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.updated_at)),
            "" if j.usd is None else f"{j.usd:.4f}",
            j.run_id or "",
            j.lease_owner or "",
            out.mask(j.error or ""),
        )
    out.out.print(table)


def _record(out: Output, row: JobRow) -> dict[str, object]:
    j = row.job
    keep = ("key", "state", "attempts", "usd", "updated_at", "lease_owner", "run_id")
    return {
        "path": str(j.path),
        "task": str(j.task),
        "translate_to": row.translate_to,
        **{k: getattr(j, k) for k in keep},
        "error": None if j.error is None else out.mask(j.error),
    }
