"""Render a Transcript as txt, srt, vtt or json, and write the files atomically.

Why it is shaped this way:
- Writers take a text stream (as in openai/whisper's `utils.py`), so tests render into `io.StringIO`
  and compare with golden files byte for byte.
- SRT and VTT are one cue builder plus a few attributes (decimal mark, header, numbering, escaping), so
  wrapping, splitting and timing rules cannot drift apart between the two formats.
- Times are converted to whole milliseconds once, with one `round()`, and every later step (splitting a
  long segment, clamping overlaps) is integer arithmetic: no float drift, no "00:00:01,1000".
- Files are written to a hidden temp file in the same folder, fsynced, then `os.replace`d: a folder
  watcher, a video player or a user may open an output at any moment and must see the old file or the
  new one, never half of one. Every format is rendered before any is written, so a rendering bug
  leaves no partial set of outputs behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from whisperbatch.errors import ConfigError, OutputError
from whisperbatch.models import CostLine, Segment, Task, Transcript

FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "json")
_CHOOSE = f"choose from {', '.join(FORMATS)} or all"


def parse_formats(spec: str) -> tuple[str, ...]:
    """`"txt, SRT,srt"` -> `("txt", "srt")`; `"all"` -> every format. Order of first mention is kept."""
    wanted: list[str] = []
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            return FORMATS
        if name not in FORMATS:
            raise ConfigError(f"unknown output format {raw.strip()!r}: {_CHOOSE}")
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        raise ConfigError(f"no output format given: {_CHOOSE}")
    return tuple(wanted)


@dataclass(frozen=True)
class SubtitleStyle:
    """How subtitle text is laid out: at most `max_lines` lines of at most `max_line_chars` characters."""

    max_line_chars: int = 42
    max_lines: int = 2

    def __post_init__(self) -> None:
        if self.max_line_chars <= 0 or self.max_lines <= 0:
            raise ConfigError(
                f"subtitle style needs positive sizes (max_line_chars={self.max_line_chars}, "
                f"max_lines={self.max_lines})"
            )


@dataclass(frozen=True)
class _Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _SubtitleFormat:
    decimal_mark: str
    header: str
    numbered: bool
    escape_markup: bool  # WebVTT treats & and < as markup; SRT players show text as is


_SRT = _SubtitleFormat(decimal_mark=",", header="", numbered=True, escape_markup=False)
_VTT = _SubtitleFormat(decimal_mark=".", header="WEBVTT\n\n", numbered=False, escape_markup=True)


def _ms(seconds: float) -> int:
    """Seconds -> whole milliseconds, rounded once; negative times clamp to 0."""
    return max(0, round(seconds * 1000))


def _timestamp(ms: int, decimal_mark: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_mark}{millis:03d}"


def _wrap(words: Iterable[str], width: int) -> list[str]:
    """Greedy word wrap; a word longer than `width` gets a line of its own and is never broken."""
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) <= width:
            line = f"{line} {word}"
        else:
            if line:
                lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _segment_cues(segment: Segment, style: SubtitleStyle) -> list[_Cue]:
    """One cue per `max_lines` lines of the segment's wrapped text, time split by character count."""
    lines = _wrap(segment.text.split(), style.max_line_chars)
    pieces = [tuple(lines[i : i + style.max_lines]) for i in range(0, len(lines), style.max_lines)]
    start_ms = _ms(segment.start_s)
    span_ms = max(0, _ms(segment.end_s) - start_ms)
    sizes = [len(" ".join(piece)) for piece in pieces]
    total = sum(sizes) or 1
    cues: list[_Cue] = []
    done = 0
    for piece, size in zip(pieces, sizes, strict=True):
        cue_start = start_ms + round(span_ms * done / total)
        done += size
        cue_end = start_ms + round(span_ms * done / total)  # done == total on the last piece: exact end
        cues.append(_Cue(cue_start, cue_end, piece))
    return cues


