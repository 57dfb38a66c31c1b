"""Render a Transcript as txt, srt, vtt, json or rttm, and write the files atomically.

Why it is shaped this way:
- Writers take a text stream (as in openai/whisper's `utils.py`), so tests render into `io.StringIO`
  and compare with golden files byte for byte.
- SRT and VTT render the same cues (`cues.build_cues`: line width, lines, duration, reading speed)
  with a few attributes (decimal mark, header, numbering, escaping), so wrapping, splitting and timing
  rules live in one place and cannot drift apart between the two formats.
- Times are converted to whole milliseconds once (`cues.to_ms`, one `round()`), and every later step
  is integer arithmetic: no float drift, no "00:00:01,1000". json carries the same milliseconds.
- Speaker labels (`labels.py`) are added only where a transcript has them, so without them every
  format is what it always was. rttm lists nothing but speakers: `all` means it only when labels are
  made, and asking for it without them is a mistake in the options, found before anything is sent.
- Files are written to a hidden temp file in the same folder, fsynced, then `os.replace`d: a folder
  watcher, a video player or a user may open an output at any moment and must see the old file or the
  new one, never half of one. A recording's formats are written all or none: every format is rendered,
  then every temp file written, and only then are they renamed into place, so neither a rendering bug
  nor a full disk leaves a new srt beside an old json. Temp names are short, so an output whose name
  fits its folder can always be written.
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

from whisperbatch import labels
from whisperbatch.cues import CueStyle, build_cues, fixed_cues, to_ms
from whisperbatch.errors import ConfigError, OutputError, UnwritableOutput
from whisperbatch.models import CostLine, Segment, SpeakerTurn, Transcript, Word

FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "json")
# Formats that list speakers, and so need speaker labels.
SPEAKER_FORMATS: tuple[str, ...] = ("rttm",)
_CHOOSE = f"choose from {', '.join((*FORMATS, *SPEAKER_FORMATS))} or all"


def parse_formats(spec: str, *, speakers: bool = False) -> tuple[str, ...]:
    """`"txt, SRT,srt"` -> `("txt", "srt")`; `"all"` -> every format (rttm only with `speakers`, when
    speaker labels are made). Order of first mention is kept."""
    wanted: list[str] = []
    for raw in spec.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            return (*FORMATS, *SPEAKER_FORMATS) if speakers else FORMATS
        if name in SPEAKER_FORMATS and not speakers:
            raise ConfigError(f"the {name} format lists speakers: add --diarize")
        if name not in FORMATS and name not in SPEAKER_FORMATS:
            raise ConfigError(f"unknown output format {raw.strip()!r}: {_CHOOSE}")
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        raise ConfigError(f"no output format given: {_CHOOSE}")
    return tuple(wanted)


@dataclass(frozen=True)
class _SubtitleFormat:
    decimal_mark: str
    header: str
    numbered: bool
    escape_markup: bool  # WebVTT treats & and < as markup; SRT players show text as is


_SRT = _SubtitleFormat(decimal_mark=",", header="", numbered=True, escape_markup=False)
_VTT = _SubtitleFormat(decimal_mark=".", header="WEBVTT\n\n", numbered=False, escape_markup=True)


def _timestamp(ms: int, decimal_mark: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal_mark}{millis:03d}"


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_cues(transcript: Transcript, stream: TextIO, style: CueStyle, fmt: _SubtitleFormat) -> None:
    stream.write(fmt.header)
    end_s = transcript.duration_s if transcript.duration_s > 0 else None  # 0: not known
    if transcript.cued:  # a translation: its source's cues, at their times
        cues = fixed_cues(transcript.segments, style)
    else:
        cues = build_cues(transcript.segments, style, end_s=end_s)
    for number, cue in enumerate(labels.dialogue(cues, style), start=1):
        if fmt.numbered:
            stream.write(f"{number}\n")
        start = _timestamp(cue.start_ms, fmt.decimal_mark)
        end = _timestamp(cue.end_ms, fmt.decimal_mark)
        lines = labels.vtt_lines(cue, _escape_vtt) if fmt.escape_markup else labels.srt_lines(cue)
        stream.write(f"{start} --> {end}\n" + "\n".join(lines) + "\n\n")


def write_txt(t: Transcript, stream: TextIO) -> None:
    """One segment per line (whitespace collapsed, so an embedded newline cannot split it), blanks skipped;
    with speaker labels, a paragraph per turn with its label first."""
    if t.speakers:
        labels.write_paragraphs(t.segments, stream)
        return
    for segment in t.segments:
        text = " ".join(segment.text.split())
        if text:
            stream.write(text + "\n")


def write_srt(t: Transcript, stream: TextIO, style: CueStyle) -> None:
    _write_cues(t, stream, style, _SRT)


def write_vtt(t: Transcript, stream: TextIO, style: CueStyle) -> None:
    _write_cues(t, stream, style, _VTT)


def write_json(t: Transcript, stream: TextIO, cost: CostLine | None) -> None:
    """Machine-readable result: text, metadata, every segment with its words where the engine gave them,
    and the speech no text covers (`gaps`). Times in seconds, to the millisecond; optional fields that
    the engine did not report are left out. `warnings` says what may be missing (a truncated file's
    `decoded_s`, speech without text). With speaker labels, `speaker` on every segment and word, and
    the turns they came from in `speakers`."""
    labelled = bool(t.speakers)
    segments = [_segment_item(index, segment, labelled) for index, segment in enumerate(t.segments)]
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
        "duration_s": to_ms(t.duration_s) / 1000,
        "segments": segments,
        "gaps": [{"start_s": to_ms(g.start_s) / 1000, "end_s": to_ms(g.end_s) / 1000} for g in t.gaps],
        **({"speakers": [_turn_item(turn) for turn in t.speakers]} if labelled else {}),
        "decoded_s": None if t.decoded_s is None else to_ms(t.decoded_s) / 1000,
        "warnings": list(t.warnings),
        "cost": cost_dict,
    }
    stream.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _segment_item(index: int, segment: Segment, labelled: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": index,
        "start_s": to_ms(segment.start_s) / 1000,
        "end_s": to_ms(segment.end_s) / 1000,
        "text": segment.text.strip(),
    }
    if labelled:
        item["speaker"] = segment.speaker
    for key in ("avg_logprob", "compression_ratio", "no_speech_prob"):
        value = getattr(segment, key)
        if value is not None:
            item[key] = value
    if segment.words:
        item["words"] = [_word_item(word, labelled) for word in segment.words]
    return item


def _word_item(word: Word, labelled: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "start_s": to_ms(word.start_s) / 1000,
        "end_s": to_ms(word.end_s) / 1000,
        "text": word.text.strip(),
    }
    if word.probability is not None:
        item["probability"] = word.probability
    if labelled:
        item["speaker"] = word.speaker
    return item


def _turn_item(turn: SpeakerTurn) -> dict[str, Any]:
    return {"start_s": to_ms(turn.start_s) / 1000, "end_s": to_ms(turn.end_s) / 1000, "speaker": turn.speaker}


_RENDERERS: dict[str, Callable[[Transcript, TextIO, CueStyle, CostLine | None, str], None]] = {
    "txt": lambda t, s, _style, _cost, _id: write_txt(t, s),
    "srt": lambda t, s, style, _cost, _id: write_srt(t, s, style),
    "vtt": lambda t, s, style, _cost, _id: write_vtt(t, s, style),
    "json": lambda t, s, _style, cost, _id: write_json(t, s, cost),
    "rttm": lambda t, s, _style, _cost, file_id: labels.write_rttm(t, s, file_id),
}


def render(
    fmt: str, transcript: Transcript, style: CueStyle, cost: CostLine | None = None, *, file_id: str = ""
) -> str:
    """The full text of one output format; unknown formats raise ConfigError. `file_id` names the
    recording where a format does (rttm)."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ConfigError(f"unknown output format {fmt!r}: {_CHOOSE}")
    buffer = io.StringIO()
    renderer(transcript, buffer, style, cost, file_id)
    return buffer.getvalue()


