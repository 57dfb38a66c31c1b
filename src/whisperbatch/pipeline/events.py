"""What a run tells as it goes: library code never prints, so progress goes to an `on_event` callback
that the CLI renders (and a log, or a test, reads)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models import FileResult, Span


@dataclass(frozen=True)
class FileStarted:
    path: Path
    key: str  # its job
    duration_s: float


@dataclass(frozen=True)
class ChunkDone:
    path: Path
    key: str  # its job
    index: int
    end_s: float  # how far into the recording this chunk reaches
    # The seconds of the recording it accounts for: from the end of the chunk before it (the silence
    # skipped between them too) to its own end, so a recording's chunks add up to its length.
    covered_s: float
    duration_s: float
    uploaded: bool  # False when the result came from the chunk cache


@dataclass(frozen=True)
class ChunksCounted:
    """The whole recording is cut: how many chunks it has (told before the last ones are answered)."""

    path: Path
    key: str
    total: int


@dataclass(frozen=True)
class FileFinished:
    result: FileResult


@dataclass(frozen=True)
class Notice:
    message: str


Event = FileStarted | ChunkDone | ChunksCounted | FileFinished | Notice


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}"


def gaps_message(path: Path, gaps: tuple[Span, ...]) -> str:
    """One line naming the times of speech that no text covers, for the log and the terminal."""
    shown = ", ".join(f"{_clock(g.start_s)}-{_clock(g.end_s)}" for g in gaps[:5])
    more = f" and {len(gaps) - 5} more" if len(gaps) > 5 else ""
    return f"{path}: warning: speech without text after asking again, {len(gaps)}x: {shown}{more}"
