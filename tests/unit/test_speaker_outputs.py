"""Speaker labels in every output format, the cues they shape, and the stored transcript.

Golden files (`golden/speakers.*`) are the specification of each format's labels; regenerate them after
an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/test_speaker_outputs.py` and read the diff.
Without labels every format is what `test_writers.py`'s golden files say, byte for byte.
"""

from __future__ import annotations

import dataclasses
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from whisperbatch.cues import Cue, CueStyle, build_cues
from whisperbatch.errors import ConfigError
from whisperbatch.labels import dialogue, write_rttm
from whisperbatch.models import Segment, SpeakerTurn, Task, Transcript, Word
from whisperbatch.speakers.assign import label_cues, label_transcript
from whisperbatch.store.codec import transcript_from_json, transcript_to_json
from whisperbatch.writers import (
    FORMATS,
    output_paths,
    parse_formats,
    render,
    render_outputs,
    write_json,
    write_outputs,
    write_srt,
    write_txt,
    write_vtt,
)

from . import golden

STYLE = CueStyle()
S1, S2, ANN = "Speaker 1", "Speaker 2", "Ann Lee <host>"


def _words(start_s: float, step_s: float, text: str, *, space: bool = True) -> tuple[Word, ...]:
    return tuple(
        Word(round(start_s + step_s * i, 3), round(start_s + step_s * (i + 0.9), 3), f" {w}" if space else w)
        for i, w in enumerate(text.split())
    )


SORRY = "Sorry, the traffic was terrible."
LONG = "Come in. I have been waiting for you all morning, and the coffee is getting cold by now."
TURNS = (
    SpeakerTurn(0.3, 1.95, S1),
    SpeakerTurn(2.0, 3.6, S2),
    SpeakerTurn(3.7, 9.05, S1),
    SpeakerTurn(9.3, 12.0, S2),
    SpeakerTurn(12.5, 14.2, ANN),
)
CONVERSATION = Transcript(
    segments=(
        # One Whisper segment across two voices: split at the change.
        Segment(0.5, 3.4, " Hello, who is there? It is me.", -0.2,
                words=(*_words(0.5, 0.35, "Hello, who is there?"), *_words(2.1, 0.4, "It is me."))),
        # whisper-1 style: bare words, punctuation from the segment text.
        Segment(3.8, 9.0, LONG, words=_words(3.8, 0.3, LONG.replace(",", "").replace(".", ""), space=False)),
        Segment(9.4, 11.8, f" {SORRY}", words=_words(9.4, 0.45, SORRY)),
        Segment(12.6, 13.8, "Thank you both & welcome."),  # no words: the turn overlapping it most
    ),
    language="en",
    duration_s=15.0,
    engine="local",
    model="base",
    task=Task.TRANSCRIBE,
)  # fmt: skip
LABELLED = label_transcript(CONVERSATION, TURNS)


def _translation(source: Transcript) -> Transcript:
    """As the translation stage makes one: a segment per source cue, at its times."""
    cues = build_cues(source.segments, STYLE, end_s=source.duration_s)
    segments = tuple(Segment(c.start_ms / 1000, c.end_ms / 1000, f"DE {' '.join(c.lines)}") for c in cues)
    return dataclasses.replace(source, segments=segments, language="de", task=Task.TRANSLATE, cued=True)


TRANSLATED = label_cues(_translation(LABELLED), TURNS)