@dataclass(frozen=True)
class OutputPlan:
    """Where each recording's outputs go (`bases`: the path without `.txt`/`.srt`), and the groups of
    recordings that would have shared one, and so were named apart."""

    bases: dict[Path, Path]
    clashes: tuple[tuple[Path, ...], ...]


def plan_outputs(
    sources: Sequence[Path], out_dir: Path | None = None, neighbours: Sequence[Path] = ()
) -> OutputPlan:
    """Name every recording's outputs so that no two recordings share one.

    `<stem>` beside the source (or in `out_dir`) when that is unambiguous. Recordings that would share
    it (`talk.mp3` and `talk.webm`, or two folders' `talk.mp3` flattened by `out_dir`) keep their
    extension in the name (`talk.mp3.srt`, `talk.webm.srt`); same-named files from different folders
    also keep the folders that tell them apart, under `out_dir`. `neighbours` are recordings not in
    this run that a later run may write beside the same names (a folder's other files), so the names
    do not depend on which files a run was given.
    """
    given = {p.absolute(): p for p in [*neighbours, *sources]}  # absolute -> as the caller named it
    groups: dict[Path, list[Path]] = {}
    for path in given:
        groups.setdefault((out_dir or path.parent).absolute() / path.stem, []).append(path)
    bases: dict[Path, Path] = {}
    clashes: list[tuple[Path, ...]] = []
    for stem, members in groups.items():
        if len(members) == 1:
            bases[members[0]] = stem
            continue
        clashes.append(tuple(members))
        by_name: dict[str, list[Path]] = {}
        for path in members:
            by_name.setdefault(path.name, []).append(path)
        for name, same in by_name.items():
            common = Path(os.path.commonpath([p.parent for p in same]))
            for path in same:
                sub = path.parent.relative_to(common) if len(same) > 1 else Path()
                bases[path] = stem.parent / sub / name
    wanted = {p.absolute() for p in sources}
    return OutputPlan(
        bases={p: bases[p.absolute()] for p in sources},
        clashes=tuple(tuple(given[p] for p in group) for group in clashes if wanted.intersection(group)),
    )


