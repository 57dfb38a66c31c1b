"""What the store's records add up to: the spend ledger by run, a set of cost rows' totals, and the
jobs' states. The CLI renders these (a table, JSON, CSV); computing them here keeps one answer to "what
did it cost" for the table after a run and for `report`, and lets them be tested without a console.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .jobs import JobOptions
from .models import CostLine, JobState, Spend
from .store import Job, LedgerRow


@dataclass(frozen=True)
class CostTotals:
    """A set of cost rows summed. A money total is None when any row's amount is unknown: an unknown
    price is never counted as zero."""

    files: int
    audio_s: float
    billed_min: float
    usd: float | None
    transcribe_usd: float | None
    translate_usd: float | None
    api_equivalent_usd: float | None


@dataclass(frozen=True)
class MoneyColumns:
    """Which amounts a set of cost rows shows: transcription and translation apart when anything was
    translated, the API's price for the same minutes when the local engine ran."""

    translated: bool
    local: bool


@dataclass(frozen=True)
class UnpricedModels:
    """The models whose price is not known among a set of cost rows: transcription models, each once,
    and the first chat model."""

    transcription: tuple[str, ...]
    chat: str | None


def _total(lines: Sequence[CostLine], pick: Callable[[CostLine], float | None]) -> float | None:
    values = [pick(line) for line in lines]
    return None if None in values else sum(v or 0.0 for v in values)


def cost_totals(lines: Sequence[CostLine]) -> CostTotals:
    return CostTotals(
        files=len(lines),
        audio_s=sum(line.audio_s for line in lines),
        billed_min=sum(line.billed_min for line in lines),
        usd=_total(lines, lambda line: line.usd),
        transcribe_usd=_total(lines, lambda line: line.transcribe_usd),
        translate_usd=_total(lines, lambda line: line.translate_usd),
        api_equivalent_usd=_total(lines, lambda line: line.api_equivalent_usd),
    )


def money_columns(lines: Sequence[CostLine]) -> MoneyColumns:
    return MoneyColumns(
        translated=any(line.translate_model for line in lines),
        local=any(line.engine == "local" for line in lines),
    )


def unpriced_models(lines: Sequence[CostLine]) -> UnpricedModels:
    transcription = tuple(dict.fromkeys(line.model for line in lines if line.usd_per_min is None))
    chat = next((line.translate_model for line in lines if line.translate_usd is None), None)
    return UnpricedModels(transcription, chat)


@dataclass(frozen=True)
class RunSpend:
    """One run's rows of the ledger (or all of them), summed; `not_done` counts files stopped, failed or
    killed after requests were paid for."""

    run_id: str
    not_done: int
    totals: CostTotals


@dataclass(frozen=True)
class SpendReport:
    """The ledger per run, in the order runs first appear, and in total."""

    runs: tuple[RunSpend, ...]
    total: RunSpend
    columns: MoneyColumns


def _run_spend(run_id: str, rows: Sequence[LedgerRow]) -> RunSpend:
    not_done = sum(r.state is not Spend.DONE for r in rows)
    return RunSpend(run_id, not_done, cost_totals([r.line for r in rows]))


def spend_report(rows: Sequence[LedgerRow]) -> SpendReport:
    runs: dict[str, list[LedgerRow]] = {}
    for r in rows:
        runs.setdefault(r.run_id, []).append(r)
    return SpendReport(
        runs=tuple(_run_spend(run_id, group) for run_id, group in runs.items()),
        total=_run_spend("Total", rows),
        columns=money_columns([r.line for r in rows]),
    )


@dataclass(frozen=True)
class JobRow:
    """A job as `status` lists it, with the language it is translated into (None: not translated)."""

    job: Job
    translate_to: str | None


@dataclass(frozen=True)
class JobsReport:
    """The jobs listed, and how many are in each state (every state, zero included)."""

    rows: tuple[JobRow, ...]
    counts: Mapping[JobState, int]


def jobs_report(jobs: Sequence[Job]) -> JobsReport:
    return JobsReport(
        rows=tuple(JobRow(j, _translate_to(j)) for j in jobs),
        counts={s: sum(j.state is s for j in jobs) for s in JobState},
    )


def _translate_to(job: Job) -> str | None:
    options = JobOptions.from_dict(job.options)
    return None if options is None else options.translate_to