def _build_cues(transcript: Transcript, style: SubtitleStyle) -> list[_Cue]:
    """Cues in time order, non-overlapping, each at least 1 ms long; blank segments are skipped."""
    cues: list[_Cue] = []
    previous_end = 0
    for segment in sorted(transcript.segments, key=lambda s: s.start_s):
        for cue in _segment_cues(segment, style):
            start = max(cue.start_ms, previous_end)
            end = max(cue.end_ms, start + 1)
            cues.append(_Cue(start, end, cue.lines))
            previous_end = end
    return cues


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_cues(transcript: Transcript, stream: TextIO, style: SubtitleStyle, fmt: _SubtitleFormat) -> None:
    stream.write(fmt.header)
    for number, cue in enumerate(_build_cues(transcript, style), start=1):
        if fmt.numbered:
            stream.write(f"{number}\n")
        start = _timestamp(cue.start_ms, fmt.decimal_mark)
        end = _timestamp(cue.end_ms, fmt.decimal_mark)
        lines = [_escape_vtt(line) for line in cue.lines] if fmt.escape_markup else list(cue.lines)
        stream.write(f"{start} --> {end}\n" + "\n".join(lines) + "\n\n")


def write_txt(t: Transcript, stream: TextIO) -> None:
    """One segment per line (whitespace collapsed, so an embedded newline cannot split it), blanks skipped."""
    for segment in t.segments:
        text = " ".join(segment.text.split())
        if text:
            stream.write(text + "\n")


def write_srt(t: Transcript, stream: TextIO, style: SubtitleStyle) -> None:
    _write_cues(t, stream, style, _SRT)


def write_vtt(t: Transcript, stream: TextIO, style: SubtitleStyle) -> None:
    _write_cues(t, stream, style, _VTT)


def write_json(t: Transcript, stream: TextIO, cost: CostLine | None) -> None:
    """Machine-readable result: text, metadata, every segment (times in seconds, to the millisecond)."""
    segments: list[dict[str, Any]] = []
    for index, segment in enumerate(t.segments):
        item: dict[str, Any] = {
            "id": index,
            "start_s": _ms(segment.start_s) / 1000,
            "end_s": _ms(segment.end_s) / 1000,
            "text": segment.text.strip(),
        }
        for key in ("avg_logprob", "compression_ratio", "no_speech_prob"):
            value = getattr(segment, key)
            if value is not None:
                item[key] = value
        segments.append(item)
    cost_dict: dict[str, Any] | None = None
    if cost is not None:
        cost_dict = dataclasses.asdict(cost)
        cost_dict["task"] = cost.task.value
    document = {
        "text": t.text,
        "language": t.language,
        "task": t.task.value,
        "engine": t.engine,
        "model": t.model,
        "duration_s": _ms(t.duration_s) / 1000,
        "segments": segments,
        "cost": cost_dict,
    }
    stream.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


_RENDERERS: dict[str, Callable[[Transcript, TextIO, SubtitleStyle, CostLine | None], None]] = {
    "txt": lambda t, s, _style, _cost: write_txt(t, s),
    "srt": lambda t, s, style, _cost: write_srt(t, s, style),
    "vtt": lambda t, s, style, _cost: write_vtt(t, s, style),
    "json": lambda t, s, _style, cost: write_json(t, s, cost),
}


def render(fmt: str, transcript: Transcript, style: SubtitleStyle, cost: CostLine | None = None) -> str:
    """The full text of one output format; unknown formats raise ConfigError."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ConfigError(f"unknown output format {fmt!r}: {_CHOOSE}")
    buffer = io.StringIO()
    renderer(transcript, buffer, style, cost)
    return buffer.getvalue()


def output_paths(
    source: Path, formats: Sequence[str], task: Task, out_dir: Path | None = None
) -> dict[str, Path]:
    """`<stem>.<ext>` beside the source (or in `out_dir`); translations are `<stem>.en.<ext>`."""
    folder = source.parent if out_dir is None else out_dir
    stem = f"{source.stem}.en" if task is Task.TRANSLATE else source.stem
    return {fmt: folder / f"{stem}.{fmt}" for fmt in formats}


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text so readers see the old file or the new one, never a partial file."""
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        # os.open with 0o666 lets the umask decide the final permissions, as a plain open() would
        # (tempfile's 0o600 would leave subtitles unreadable to a media server running as another user).
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        tmp = candidate
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except Exception as e:
        reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
        raise OutputError(f"{path}: cannot write ({reason})") from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_outputs(
    transcript: Transcript, paths: Mapping[str, Path], style: SubtitleStyle, cost: CostLine | None
) -> tuple[Path, ...]:
    """Render every format first (a failure writes nothing), then write each file atomically."""
    rendered = [(paths[fmt], render(fmt, transcript, style, cost)) for fmt in paths]
    for path, text in rendered:
        atomic_write_text(path, text)
    return tuple(path for path, _ in rendered)