RENDERINGS: dict[str, Callable[[io.StringIO], None]] = {
    "speakers.txt": lambda s: write_txt(LABELLED, s),
    "speakers.srt": lambda s: write_srt(LABELLED, s, STYLE),
    "speakers.vtt": lambda s: write_vtt(LABELLED, s, STYLE),
    "speakers.json": lambda s: write_json(LABELLED, s, None),
    "speakers.rttm": lambda s: write_rttm(LABELLED, s, "team call"),
    "speakers.de.srt": lambda s: write_srt(TRANSLATED, s, STYLE),
    "speakers.de.vtt": lambda s: write_vtt(TRANSLATED, s, STYLE),
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_golden(name: str) -> None:
    golden.check(name, RENDERINGS[name])


def test_without_labels_every_format_is_as_before(tmp_path: Path) -> None:
    """No turns (nothing to label): byte for byte what the transcript renders without speakers."""
    for source in (CONVERSATION, _translation(CONVERSATION)):
        unlabelled = label_cues(source, ()) if source.cued else label_transcript(source, ())
        for fmt in FORMATS:
            assert render(fmt, unlabelled, STYLE) == render(fmt, source, STYLE)
    document = json.loads(render("json", CONVERSATION, STYLE))
    assert "speakers" not in document
    assert all("speaker" not in s for s in document["segments"])


def test_the_reason_labels_are_missing_is_a_warning() -> None:
    failed = dataclasses.replace(CONVERSATION, unlabelled="the speaker model file is damaged")
    assert failed.warnings == ("no speaker labels: the speaker model file is damaged",)
    assert json.loads(render("json", failed, STYLE))["warnings"] == list(failed.warnings)
    assert render("srt", failed, STYLE) == render("srt", CONVERSATION, STYLE)


def _tokens(line: str) -> list[str]:
    return line.split()


def _random_conversation(seed: int) -> Transcript:
    """Words whose text says who speaks them (`a3` is A's), in segments that run across turns."""
    rng = random.Random(seed)
    turns, words, clock = [], [], 0.0
    for _ in range(rng.randint(1, 12)):
        who = rng.choice("ABC")
        start = clock
        for _ in range(rng.randint(1, 14)):
            length = rng.uniform(0.05, 0.6)
            words.append(Word(clock, clock + length, f" {who.lower()}{len(words)}"))
            clock += length + rng.choice([0.0, 0.05, 0.2, 0.7])
        turns.append(SpeakerTurn(start, clock, who))
        clock += rng.choice([0.0, 0.1, 0.3, 1.0])
    segments, index = [], 0
    while index < len(words):
        part = words[index : index + rng.randint(1, 20)]
        segments.append(
            Segment(part[0].start_s, part[-1].end_s, "".join(w.text for w in part), words=tuple(part))
        )
        index += len(part)
    return label_transcript(Transcript(tuple(segments), "en", clock, "local", "base", Task.TRANSCRIBE), turns)


@pytest.mark.parametrize("seed", range(30))
def test_a_cue_never_mixes_two_speakers(seed: int) -> None:
    t = _random_conversation(seed)
    style = CueStyle(max_line_width=20 + seed % 30)
    cues = build_cues(t.segments, style, end_s=t.duration_s)
    shown, previous_end = [], 0
    for cue in dialogue(cues, style):
        assert previous_end <= cue.start_ms < cue.end_ms
        previous_end = cue.end_ms
        assert len(cue.speakers) in {1, 2}
        if len(cue.speakers) == 2:
            assert len(cue.lines) == 2 and cue.speakers[0] != cue.speakers[1]
            assert all(len(line) + 2 <= style.max_line_width for line in cue.lines)
            assert cue.end_ms - cue.start_ms <= style.max_cue_s * 1000
            owners = [(cue.speakers[0], cue.lines[0]), (cue.speakers[1], cue.lines[1])]
        else:
            owners = [(cue.speakers[0], line) for line in cue.lines]
        for who, line in owners:
            assert all(token[0] == who.lower() for token in _tokens(line)), (who, line)
            shown += _tokens(line)
    assert shown == [w.text.strip() for s in t.segments for w in s.words]  # every word once, in order


def _cue(start_ms: int, end_ms: int, text: str, who: str) -> Cue:
    return Cue(start_ms, end_ms, (text,), (who,))


def test_dialogue_pairs_only_short_whole_turns_close_in_time() -> None:
    question, answer = _cue(0, 1000, "Ready?", S1), _cue(1200, 2000, "Yes.", S2)
    assert dialogue([question, answer], STYLE) == [Cue(0, 2000, ("Ready?", "Yes."), (S1, S2))]
    after_pause = dataclasses.replace(answer, start_ms=1500)
    assert dialogue([question, after_pause], STYLE) == [question, after_pause]
    wide = dataclasses.replace(answer, lines=("x" * 41,))  # 41 + "- " is over 42
    assert dialogue([question, wide], STYLE) == [question, wide]
    two_lines = dataclasses.replace(answer, lines=("Yes,", "of course."))
    assert dialogue([question, two_lines], STYLE) == [question, two_lines]
    goes_on = _cue(2100, 3000, "And more.", S2)  # S2's turn goes on in the next cue
    assert dialogue([question, answer, goes_on], STYLE) == [question, answer, goes_on]
    went_on = _cue(0, 900, "Well.", S1)  # S1's turn started in the cue before
    shifted = [went_on, *(dataclasses.replace(c, start_ms=c.start_ms + 1000, end_ms=c.end_ms + 1000)
                         for c in (question, answer))]  # fmt: skip
    assert dialogue(shifted, STYLE) == shifted
    assert dialogue([question, answer], CueStyle(max_line_count=1)) == [question, answer]
    assert dialogue([question, answer], CueStyle(max_cue_s=1.5)) == [question, answer]
    same = dataclasses.replace(answer, speakers=(S1,))
    assert dialogue([question, same], STYLE) == [question, same]
    unlabelled = [Cue(0, 1000, ("Ready?",)), Cue(1200, 2000, ("Yes.",))]
    assert dialogue(unlabelled, STYLE) == unlabelled


def test_parse_formats_with_speakers() -> None:
    assert parse_formats("all") == FORMATS
    assert parse_formats("all", speakers=True) == (*FORMATS, "rttm")
    assert parse_formats("RTTM,srt", speakers=True) == ("rttm", "srt")
    with pytest.raises(ConfigError, match=r"^the rttm format lists speakers: add --diarize$"):
        parse_formats("srt,rttm")
    with pytest.raises(ConfigError, match="rttm"):
        parse_formats("docx", speakers=True)


def test_rttm_names_the_recording_by_its_stem(tmp_path: Path) -> None:
    paths = output_paths(tmp_path / "my talk.v2", ["rttm", "txt"])
    texts = render_outputs(LABELLED, paths, STYLE, None, source=tmp_path / "in" / "my talk.v2.m4a")
    first = texts[tmp_path / "my talk.v2.rttm"].splitlines()[0]
    assert first == "SPEAKER my_talk.v2 1 0.300 1.650 <NA> <NA> Speaker_1 <NA> <NA>"
    # Without the source: the output's own name without `.rttm`.
    written = write_outputs(LABELLED, output_paths(tmp_path / "call", ["rttm"], "de"), STYLE, None)
    assert written[0].read_text(encoding="utf-8").split()[1] == "call.de"
    assert render("rttm", CONVERSATION, STYLE, file_id="call") == ""  # no turns, no lines


def test_rttm_lists_overlapping_turns_in_time_order() -> None:
    turns = (SpeakerTurn(5.0, 6.0, S2), SpeakerTurn(1.0, 5.5, S1), SpeakerTurn(5.0, 5.25, ANN))
    text = render("rttm", dataclasses.replace(CONVERSATION, speakers=turns), STYLE, file_id="x")
    assert [line.split()[3:5] + line.split()[7:8] for line in text.splitlines()] == [
        ["1.000", "4.500", "Speaker_1"],
        ["5.000", "0.250", "Ann_Lee_<host>"],
        ["5.000", "1.000", "Speaker_2"],
    ]


def test_txt_labels_each_turn_and_keeps_one_segment_per_line() -> None:
    t = dataclasses.replace(
        CONVERSATION,
        segments=(
            Segment(0, 1, " First.", speaker=S1),
            Segment(1, 2, "  second\tline ", speaker=S1),
            Segment(2, 2, "  ", speaker=S2),  # blank: skipped, and does not break S1's turn
            Segment(2, 3, "Third.", speaker=S1),
            Segment(3, 4, "Reply.", speaker=S2),
        ),
        speakers=TURNS,
    )
    assert (
        golden.render(lambda s: write_txt(t, s))
        == "Speaker 1: First.\nsecond line\nThird.\n\nSpeaker 2: Reply.\n"
    )


def test_stored_transcripts_keep_their_labels_and_old_ones_still_load() -> None:
    failed = dataclasses.replace(CONVERSATION, unlabelled="too little speech")
    for t in (LABELLED, TRANSLATED, failed, CONVERSATION):
        assert transcript_from_json(transcript_to_json(t)) == t
    old = json.loads(transcript_to_json(CONVERSATION))
    del old["speakers"], old["unlabelled"]
    for segment in old["segments"]:
        del segment["speaker"]
        for word in segment["words"]:
            del word["speaker"]
    assert transcript_from_json(json.dumps(old)) == CONVERSATION