def output_paths(base: Path, formats: Sequence[str], language: str | None = None) -> dict[str, Path]:
    """`<base>.<ext>` per format; a translation's are `<base>.<language>.<ext>` (`talk.de.srt`, the
    Plex/Jellyfin convention)."""
    name = f"{base.name}.{language}" if language else base.name
    return {fmt: base.with_name(f"{name}.{fmt}") for fmt in formats}


def check_writable(folder: Path) -> None:
    """Create (if needed) and write a probe file in `folder`, so a run finds out before it pays."""
    probe = folder / f".whisperbatch-probe-{secrets.token_hex(6)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        if isinstance(e, FileExistsError | NotADirectoryError):
            reason = "not a folder"
        else:
            reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e))
        raise UnwritableOutput(
            f"{folder}: outputs cannot be written there ({reason}); nothing was sent"
        ) from e


NAME_MAX = 255  # bytes in one file name, where the file system does not say (ext4, xfs, tmpfs, NTFS)


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that `folder` (or the nearest existing folder above it) allows."""
    for candidate in (folder, *folder.parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # not there yet, or no pathconf (Windows)
            if candidate.exists():
                break
    return NAME_MAX


def check_names(source: Path, paths: Iterable[Path]) -> None:
    """Raises OutputError, before anything is paid for, when an output's name is longer than its folder
    allows: the transcript could be made but never written."""
    for path in paths:
        size = len(os.fsencode(path.name))
        if size > (limit := name_max(path.parent)):
            raise OutputError(
                f"{source}: the name of its output {path.suffix.lstrip('.')} would be too long ({size} bytes;"
                f" {path.parent} allows {limit}); nothing was sent: give the recording a shorter name"
            )


def _temp_beside(path: Path, text: str) -> Path:
    """`text` in a new hidden file in `path`'s folder, fsynced: the file that is then renamed to `path`.
    Its name is short whatever the output's name is, so an output whose name fits fits its temp too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".whisperbatch-{secrets.token_hex(8)}.tmp"
    # os.open with 0o666 lets the umask decide the final permissions, as a plain open() would
    # (tempfile's 0o600 would leave subtitles unreadable to a media server running as another user).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def _cannot_write(path: Path, e: Exception) -> OutputError:
    reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
    return OutputError(f"{path}: cannot write ({reason})")


def write_files(texts: Mapping[Path, str]) -> tuple[Path, ...]:
    """Write a set of files all or none: each to a temp file beside it first, and only when every one
    is written are they renamed into place. A full disk or any other failure removes the temp files and
    leaves the files that were there before as they were: a recording never has a new srt beside an
    old (or missing) json. Readers see each file old or new, never half of one."""
    temps: dict[Path, Path] = {}
    path = next(iter(texts), Path())
    try:
        for path, text in texts.items():
            temps[path] = _temp_beside(path, text)
        for path, tmp in list(temps.items()):
            os.replace(tmp, path)
            del temps[path]
    except Exception as e:
        raise _cannot_write(path, e) from e
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
    return tuple(texts)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text so readers see the old file or the new one, never a partial file."""
    write_files({path: text})


def render_outputs(
    transcript: Transcript,
    paths: Mapping[str, Path],
    style: CueStyle,
    cost: CostLine | None,
    *,
    source: Path | None = None,
) -> dict[Path, str]:
    """Every format's text, by the path it goes to (a rendering failure raises before anything is written).
    rttm names the recording by `source`'s stem, or by its own file name without `.rttm`."""
    texts = {}
    for fmt, path in paths.items():
        file_id = source.stem if source is not None else path.name.removesuffix(".rttm")
        texts[path] = render(fmt, transcript, style, cost, file_id=file_id)
    return texts


def write_outputs(
    transcript: Transcript,
    paths: Mapping[str, Path],
    style: CueStyle,
    cost: CostLine | None,
    *,
    source: Path | None = None,
) -> tuple[Path, ...]:
    """Render every format first (a failure writes nothing), then write them all or none."""
    return write_files(render_outputs(transcript, paths, style, cost, source=source))
