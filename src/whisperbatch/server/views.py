"""What the API and the page show of a job and of the spend: plain JSON-able dicts made in one place,
so the page's script and an API client read the same fields. Paths are shown as file names only: a
client sees its recording's name, never the server's folders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..models import CostLine, JobState
from ..report import CostTotals, cost_totals, spend_report
from ..store import Job, LedgerRow
from .context import Server
from .outputs import written


def job_view(job: Job, outputs: Sequence[str], *, now: float | None = None) -> dict[str, Any]:
    """One job: its state, how far it is (chunks, audio seconds, ETA), what it cost, its outputs."""
    options = job.options
    return {
        "id": job.id,
        "key": job.key,
        "recording": job.path.name,
        "task": str(job.task),
        "state": str(job.state),
        "engine": options.get("engine"),
        "model": options.get("model"),
        "language": options.get("language"),
        "to": options.get("translate_to"),
        "diarize": bool(options.get("diarize")),
        "attempts": job.attempts,
        "chunks_done": job.chunks_done,
        "chunks_total": job.chunks_total,
        "audio_s": job.audio_s,
        "audio_done_s": job.audio_done_s,
        "progress": job.progress,
        "eta_s": job.eta_s(time.time() if now is None else now),
        "cancel_requested": job.cancel_requested,
        "usd": job.usd,
        "reserved_usd": job.reserved_usd,
        "error": None if job.error is None else job.error.replace(str(job.path), job.path.name),
        "updated_at": job.updated_at,
        "outputs": {fmt: f"/api/v1/jobs/{job.id}/outputs/{fmt}" for fmt in outputs},
    }


def outputs_of(server: Server, job: Job) -> list[str]:
    """The formats a done job can be downloaded in."""
    return sorted(written(server, job)) if job.state is JobState.DONE else []


def spend_view(rows: Sequence[LedgerRow], budget_usd: float | None, *, by: str) -> dict[str, Any]:
    """The ledger by day (UTC) or by run, with the total and what is left of the budget."""
    groups: dict[str, list[CostLine]] = {}
    if by == "day":
        for row in rows:
            day = datetime.fromtimestamp(row.recorded_at, UTC).date().isoformat()
            groups.setdefault(day, []).append(row.line)
        items = [{"day": day, **_totals(lines)} for day, lines in sorted(groups.items())]
    else:
        report = spend_report(rows)
        items = [
            {"run": run.run_id, "not_done": run.not_done, **_totals_of(run.totals)} for run in report.runs
        ]
    total = cost_totals([row.line for row in rows])
    left = None if budget_usd is None else max(0.0, budget_usd - (total.usd or 0.0))
    return {"by": by, "items": items, "total": _totals_of(total), "budget_usd": budget_usd, "left_usd": left}


def _totals(lines: Sequence[CostLine]) -> dict[str, Any]:
    return _totals_of(cost_totals(lines))


def _totals_of(totals: CostTotals) -> dict[str, Any]:
    return {
        "files": totals.files,
        "audio_s": round(totals.audio_s, 3),
        "billed_min": round(totals.billed_min, 4),
        "usd": totals.usd,
    }
