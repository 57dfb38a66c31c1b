"""What the rest of whisperbatch asks of the store, by role.

A caller is typed against the role it uses (the budget against `Ledger`, a job's chunk cache against
`ResultStore`), so a test can hand it a small fake of that role alone, and a new backend sees at a glance
what each part of the program needs. `JobStore` is all of them; both backends implement it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..models import CostLine, EngineResult, JobState, Spend, Task, Transcript
from .records import BudgetCheck, Delivery, Job, JobEnd, LedgerRow, OutputRecord, Voice


class JobQueue(Protocol):
    """Jobs: made once per content and options, claimed under a lease, finished, failed or requeued."""

    def seen(self, path: Path, size_bytes: int, mtime_ns: int) -> str | None: ...
    def enqueue(
        self,
        key: str,
        sha256: str,
        task: Task,
        path: Path,
        size_bytes: int,
        mtime_ns: int,
        *,
        options: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Job: ...
    def job(self, key: str) -> Job | None: ...
    def jobs(self, state: JobState | None = None, *, run_id: str | None = None) -> list[Job]: ...
    def claim(
        self,
        owner: str,
        lease_s: float,
        alive: Callable[[str], bool] | None = None,
        *,
        run_id: str | None = None,
        folder: Path | None = None,
    ) -> Job | None: ...
    def renew(self, owner: str, lease_s: float) -> None: ...
    def finish(self, key: str, transcript: Transcript, usd: float | None) -> None: ...
    def fail(self, key: str, error: str, *, forget: bool = False) -> None: ...
    def requeue(
        self, key: str, *, delay_s: float = 0.0, error: str | None = None, refund_attempt: bool = False
    ) -> None: ...
    def redo(
        self, key: str, path: Path, *, options: Mapping[str, Any], run_id: str | None = None
    ) -> None: ...
    def reopen(
        self, key: str, path: Path, *, options: Mapping[str, Any], run_id: str | None = None
    ) -> None: ...
    def retry_failed(self, keys: list[str] | None = None) -> int: ...
    def wait_for_work(self, timeout_s: float) -> None: ...


class Ledger(Protocol):
    """What was spent (a row per file and run) and what running jobs hold of the budget."""

    def record_cost(
        self, run_id: str, line: CostLine, state: Spend, *, job_key: str | None = None, row: int | None = None
    ) -> int: ...
    def ledger(self) -> list[LedgerRow]: ...
    def reserve_budget(
        self, key: str, run_id: str, usd: float, *, limit_usd: float, this_run_only: bool
    ) -> BudgetCheck: ...
    def release_budget(self, key: str) -> None: ...


class ResultStore(Protocol):
    """What a job made, kept the moment it arrives so nothing is paid for twice: checked chunk results,
    every answer the engine gave, and translations (by their own key: job, language, model, cues)."""

    def chunk_result(self, key: str, idx: int, offset_s: float, duration_s: float) -> EngineResult | None: ...
    def save_chunk_result(
        self, key: str, idx: int, offset_s: float, duration_s: float, result: EngineResult
    ) -> None: ...
    def answer(self, key: str, request: str) -> EngineResult | None: ...
    def save_answer(self, key: str, request: str, result: EngineResult) -> None: ...
    def translation(self, key: str) -> list[str] | None: ...
    def save_translation(
        self, key: str, job_key: str, target: str, model: str, texts: Sequence[str]
    ) -> None: ...


class OutputLog(Protocol):
    """Which recording and job each output file was written from."""

    def record_outputs(self, paths: Sequence[Path], source: Path, job_key: str) -> None: ...
    def outputs(self, paths: Sequence[Path]) -> dict[Path, OutputRecord]: ...


class SpeakerBook(Protocol):
    """Who speaks: registered voices, by name (one store's for every host that shares it), and each
    recording's diarization as stored JSON, by its own key (job, speaker options)."""

    def voices(self) -> list[Voice]: ...
    def add_voice(self, name: str, embedding: Sequence[float], source: str, *, replace: bool) -> bool: ...
    def remove_voice(self, name: str) -> bool: ...
    def speaker_labels(self, key: str) -> str | None: ...
    def save_speaker_labels(self, key: str, job_key: str, data: str) -> None: ...


class WebhookOutbox(Protocol):
    """Webhooks: job ends found by the store (whichever host ran the job), and one delivery per end and
    receiver, with its exact body, kept until delivered or given up on."""

    def webhook_watermark(self, start: float) -> float: ...
    def advance_webhook_watermark(self, ended_at: float) -> None: ...
    def job_ends(self, since: float, url: str, *, limit: int = 100) -> list[JobEnd]: ...
    def job_outputs(self, key: str) -> list[Path]: ...
    def record_deliveries(
        self,
        event_id: str,
        event_type: str,
        job_key: str,
        job_ended_at: float,
        body: str,
        urls: Sequence[str],
        *,
        now: float,
    ) -> int: ...
    def take_delivery(self, lease_s: float, *, now: float) -> Delivery | None: ...
    def delivery_succeeded(self, delivery_id: int, *, now: float) -> None: ...
    def delivery_failed(self, delivery_id: int, error: str, *, retry_at: float | None) -> None: ...
    def deliveries(self, job_key: str | None = None) -> list[Delivery]: ...


class JobStore(JobQueue, Ledger, ResultStore, OutputLog, SpeakerBook, WebhookOutbox, Protocol):
    """Every role, over one database whose schema it keeps current."""

    def migrate(self) -> list[str]: ...
    def close(self) -> None: ...
