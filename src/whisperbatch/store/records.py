"""The store's records, each made from a row by name at the store's edge (`Job.from_row`).

A row's JSON columns are decoded here, so callers get a job's transcript as a `Transcript` and its
options as a mapping, never a text to parse. A transcript is decoded when first asked for: listing a
run's jobs, which the runner does whenever its workers fall idle, never pays for decoding them all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from ..models import CostLine, JobState, Spend, Task, Transcript
from .codec import embedding_from_json, options_from_json, transcript_from_json

# The error of a job ended by a cancel (`JobQueue.cancel`).
CANCELLED = "cancelled"


class Row(Protocol):
    """A row as either driver returns it: its values by column name."""

    def __getitem__(self, key: str) -> Any: ...


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    content_sha256: str
    task: Task
    path: Path
    state: JobState
    attempts: int
    error: str | None
    usd: float | None
    updated_at: float
    lease_owner: str | None = None
    lease_expires: float | None = None
    run_id: str | None = None  # the run that last asked for it
    # What a worker runs it with (the fields of `jobs.JobOptions`); {} for a job from before options
    # were kept.
    options: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    # How far its latest run is: chunks answered (cached ones too) and the seconds of the recording they
    # account for; the chunk count once the whole recording is cut (None before), its length once
    # probed, and when that run began sending.
    chunks_done: int = 0
    chunks_total: int | None = None
    audio_s: float | None = None
    audio_done_s: float = 0.0
    started_at: float | None = None
    cancel_requested: bool = False  # asked while it ran: the worker running it stops it
    _transcript_json: str | None = dataclasses.field(default=None, repr=False)

    @cached_property
    def transcript(self) -> Transcript | None:
        """The transcript its last finished run made, or None."""
        return None if self._transcript_json is None else transcript_from_json(self._transcript_json)

    @property
    def cancelled(self) -> bool:
        return self.state is JobState.FAILED and self.error == CANCELLED

    @property
    def progress(self) -> float | None:
        """How much of the recording is done, 0 to 1 (1 once done); None before a run has probed it."""
        if self.state is JobState.DONE:
            return 1.0
        if self.audio_s:
            return min(1.0, self.audio_done_s / self.audio_s)
        if self.chunks_total:
            return min(1.0, self.chunks_done / self.chunks_total)
        return None

    def eta_s(self, now: float) -> float | None:
        """Seconds until a running job is done, at the pace its run has gone since it began sending;
        None until something is done (or when it is not running)."""
        if self.state is not JobState.RUNNING or self.started_at is None or not self.audio_s:
            return None
        elapsed_s = now - self.started_at
        if self.audio_done_s <= 0 or elapsed_s <= 0:
            return None
        left_s = max(0.0, self.audio_s - self.audio_done_s)
        return left_s * elapsed_s / self.audio_done_s

    @classmethod
    def from_row(cls, r: Row) -> Job:
        return cls(
            id=int(r["id"]),
            key=r["key"],
            content_sha256=r["content_sha256"],
            task=Task(r["task"]),
            path=Path(r["path"]),
            state=JobState(r["state"]),
            attempts=int(r["attempts"]),
            error=r["error"],
            usd=r["usd"],
            updated_at=r["updated_at"],
            lease_owner=r["lease_owner"],
            lease_expires=r["lease_expires"],
            run_id=r["run_id"],
            options=options_from_json(r["options"]),
            chunks_done=int(r["chunks_done"]),
            chunks_total=None if r["chunks_total"] is None else int(r["chunks_total"]),
            audio_s=r["audio_s"],
            audio_done_s=float(r["audio_done_s"]),
            started_at=r["started_at"],
            cancel_requested=bool(r["cancel_requested"]),
            _transcript_json=r["transcript"],
        )


_LINE_FIELDS = tuple(f.name for f in dataclasses.fields(CostLine))


def cost_line_params(line: CostLine) -> dict[str, Any]:
    """A cost line as the ledger statements' parameters, one per column."""
    return {name: getattr(line, name) for name in _LINE_FIELDS} | {"task": str(line.task)}


@dataclass(frozen=True)
class LedgerRow:
    run_id: str
    recorded_at: float
    line: CostLine
    state: Spend
    job_key: str | None = None

    @classmethod
    def from_row(cls, r: Row) -> LedgerRow:
        line = CostLine(**{**{name: r[name] for name in _LINE_FIELDS}, "task": Task(r["task"])})
        return cls(r["run_id"], r["recorded_at"], line, Spend(r["state"]), r["job_key"])


@dataclass(frozen=True)
class OutputRecord:
    """An output file, the recording it was written for and the job whose transcript it holds."""

    path: Path
    source: Path
    job_key: str

    @classmethod
    def from_row(cls, r: Row) -> OutputRecord:
        return cls(Path(r["path"]), Path(r["source"]), str(r["job_key"]))


@dataclass(frozen=True)
class Voice:
    """A registered voice: the name a speaker whose voice matches it is labelled with, the voiceprint
    of the clip it was registered from, and that clip's file name."""

    name: str
    embedding: tuple[float, ...] = dataclasses.field(repr=False)
    source: str
    created_at: datetime

    @classmethod
    def from_row(cls, r: Row) -> Voice:
        return cls(
            name=r["name"],
            embedding=embedding_from_json(r["embedding"]),
            source=r["source"],
            created_at=datetime.fromtimestamp(float(r["created_at"]), UTC),
        )


@dataclass(frozen=True)
class BudgetCheck:
    """The answer to a reservation: whether it was granted, and what was left before it."""

    granted: bool
    left_usd: float
