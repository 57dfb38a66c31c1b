"""Writers and cues: golden files for every format, the cue builder's rules and properties over
random input, and the atomic writes.

Regenerate the golden files after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/test_writers.py`,
then read the diff: the files are the specification.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from whisperbatch.cues import Cue, CueStyle, build_cues, to_ms
from whisperbatch.errors import ConfigError, OutputError
from whisperbatch.models import CostLine, Segment, Span, Task, Transcript, Word
from whisperbatch.testing.scoring import parse_srt
from whisperbatch.writers import (
    FORMATS,
    atomic_write_text,
    output_paths,
    parse_formats,
    plan_outputs,
    write_json,
    write_outputs,
    write_srt,
    write_txt,
    write_vtt,
)

from . import golden

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
    transcribe_usd=0.3727,
)
STYLE = CueStyle()


def _w(start_s: float, end_s: float, text: str, probability: float | None = None) -> Word:
    return Word(start_s, end_s, text, probability)


TIMED = "subtitles are timed, and why a cue should never stay on screen for longer than seven seconds."
# Word timestamps as engines give them: faster-whisper (leading space, punctuation, probability) and
# whisper-1 (bare words, no probability: punctuation comes from the segment text).
WORDS_SAMPLE = Transcript(
    segments=(
        Segment(
            0.5,
            4.1,
            " Welcome back, everyone. Today we look at how",
            words=(
                _w(0.5, 0.84, " Welcome", 0.91),
                _w(0.84, 1.1, " back,", 0.88),
                _w(1.12, 1.7, " everyone.", 0.95),
                _w(2.0, 2.3, " Today", 0.99),
                _w(2.3, 2.42, " we", 0.97),
                _w(2.42, 2.7, " look", 0.96),
                _w(2.7, 2.8, " at", 0.99),
                _w(2.8, 4.1, " how", 0.62),  # a stretched last word, as Whisper often gives
            ),
        ),
        Segment(
            4.1,
            9.9,
            f" {TIMED}",
            words=tuple(
                _w(round(4.1 + 0.34 * i, 3), round(4.1 + 0.34 * i + 0.3, 3), f" {word}", 0.9)
                for i, word in enumerate(TIMED.split())
            ),
        ),
        # Speech detected at 10.2-11.6 s that no text covers: reported in json as a gap.
        Segment(
            12.0,
            15.0,
            "Short pause. Then the answer: it depends!",
            words=(
                _w(12.0, 12.3, "Short"),
                _w(12.3, 12.7, "pause"),
                _w(13.4, 13.6, "Then"),
                _w(13.6, 13.7, "the"),
                _w(13.7, 14.1, "answer"),
                _w(14.2, 14.3, "it"),
                _w(14.3, 15.0, "depends"),
            ),
        ),
        Segment(16.0, 17.0, "Untimed words & <tags>."),  # no words: time shared by characters
    ),
    language="en",
    duration_s=17.5,
    engine="local",
    model="base",
    task=Task.TRANSCRIBE,
    gaps=(Span(10.2, 11.6),),
)

RENDERINGS: dict[str, Callable[[io.StringIO], None]] = {
    "sample.txt": lambda s: write_txt(SAMPLE, s),
    "sample.srt": lambda s: write_srt(SAMPLE, s, STYLE),
    "sample.vtt": lambda s: write_vtt(SAMPLE, s, STYLE),
    "sample.json": lambda s: write_json(SAMPLE, s, COST),
    "words.srt": lambda s: write_srt(WORDS_SAMPLE, s, STYLE),
    "words.vtt": lambda s: write_vtt(WORDS_SAMPLE, s, STYLE),
    "words.json": lambda s: write_json(WORDS_SAMPLE, s, None),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_golden(name: str) -> None:
    golden.check(name, RENDERINGS[name])


def test_json_without_cost_and_optional_fields() -> None:
    document = json.loads(golden.render(lambda s: write_json(SAMPLE, s, None)))
    assert document["cost"] is None
    assert set(document["segments"][2]) == {"id", "start_s", "end_s", "text"}
    assert document["segments"][0]["no_speech_prob"] == 0.01
    assert document["gaps"] == []


def test_json_words_and_gaps() -> None:
    document = json.loads(golden.render(lambda s: write_json(WORDS_SAMPLE, s, None)))
    assert document["gaps"] == [{"start_s": 10.2, "end_s": 11.6}]
    first = document["segments"][0]["words"][0]
    assert first == {"start_s": 0.5, "end_s": 0.84, "text": "Welcome", "probability": 0.91}
    assert document["segments"][2]["words"][0] == {"start_s": 12.0, "end_s": 12.3, "text": "Short"}
    assert "words" not in document["segments"][3]


@pytest.mark.parametrize(
    ("start_s", "end_s", "expected"),
    [
        (0.0006, 1.0, "00:00:00,001 --> 00:00:01,000"),
        (-3.0, 0.5, "00:00:00,000 --> 00:00:00,500"),  # negative clamps to 0
        # Carry into the hours; one character needs 50 ms at 20 a second, so the cue stays that long.
        (3599.9995, 3600.0004, "01:00:00,000 --> 01:00:00,050"),
        (360000.0, 360001.0, "100:00:00,000 --> 100:00:01,000"),
    ],
)
def test_srt_timestamps(start_s: float, end_s: float, expected: str) -> None:
    t = _transcript([Segment(start_s, end_s, "x")])
    assert golden.render(lambda s: write_srt(t, s, STYLE)).splitlines()[1] == expected


def test_cue_at_the_recording_end_is_at_least_1_ms() -> None:
    t = Transcript((Segment(3600.0, 3600.0, "x"),), "en", 3600.0, "local", "base", Task.TRANSCRIBE)
    assert golden.render(lambda s: write_srt(t, s, STYLE)).splitlines()[1] == "01:00:00,000 --> 01:00:00,001"


def test_vtt_has_header_no_numbers_and_dot() -> None:
    text = golden.render(lambda s: write_vtt(SAMPLE, s, STYLE))
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n")
    assert "," not in "".join(line for line in text.splitlines() if "-->" in line)


# --- cues from words --------------------------------------------------------------------------------


def _say(
    text: str, start_s: float, *, api: bool = False, pauses: dict[int, float] | None = None
) -> tuple[Word, ...]:
    """Timed words at about 17 characters a second. faster-whisper style (leading space, punctuation,
    probability) or, with `api`, whisper-1 style (bare words without punctuation, no probability).
    `pauses` adds silence after the word at that index."""
    words = []
    clock = start_s
    for index, token in enumerate(text.split()):
        duration = 0.12 + 0.04 * len(token)
        shown = token.strip(".,;:!?—") if api else f" {token}"
        words.append(Word(round(clock, 3), round(clock + duration, 3), shown, None if api else 0.9))
        clock += duration + 0.04 + (pauses or {}).get(index, 0.0)
    return tuple(words)


def _spoken(words: tuple[Word, ...], text: str | None = None) -> Segment:
    return Segment(words[0].start_s, words[-1].end_s, text or "".join(w.text for w in words), words=words)


def _cue_words(cues: list[Cue]) -> list[str]:
    return [word for cue in cues for line in cue.lines for word in line.split()]


def _check_cues(cues: list[Cue], style: CueStyle) -> None:
    """Shape and order, whatever the input: what every player and reader relies on."""
    previous_end = 0
    for cue in cues:
        assert cue.start_ms >= previous_end and cue.end_ms > cue.start_ms, cue
        assert cue.end_ms - cue.start_ms <= max(1, round(style.max_cue_s * 1000)), cue
        previous_end = cue.end_ms
        assert 1 <= len(cue.lines) <= style.max_line_count, cue
        for line in cue.lines:
            assert line and line == line.strip() and "  " not in line, cue
            assert len(line) <= style.max_line_width or " " not in line, cue
            assert style.max_words_per_line is None or len(line.split()) <= style.max_words_per_line, cue


def _check_timing(cues: list[Cue], words: list[Word], style: CueStyle) -> None:
    """For words in time order: each cue spans its own words, pauses end cues, reading speed is met
    wherever lengthening the cue into the silence after it can meet it."""
    assert _cue_words(cues) == [w.text.strip() for w in words]
    max_cue_ms = round(style.max_cue_s * 1000)
    first = previous_end = 0
    for number, cue in enumerate(cues):
        own = words[first : first + sum(len(line.split()) for line in cue.lines)]
        first += len(own)
        # Only a cue of zero-length words, made 1 ms long, can push the next one later.
        assert cue.start_ms == max(to_ms(own[0].start_s), previous_end), cue
        previous_end = cue.end_ms
        start = to_ms(own[0].start_s)
        assert cue.end_ms >= min(to_ms(own[-1].end_s), start + max_cue_ms), cue
        for a, b in itertools.pairwise(own):
            assert to_ms(b.start_s) - to_ms(a.end_s) < 500, f"pause inside {cue}"
        chars = len(" ".join(cue.lines))
        if chars * 1000 > style.max_chars_per_s * (cue.end_ms - start):
            limit = start + max_cue_ms
            if number + 1 < len(cues):
                limit = min(limit, cues[number + 1].start_ms)
            assert cue.end_ms >= limit, f"{cue} could be on screen longer"


THREE_SENTENCES = (
    "Every recording that lands in the watched folder is transcribed once, and the subtitles appear "
    "beside it a few minutes later, with a cost report for the minutes that were billed. "
    "Nobody should have to listen to the whole recording again to check that every sentence is there, "
    "so the tool refuses to drop speech silently and reports what it could not hear. "
    "That is why cues follow the words themselves, sentence by sentence, and never run longer than seven "
    "seconds on screen."
)


def test_words_make_short_cues_that_break_at_sentence_ends() -> None:
    words = _say(THREE_SENTENCES, 1.0)
    segment = _spoken(words)
    assert 28 < segment.end_s - segment.start_s < 32
    cues = build_cues([segment], STYLE)
    _check_cues(cues, STYLE)
    _check_timing(cues, list(words), STYLE)
    assert len(cues) >= 7
    # Every sentence end closes a cue.
    last_words = {cue.lines[-1].split()[-1] for cue in cues}
    assert {"billed.", "hear.", "screen."} <= last_words


def test_balanced_lines() -> None:
    words = _say("The subtitles appear beside the recording a few minutes later.", 0.0)
    (cue,) = build_cues([_spoken(words)], STYLE)
    assert cue.lines == ("The subtitles appear beside the", "recording a few minutes later.")


def test_pause_ends_a_cue_and_short_gaps_do_not() -> None:
    words = _say("Hello there. Are you ready?", 0.0, pauses={1: 0.5})
    cues = build_cues([_spoken(words)], STYLE)
    assert [c.lines for c in cues] == [("Hello there.",), ("Are you ready?",)]
    words = _say("one two three four five six", 0.0, pauses={2: 0.45})
    assert [c.lines for c in build_cues([_spoken(words)], STYLE)] == [("one two three four five six",)]


def test_reading_speed_lengthens_a_cue_into_silence_but_not_over_the_next() -> None:
    fast = (
        Word(0.0, 0.5, " Extraordinarily"),
        Word(0.5, 1.0, " complicated"),
        Word(1.0, 1.0, " matters."),
        Word(1.6, 1.9, " Yes."),  # 0.6 s later: a pause
        Word(5.0, 5.1, " Incomprehensibilities."),
    )
    cues = build_cues([_spoken(fast)], STYLE)
    assert [c.lines for c in cues] == [
        ("Extraordinarily complicated matters.",),
        ("Yes.",),
        ("Incomprehensibilities.",),
    ]
    # 36 characters need 1.8 s at 20 a second: the cue may only stay until the next one starts.
    assert (cues[0].start_ms, cues[0].end_ms) == (0, 1600)
    assert (cues[1].start_ms, cues[1].end_ms) == (1600, 1900)  # 4 characters in 0.3 s: fast enough
    # 22 characters: 1.1 s, with nothing after it.
    assert (cues[2].start_ms, cues[2].end_ms) == (5000, 6100)
    # ... but not past the end of the recording.
    cues = build_cues([_spoken(fast)], STYLE, end_s=5.5)
    assert cues[2].end_ms == 5500
    # ... and never longer than max_cue_s.
    slow_reader = CueStyle(max_chars_per_s=1.0, max_cue_s=3.0)
    assert build_cues([_spoken(fast[4:])], slow_reader)[0].end_ms == 8000


def test_reading_speed_moves_words_out_of_a_fast_cue() -> None:
    # "Yes, okay, fine," is said at 28 characters a second; one line of 20 cannot hold everything.
    # Cutting after "fine," leaves a cue too fast to read; cutting after "Yes," gives the words that
    # follow the slow cue's time, and both cues can be read.
    words = (
        Word(0.0, 0.2, " Yes,"),
        Word(0.2, 0.4, " okay,"),
        Word(0.4, 0.6, " fine,"),
        Word(0.6, 2.0, " you"),
        Word(2.0, 3.0, " win."),
    )
    narrow = CueStyle(max_line_width=20, max_line_count=1)
    cues = build_cues([_spoken(words)], narrow, end_s=3.0)
    assert cues == [Cue(0, 200, ("Yes,",)), Cue(200, 3000, ("okay, fine, you win.",))]


def test_max_words_per_line() -> None:
    style = CueStyle(max_words_per_line=3)
    words = _say("one two three four five six seven eight nine ten eleven twelve", 0.0)
    cues = build_cues([_spoken(words)], style)
    _check_cues(cues, style)
    _check_timing(cues, list(words), style)
    assert all(len(line.split()) <= 3 for cue in cues for line in cue.lines)
    assert len(cues) == 2


def test_words_cross_segment_boundaries_and_segment_ends_are_break_candidates() -> None:
    first, second = _say("We went down to", 0.0), _say("the market early.", 1.2)
    cues = build_cues([_spoken(first), _spoken(second)], STYLE)
    assert [c.lines for c in cues] == [("We went down to the market early.",)]


def test_words_without_punctuation_take_it_from_the_segment_text() -> None:
    text = " Short answer: yes. Long answer — it depends, on the reader!"
    words = _say(text, 2.0, api=True)
    assert [w.text for w in words[:3]] == ["Short", "answer", "yes"]
    assert not any(w.text == "—" for w in words)
    cues = build_cues([_spoken(tuple(w for w in words if w.text), text)], STYLE)
    assert _cue_words(cues) == text.split()
    assert cues[0].lines[-1].endswith("yes.")  # a sentence end, found through the segment text


def test_misaligned_segment_text_never_duplicates_or_drops_words() -> None:
    words = _say("twenty five people came in 2024", 0.0, api=True)
    segment = _spoken(words, "25 people came, in 2024 — finally.")
    (cue,) = build_cues([segment], STYLE)
    assert cue.lines == ("twenty five people came, in 2024",)


def test_scripts_without_spaces_join_without_one() -> None:
    words = (Word(0.0, 0.4, "你好"), Word(0.4, 0.8, "世界。"), Word(0.8, 1.2, " OK"))
    (cue,) = build_cues([_spoken(words, "你好世界。 OK")], STYLE)
    assert cue.lines == ("你好世界。 OK",)


def test_long_word_gets_a_line_of_its_own() -> None:
    long = "Pneumonoultramicroscopicsilicovolcanoconiosis"
    words = _say(f"A disease: {long} is rare.", 0.0)
    cues = build_cues([_spoken(words)], STYLE)
    _check_cues(cues, STYLE)
    _check_timing(cues, list(words), STYLE)
    assert [c.lines for c in cues] == [("A disease:",), (long, "is rare.")]


def test_empty_input() -> None:
    assert build_cues([], STYLE) == []
    assert (
        build_cues([Segment(0.0, 1.0, "  "), Segment(1.0, 2.0, "", words=(Word(1.0, 1.5, " "),))], STYLE)
        == []
    )


def test_untimed_and_timed_segments_keep_apart() -> None:
    timed = _spoken(_say("First we hear this", 0.0))
    untimed = Segment(timed.end_s, timed.end_s + 1.0, "and then that")
    cues = build_cues([untimed, timed], STYLE)
    assert [c.lines for c in cues] == [("First we hear this",), ("and then that",)]


# --- cues from segments without words ---------------------------------------------------------------


def test_long_untimed_segment_is_split_to_the_same_shape() -> None:
    text = " ".join(THREE_SENTENCES.split()[:60])
    cues = build_cues([Segment(10.0, 70.0, text)], STYLE)
    _check_cues(cues, STYLE)
    assert _cue_words(cues) == text.split()
    assert cues[0].start_ms == 10_000 and cues[-1].end_ms == 70_000
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(cues))  # time shared out, none lost
    assert all(c.end_ms - c.start_ms <= 7000 for c in cues)


def test_untimed_time_is_shared_by_characters_and_ends_exactly() -> None:
    cues = build_cues([Segment(10.0, 20.0, LONG)], STYLE)
    assert len(cues) == 2
    first_chars = len(" ".join(cues[0].lines)) + 1  # with the space before the next cue
    assert abs(cues[0].end_ms - (10_000 + 10_000 * first_chars / len(LONG))) <= 0.5
    assert (cues[0].start_ms, cues[1].start_ms, cues[1].end_ms) == (10_000, cues[0].end_ms, 20_000)


def test_cue_style_validates() -> None:
    for bad in ({"max_line_width": 0}, {"max_line_count": -1}, {"max_words_per_line": 0}, {"max_cue_s": 0.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            CueStyle(**bad)
    for value in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="max_chars_per_s"):
            CueStyle(max_chars_per_s=value)


# --- properties over random input -------------------------------------------------------------------

STYLES = [
    CueStyle(),
    CueStyle(20, 1),
    CueStyle(60, 3, max_words_per_line=4),
    CueStyle(max_cue_s=3.0, max_chars_per_s=12.0),
]
VOCABULARY = [
    "a",
    "to",
    "the",
    "word",
    "subtitle,",
    "whisper",
    "élan",
    "x" * 50,
    "average-sized",
    "déjà",
    "end.",
    "why?",
    "—",
    "so;",
    "Mr.",
    "wow!",
]


def _random_words(rng: random.Random, *, ordered: bool) -> list[Segment]:
    segments = []
    clock = rng.uniform(0.0, 5.0)
    for _ in range(rng.randint(1, 12)):
        words = []
        for _ in range(rng.randint(1, 40)):
            if ordered:
                clock += rng.choice([0.0, 0.0, 0.05, rng.uniform(0.1, 0.7), rng.uniform(0.5, 3.0)])
            else:
                clock += rng.uniform(-1.0, 1.0)
            duration = rng.choice([0.0, rng.uniform(0.05, 0.6), rng.uniform(0.5, 9.0)])
            words.append(Word(clock, clock + duration, " " + rng.choice(VOCABULARY)))
            if ordered:
                clock += duration
        segments.append(_spoken(tuple(words)))
    return segments


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed", range(25))
def test_word_cue_properties(seed: int, style: CueStyle) -> None:
    rng = random.Random(seed)
    segments = _random_words(rng, ordered=True)
    cues = build_cues(segments, style)
    _check_cues(cues, style)
    _check_timing(cues, [w for s in segments for w in s.words], style)
    # Words out of order and overlapping segments: still well-formed, every word once.
    shuffled = _random_words(rng, ordered=False)
    cues = build_cues(shuffled, style)
    _check_cues(cues, style)
    ordered = sorted(shuffled, key=lambda s: s.start_s)
    assert _cue_words(cues) == [w.text.strip() for s in ordered for w in s.words]


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
        duration = rng.choice([0.0, 0.0004, rng.uniform(0.1, 20.0), rng.uniform(20.0, 60.0)])
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 60))]
        separator = rng.choice([" ", "  ", "\t", " \n "])
        segments.append(Segment(clock, clock + duration, separator + separator.join(words) + separator))
    return _transcript(segments)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed", range(40))
def test_untimed_cue_properties(seed: int, style: CueStyle) -> None:
    t = SAMPLE if seed == 0 else _random_transcript(seed)
    srt = _parse_srt(golden.render(lambda s: write_srt(t, s, style)))
    assert [number for number, *_ in srt] == list(range(1, len(srt) + 1))
    cues = [Cue(start, end, tuple(lines)) for _, start, end, lines in srt]
    _check_cues(cues, style)
    ordered = sorted(t.segments, key=lambda seg: seg.start_s)
    assert _cue_words(cues) == [word for seg in ordered for word in seg.text.split()]


def test_txt_skips_blank_and_strips() -> None:
    t = _transcript([Segment(0, 1, "  a  b "), Segment(1, 2, " \n"), Segment(2, 3, "c\nd")])
    assert golden.render(lambda s: write_txt(t, s)) == "a b\nc d\n"


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
    base = plan_outputs([source]).bases[source]
    assert output_paths(base, ["srt", "txt"]) == {
        "srt": tmp_path / "in" / "talk.v2.srt",
        "txt": tmp_path / "in" / "talk.v2.txt",
    }
    assert output_paths(base, ["vtt"], "de") == {"vtt": tmp_path / "in" / "talk.v2.de.vtt"}
    out = tmp_path / "out"
    base = plan_outputs([source], out).bases[source]
    assert output_paths(base, ["json"]) == {"json": out / "talk.v2.json"}
    assert output_paths(base, ["json"], "en") == {"json": out / "talk.v2.en.json"}


def test_recordings_that_would_share_outputs_are_named_apart(tmp_path: Path) -> None:
    a_mp3, a_webm, b = tmp_path / "a.mp3", tmp_path / "a.webm", tmp_path / "b.mp3"
    plan = plan_outputs([a_mp3, a_webm, b])
    assert plan.bases == {a_mp3: tmp_path / "a.mp3", a_webm: tmp_path / "a.webm", b: tmp_path / "b"}
    assert plan.clashes == ((a_mp3, a_webm),)
    # A neighbour not in this run still changes the name, so a later run cannot overwrite it.
    assert plan_outputs([a_mp3], neighbours=[a_webm]).bases == {a_mp3: tmp_path / "a.mp3"}
    # Two folders flattened into one --out-dir: the same name keeps the folder that tells them apart.
    x, y, out = tmp_path / "x" / "a.mp3", tmp_path / "y" / "a.mp3", tmp_path / "out"
    plan = plan_outputs([x, y, a_webm], out)
    assert plan.bases == {x: out / "x" / "a.mp3", y: out / "y" / "a.mp3", a_webm: out / "a.webm"}
    assert len(set(plan.bases.values())) == 3 and len(plan.clashes) == 1


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
    paths = output_paths(tmp_path / "out" / "talk", FORMATS, "en")
    written = write_outputs(SAMPLE, paths, STYLE, COST)
    assert written == tuple(paths.values())
    assert sorted(os.listdir(tmp_path / "out")) == sorted(f"talk.en.{fmt}" for fmt in FORMATS)
    srt = (tmp_path / "out" / "talk.en.srt").read_text(encoding="utf-8")
    assert srt == (golden.GOLDEN / "sample.srt").read_text(encoding="utf-8")


def test_write_outputs_renders_everything_before_writing(tmp_path: Path) -> None:
    paths = {"txt": tmp_path / "a.txt", "docx": tmp_path / "a.docx", "srt": tmp_path / "a.srt"}
    with pytest.raises((ConfigError, KeyError)):
        write_outputs(SAMPLE, paths, STYLE, None)
    assert os.listdir(tmp_path) == []


def test_a_translation_keeps_every_source_cue_time(tmp_path: Path) -> None:
    """Translated cues (`cued`) are written one per segment at exactly its times, however long the other
    language makes them; only their lines are laid out."""
    source = build_cues(SAMPLE.segments, STYLE, end_s=SAMPLE.duration_s)
    long_german = (
        "Dies ist eine deutlich längere Übersetzung, die mehr Zeichen braucht als das Original hatte"
    )
    translated = dataclasses.replace(
        SAMPLE,
        segments=tuple(Segment(c.start_ms / 1000, c.end_ms / 1000, long_german) for c in source),
        language="de",
        task=Task.TRANSLATE,
        cued=True,
    )
    cues = parse_srt(golden.render(lambda s: write_srt(translated, s, STYLE)))
    assert [(round(a * 1000), round(b * 1000)) for a, b, _ in cues] == [
        (c.start_ms, c.end_ms) for c in source
    ]
    for _, _, text in cues:
        assert text == long_german
    vtt = golden.render(lambda s: write_vtt(translated, s, STYLE))
    assert all(len(line) <= STYLE.max_line_width for line in vtt.splitlines()[2:] if "-->" not in line)
