"""`report`: the spend ledger over past runs (whisperbatch.report), per run and in total, as a table,
JSON or CSV."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from ..models import CostLine, Task
from ..report import RunSpend, spend_report
from ..store import LedgerRow
from .options import Options
from .output import Output, duration, money_cells, money_names
from .wiring import with_store


def report(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Rows as CSV.")] = False,
) -> None:
    """The spend ledger over past runs: per run, and in total."""
    options = Options.of(ctx)
    out = Output()
    rows = with_store(out, options, lambda store: store.ledger())
    if as_json:
        out.out.print_json(json.dumps(_records(rows)))
        return
    if as_csv:
        records = _records(rows)
        columns = list(records[0]) if records else ["run_id"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    spend = spend_report(rows)
    table = Table(title="Spend by run", title_justify="left")
    for col in ("Run", "Files", "Not done", "Audio", "Billed min", *money_names(spend.columns)):
        table.add_column(col, justify="left" if col == "Run" else "right")
    for run in spend.runs:
        table.add_row(*_cells(run), *money_cells(spend.columns, run.totals))
    table.add_row(*_cells(spend.total), *money_cells(spend.columns, spend.total.totals), style="bold")
    out.out.print(table)
    if spend.total.not_done:
        out.info("not done: files stopped, failed or killed after requests were paid for (see --json)")


def _cells(run: RunSpend) -> list[str]:
    t = run.totals
    return [run.run_id, str(t.files), str(run.not_done), duration(t.audio_s), f"{t.billed_min:.2f}"]


def _records(rows: Sequence[LedgerRow]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": r.run_id,
            "recorded_at": round(r.recorded_at, 3),
            **_line_dict(r.line),
            "state": str(r.state),
        }
        for r in rows
    ]


def _line_dict(line: CostLine) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Task) else v) for k, v in dataclasses.asdict(line).items()}
