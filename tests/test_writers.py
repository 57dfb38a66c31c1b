"""Writers: golden files for every format, plus properties of the cue builder and the atomic writes.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_writers.py`,
then read the diff: the files are the specification.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from whisperbatch.errors import ConfigError, OutputError
from whisperbatch.models import CostLine, Segment, Task, Transcript
from whisperbatch.writers import (
    FORMATS,
    SubtitleStyle,
    atomic_write_text,
    output_paths,
    parse_formats,
    write_json,
    write_outputs,
    write_srt,
    write_txt,
    write_vtt,
)

GOLDEN = Path(__file__).parent / "golden"

LONG = (
    "This sentence is deliberately long so that it cannot fit into two subtitle lines "
    "of forty-two characters each and therefore has to be split across several cues."
)

SAMPLE = Transcript(
    segments=(
        # 0.4 ms rounds down to 0; 1999.6 ms rounds up and carries into the seconds.
        Segment(
            0.0004, 1.9996, "  Hello there. ", avg_logprob=-0.25, compression_ratio=1.4, no_speech_prob=0.01
        ),
        Segment(2.0, 2.0, "   "),  # blank: skipped by txt/srt/vtt
        Segment(2.5, 12.5, LONG),  # four lines at 42 chars: two cues, time split by characters
        # Carries into the minutes; internal whitespace collapses.
        Segment(59.9999, 61.25, "Carry  into\tthe next minute."),
        Segment(61.0, 62.0, "This cue overlaps the previous one."),  # start clamps to the previous end
        Segment(3725.5, 3727.0, "Über eine Stunde später — café & <Musik>"),  # > 1 h; VTT escapes & and <
        # Zero length becomes 1 ms; a 45-character word gets a line of its own.
        Segment(3727.0, 3727.0, "Pneumonoultramicroscopicsilicovolcanoconiosis is long."),
    ),
    language="en",
    duration_s=3727.25,
    engine="openai",
    model="whisper-1",
    task=Task.TRANSCRIBE,
)
COST = CostLine(
    file="talk.m4a",
    audio_s=3727.25,
    billed_min=62.12,
    engine="openai",
    model="whisper-1",
    usd_per_min=0.006,
    usd=0.3727,
)
STYLE = SubtitleStyle()


def _render(writer: Callable[[io.StringIO], None]) -> str:
    buffer = io.StringIO()
    writer(buffer)
    return buffer.getvalue()


RENDERINGS: dict[str, Callable[[io.StringIO], None]] = {
    "sample.txt": lambda s: write_txt(SAMPLE, s),
    "sample.srt": lambda s: write_srt(SAMPLE, s, STYLE),
    "sample.vtt": lambda s: write_vtt(SAMPLE, s, STYLE),
    "sample.json": lambda s: write_json(SAMPLE, s, COST),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_golden(name: str) -> None:
    actual = _render(RENDERINGS[name])
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8", newline="")
    assert actual == golden.read_text(encoding="utf-8")


def test_json_without_cost_and_optional_fields() -> None:
    document = json.loads(_render(lambda s: write_json(SAMPLE, s, None)))
    assert document["cost"] is None
    assert set(document["segments"][2]) == {"id", "start_s", "end_s", "text"}
    assert document["segments"][0]["no_speech_prob"] == 0.01


@pytest.mark.parametrize(
    ("start_s", "end_s", "expected"),
    [
        (0.0006, 1.0, "00:00:00,001 --> 00:00:01,000"),
        (-3.0, 0.5, "00:00:00,000 --> 00:00:00,500"),  # negative clamps to 0
        (3599.9995, 3600.0004, "01:00:00,000 --> 01:00:00,001"),  # carry into the hours, then >= 1 ms
        (360000.0, 360001.0, "100:00:00,000 --> 100:00:01,000"),
    ],
)
def test_srt_timestamps(start_s: float, end_s: float, expected: str) -> None:
    t = _transcript([Segment(start_s, end_s, "x")])
    assert _render(lambda s: write_srt(t, s, STYLE)).splitlines()[1] == expected


def test_vtt_has_header_no_numbers_and_dot() -> None:
    text = _render(lambda s: write_vtt(SAMPLE, s, STYLE))
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n")
    assert "," not in "".join(line for line in text.splitlines() if "-->" in line)


# --- properties of the cue builder ------------------------------------------------------------------

CUE = re.compile(r"(\d+)\n(\d+):(\d\d):(\d\d),(\d{3}) --> (\d+):(\d\d):(\d\d),(\d{3})\n((?:.+\n)+)\n")


def _parse_srt(text: str) -> list[tuple[int, int, int, list[str]]]:
    cues = []
    position = 0
    for match in CUE.finditer(text):
        assert match.start() == position, f"unparsable SRT near {text[position : position + 80]!r}"
        position = match.end()
        g = [int(x) for x in match.groups()[:9]]
        start = ((g[1] * 60 + g[2]) * 60 + g[3]) * 1000 + g[4]
        end = ((g[5] * 60 + g[6]) * 60 + g[7]) * 1000 + g[8]
        cues.append((g[0], start, end, match.group(10).rstrip("\n").split("\n")))
    assert position == len(text)
    return cues


def _transcript(segments: list[Segment]) -> Transcript:
    return Transcript(tuple(segments), "en", 0.0, "local", "base", Task.TRANSCRIBE)


def _random_transcript(seed: int) -> Transcript:
    rng = random.Random(seed)
    vocabulary = ["a", "to", "the", "word", "subtitle", "whisper", "élan", "x" * 50, "average-sized", "déjà"]
    segments = []
    clock = 0.0
    for _ in range(rng.randint(1, 25)):
        clock += rng.uniform(-1.5, 3.0)  # sometimes overlapping the previous segment
        duration = rng.choice([0.0, 0.0004, rng.uniform(0.1, 20.0)])
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 60))]
        separator = rng.choice([" ", "  ", "\t", " \n "])
        segments.append(Segment(clock, clock + duration, separator + separator.join(words) + separator))
    return _transcript(segments)


@pytest.mark.parametrize("style", [SubtitleStyle(), SubtitleStyle(20, 1), SubtitleStyle(60, 3)])
@pytest.mark.parametrize("seed", range(40))
def test_cue_properties(seed: int, style: SubtitleStyle) -> None:
    t = SAMPLE if seed == 0 else _random_transcript(seed)
    cues = _parse_srt(_render(lambda s: write_srt(t, s, style)))
    assert [number for number, *_ in cues] == list(range(1, len(cues) + 1))
    previous_end = 0
    for _, start, end, lines in cues:
        assert start >= previous_end and end > start
        previous_end = end
        assert 1 <= len(lines) <= style.max_lines
        for line in lines:
            assert line == line.strip() and "  " not in line
            assert len(line) <= style.max_line_chars or " " not in line
    cue_words = [word for *_, lines in cues for line in lines for word in line.split()]
    ordered = sorted(t.segments, key=lambda seg: seg.start_s)
    assert cue_words == [word for seg in ordered for word in seg.text.split()]


def test_long_segment_split_in_proportion_and_ends_exactly() -> None:
    t = _transcript([Segment(10.0, 20.0, LONG)])
    cues = _parse_srt(_render(lambda s: write_srt(t, s, STYLE)))
    assert [(start, end) for _, start, end, _ in cues] == [(10_000, 15_220), (15_220, 20_000)]


def test_subtitle_style_validates() -> None:
    with pytest.raises(ConfigError):
        SubtitleStyle(max_line_chars=0)
    with pytest.raises(ConfigError):
        SubtitleStyle(max_lines=-1)


def test_txt_skips_blank_and_strips() -> None:
    t = _transcript([Segment(0, 1, "  a  b "), Segment(1, 2, " \n"), Segment(2, 3, "c\nd")])
    assert _render(lambda s: write_txt(t, s)) == "a b\nc d\n"


# --- formats and paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("txt,srt", ("txt", "srt")),
        (" SRT , vtt ,srt,, ", ("srt", "vtt")),
        ("all", FORMATS),
        ("json,ALL", FORMATS),
        ("json", ("json",)),
    ],
)
def test_parse_formats(spec: str, expected: tuple[str, ...]) -> None:
    assert parse_formats(spec) == expected


@pytest.mark.parametrize("spec", ["docx", "txt,docx", "", " , "])
def test_parse_formats_rejects(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_formats(spec)
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in FORMATS)


def test_output_paths(tmp_path: Path) -> None:
    source = tmp_path / "in" / "talk.v2.m4a"
    assert output_paths(source, ["srt", "txt"], Task.TRANSCRIBE) == {
        "srt": tmp_path / "in" / "talk.v2.srt",
        "txt": tmp_path / "in" / "talk.v2.txt",
    }
    assert output_paths(source, ["vtt"], Task.TRANSLATE) == {"vtt": tmp_path / "in" / "talk.v2.en.vtt"}
    out = tmp_path / "out"
    assert output_paths(source, ["json"], Task.TRANSCRIBE, out) == {"json": out / "talk.v2.json"}
    assert output_paths(source, ["json"], Task.TRANSLATE, out) == {"json": out / "talk.v2.en.json"}


# --- atomic writes ----------------------------------------------------------------------------------


def test_atomic_write_replaces_and_creates_parent(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "a.srt"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "second — ü\n")
    assert target.read_bytes() == "second — ü\n".encode()
    assert os.listdir(target.parent) == ["a.srt"]


def test_atomic_write_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "taken.srt"
    target.mkdir()
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "text")
    assert str(info.value).startswith(f"{target}: cannot write (")
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(tmp_path) == ["taken.srt"]


def test_atomic_write_unwritable_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        atomic_write_text(blocker / "sub" / "a.txt", "text")
    assert os.listdir(tmp_path) == ["file"]


def test_write_outputs_writes_every_format(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "talk.m4a", FORMATS, Task.TRANSLATE, tmp_path / "out")
    written = write_outputs(SAMPLE, paths, STYLE, COST)
    assert written == tuple(paths.values())
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"talk.en.{fmt}" for fmt in FORMATS)
    srt = (tmp_path / "out" / "talk.en.srt").read_text(encoding="utf-8")
    assert srt == (GOLDEN / "sample.srt").read_text(encoding="utf-8")


def test_write_outputs_renders_everything_before_writing(tmp_path: Path) -> None:
    paths = {"txt": tmp_path / "a.txt", "docx": tmp_path / "a.docx", "srt": tmp_path / "a.srt"}
    with pytest.raises((ConfigError, KeyError)):
        write_outputs(SAMPLE, paths, STYLE, None)
    assert os.listdir(tmp_path) == []
