"""What the ledger and the jobs add up to, from records built by hand: no store, no console."""

from __future__ import annotations

from pathlib import Path

import pytest

from whisperbatch.jobs import JobOptions
from whisperbatch.models import CostLine, JobState, Spend, Task
from whisperbatch.report import (
    MoneyColumns,
    UnpricedModels,
    cost_totals,
    jobs_report,
    money_columns,
    spend_report,
    unpriced_models,
)
from whisperbatch.store import Job, LedgerRow


def line(file: str = "a.m4a", usd: float | None = 0.01, **more: object) -> CostLine:
    fields: dict[str, object] = {
        "audio_s": 60.0,
        "billed_min": 0.5,
        "engine": "openai",
        "model": "whisper-1",
        "usd_per_min": 0.006,
        "transcribe_usd": usd,
        **more,
    }
    return CostLine(file, usd=usd, **fields)  # type: ignore[arg-type]


def job(name: str, state: JobState, options: JobOptions | None = None) -> Job:
    data = {} if options is None else options.as_dict()
    return Job(1, name, "sha", Task.TRANSCRIBE, Path(name), state, 1, None, None, None, 0.0, options=data)


def test_totals_sum_each_amount_and_an_unknown_one_stays_unknown() -> None:
    totals = cost_totals([line("a", 0.01), line("b", 0.02)])
    assert (totals.files, totals.audio_s, totals.billed_min) == (2, 120.0, 1.0)
    assert totals.usd == pytest.approx(0.03)
    assert totals.translate_usd == 0.0
    unknown = cost_totals([line("a", 0.01), line("b", None)])
    assert (unknown.usd, unknown.transcribe_usd) == (None, None)
    assert unknown.audio_s == 120.0


def test_columns_follow_what_the_rows_hold() -> None:
    assert money_columns([line()]) == MoneyColumns(translated=False, local=False)
    translated = line(translate_model="gpt-5.4-mini", translate_to="de")
    local = line(engine="local", api_equivalent_usd=0.003)
    assert money_columns([line(), translated, local]) == MoneyColumns(translated=True, local=True)


def test_models_without_a_price_are_named_once() -> None:
    rows = [
        line("a", None, model="own", usd_per_min=None),
        line("b", None, model="own", usd_per_min=None),
        line("c", translate_model="chat-x", translate_usd=None),
    ]
    assert unpriced_models(rows) == UnpricedModels(("own",), "chat-x")
    assert unpriced_models([line()]) == UnpricedModels((), None)


def test_the_ledger_by_run_in_the_order_runs_appear_and_in_total() -> None:
    rows = [
        LedgerRow("r2", 1.0, line("a", 0.01), Spend.DONE),
        LedgerRow("r1", 2.0, line("b", 0.02), Spend.FAILED),
        LedgerRow("r2", 3.0, line("c", 0.03), Spend.UNFINISHED),
    ]
    report = spend_report(rows)
    assert [(r.run_id, r.totals.files, r.not_done) for r in report.runs] == [("r2", 2, 1), ("r1", 1, 1)]
    assert report.runs[0].totals.usd == pytest.approx(0.04)
    assert (report.total.run_id, report.total.totals.files, report.total.not_done) == ("Total", 3, 2)
    assert report.total.totals.usd == pytest.approx(0.06)


def test_an_empty_ledger_is_a_total_of_zero() -> None:
    report = spend_report([])
    assert (report.runs, report.total.totals.files, report.total.totals.usd) == ((), 0, 0.0)


def test_jobs_counted_in_every_state_with_their_translation_target() -> None:
    into_german = JobOptions("openai", "whisper-1", translate_to="de", translate_model="gpt-5.4-mini")
    jobs = [
        job("a", JobState.DONE),
        job("b", JobState.FAILED, into_german),
        job("c", JobState.DONE, JobOptions("openai", "whisper-1")),
    ]
    report = jobs_report(jobs)
    assert dict(report.counts) == {
        JobState.QUEUED: 0,
        JobState.RUNNING: 0,
        JobState.DONE: 2,
        JobState.FAILED: 1,
    }
    assert [(row.job.key, row.translate_to) for row in report.rows] == [("a", None), ("b", "de"), ("c", None)]
