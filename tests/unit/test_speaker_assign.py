"""Speaker turns -> labels: each word takes the turn it overlaps most (the nearest where none),
segments split where the voice changes, untimed segments and translated cues by their own span."""

from __future__ import annotations

import dataclasses
import random

import pytest

from whisperbatch.models import Segment, SpeakerTurn, Task, Transcript, Word
from whisperbatch.speakers.assign import label_cues, label_transcript

A, B, C = "Speaker 1", "Speaker 2", "Alice"


def _transcript(*segments: Segment, cued: bool = False) -> Transcript:
    return Transcript(tuple(segments), "en", 20.0, "local", "base", Task.TRANSCRIBE, cued=cued)


def _turns(*spans: tuple[float, float, str]) -> tuple[SpeakerTurn, ...]:
    return tuple(SpeakerTurn(start, end, who) for start, end, who in spans)


def _word_speakers(t: Transcript) -> list[tuple[str, str | None]]:
    return [(w.text.strip(), w.speaker) for s in t.segments for w in s.words]


def test_words_take_the_turn_they_overlap_most_and_segments_split_at_the_change() -> None:
    words = (
        Word(0.0, 0.4, " Hello,", 0.9),
        Word(0.4, 0.9, " who", 0.8),
        Word(0.9, 1.4, " is", 0.7),  # 0.1 s in A's turn, 0.4 s in B's
        Word(1.5, 2.0, " it?", 0.6),
    )
    segment = Segment(0.0, 2.2, " Hello, who is it?", -0.3, 1.2, 0.05, words)
    labelled = label_transcript(_transcript(segment), _turns((0.0, 1.0, A), (1.0, 3.0, B)))
    assert [(s.start_s, s.end_s, s.text, s.speaker) for s in labelled.segments] == [
        (0.0, 0.9, "Hello, who", A),
        (0.9, 2.0, "is it?", B),
    ]
    assert _word_speakers(labelled) == [("Hello,", A), ("who", A), ("is", B), ("it?", B)]
    for part in labelled.segments:  # decoder figures stay with every part
        assert (part.avg_logprob, part.compression_ratio, part.no_speech_prob) == (-0.3, 1.2, 0.05)
    assert [w.probability for s in labelled.segments for w in s.words] == [0.9, 0.8, 0.7, 0.6]
    assert labelled.speakers == _turns((0.0, 1.0, A), (1.0, 3.0, B))


def test_one_voice_keeps_the_segment_as_it_was() -> None:
    segment = Segment(0.1, 1.9, "  Just me. ", -0.2, words=(Word(0.2, 0.8, " Just"), Word(0.8, 1.5, " me.")))
    labelled = label_transcript(_transcript(segment), _turns((0.0, 5.0, A)))
    assert labelled.segments == (
        dataclasses.replace(
            segment, speaker=A, words=tuple(dataclasses.replace(w, speaker=A) for w in segment.words)
        ),
    )


def test_bare_words_take_punctuation_and_casing_from_the_segment_text() -> None:
    """whisper-1 gives words without spaces or punctuation: the parts read as the segment text does."""
    segment = Segment(
        0.0,
        3.0,
        "Yes, of course. Thank you!",
        words=(Word(0.0, 0.5, "Yes"), Word(0.5, 0.7, "of"), Word(0.7, 1.2, "course"),
               Word(1.6, 2.0, "Thank"), Word(2.0, 2.4, "you")),
    )  # fmt: skip
    labelled = label_transcript(_transcript(segment), _turns((0.0, 1.3, A), (1.4, 3.0, B)))
    assert [(s.text, s.speaker) for s in labelled.segments] == [("Yes, of course.", A), ("Thank you!", B)]
    assert [w.text for s in labelled.segments for w in s.words] == ["Yes", "of", "course", "Thank", "you"]


def test_scripts_without_spaces_are_split_without_adding_one() -> None:
    words = (Word(0.0, 0.5, "你好"), Word(0.5, 0.9, "吗"), Word(1.1, 1.5, "我很"), Word(1.5, 2.0, "好"))
    segment = Segment(0.0, 2.0, "你好吗我很好", words=words)
    labelled = label_transcript(_transcript(segment), _turns((0.0, 1.0, A), (1.0, 2.0, B)))
    assert [(s.text, s.speaker) for s in labelled.segments] == [("你好吗", A), ("我很好", B)]


def test_a_word_between_turns_takes_the_nearest() -> None:
    words = (Word(1.0, 1.2, " early"), Word(2.05, 2.25, " late"), Word(9.0, 9.5, " after"))
    labelled = label_transcript(
        _transcript(Segment(1.0, 9.5, " early late after", words=words)),
        _turns((1.5, 1.9, A), (2.4, 3.0, B)),  # "early" before A, "late" nearer B, "after" past the end
    )
    assert _word_speakers(labelled) == [("early", A), ("late", B), ("after", B)]


def test_overlapping_turns_the_one_covering_most_of_the_word_wins() -> None:
    words = (Word(1.0, 2.0, " mostly"), Word(2.6, 2.8, " both"), Word(3.2, 4.0, " second"))
    turns = _turns((0.0, 3.5, A), (1.7, 4.0, B))  # B starts talking over A at 1.7 s
    labelled = label_transcript(_transcript(Segment(1.0, 4.0, " mostly both second", words=words)), turns)
    assert _word_speakers(labelled)[0] == ("mostly", A)  # 0.7 s of A, 0.3 s of B
    assert _word_speakers(labelled)[2] == ("second", B)  # 0.3 s of A, 0.8 s of B
    assert _word_speakers(labelled)[1][1] in {A, B}  # inside both: either voice, but always one


def test_a_zero_length_word_takes_the_turn_it_lies_in() -> None:
    words = (Word(1.0, 1.0, " a"), Word(5.0, 5.0, " b"))
    labelled = label_transcript(
        _transcript(Segment(1.0, 5.0, " a b", words=words)), _turns((0.5, 1.5, A), (4.0, 6.0, B))
    )
    assert _word_speakers(labelled) == [("a", A), ("b", B)]


def test_a_blank_word_never_makes_a_part_of_its_own() -> None:
    words = (Word(0.0, 0.5, " one"), Word(0.5, 1.5, " "), Word(1.5, 2.0, " two"))
    labelled = label_transcript(
        _transcript(Segment(0.0, 2.0, " one two", words=words)),
        _turns((0.0, 0.5, A), (0.5, 1.5, B), (1.5, 2.0, A)),  # the blank word lies in B's turn
    )
    assert [(s.text, s.speaker) for s in labelled.segments] == [(" one two", A)]  # kept as it was


def test_segments_without_words_take_the_turn_overlapping_them_most() -> None:
    segments = (Segment(0.0, 4.0, "Mostly the first."), Segment(4.5, 5.0, "In a gap, nearer B."))
    # The last word's middle (3.2 s of 4 s of speech, by letters) is still in A's turn: no split.
    labelled = label_transcript(_transcript(*segments), _turns((0.0, 3.6, A), (3.6, 4.0, B), (5.2, 8.0, B)))
    assert [(s.text, s.speaker, s.words) for s in labelled.segments] == [
        ("Mostly the first.", A, ()),
        ("In a gap, nearer B.", B, ()),
    ]


def test_no_turns_leave_the_transcript_unlabelled() -> None:
    t = _transcript(Segment(0.0, 1.0, " hi", words=(Word(0.0, 1.0, " hi"),)))
    labelled = label_transcript(dataclasses.replace(t, speakers=_turns((0.0, 1.0, A))), ())
    assert labelled == t
    assert label_cues(t, ()) == t


def test_translated_cues_take_the_speaker_of_their_span() -> None:
    translated = dataclasses.replace(
        _transcript(Segment(0.0, 2.0, "Hallo, wer ist da?"), Segment(2.0, 3.5, "Ich bin es."), cued=True),
        language="de",
        task=Task.TRANSLATE,
    )
    turns = _turns((2.1, 3.4, B), (0.1, 1.9, C))  # any order
    labelled = label_cues(translated, turns)
    assert [(s.text, s.speaker) for s in labelled.segments] == [("Hallo, wer ist da?", C), ("Ich bin es.", B)]
    assert labelled.speakers == (turns[1], turns[0])
    assert labelled.cued and labelled.language == "de"


def _reference(turns: tuple[SpeakerTurn, ...], start_s: float, end_s: float) -> str:
    """Every turn compared: most overlap, then least distance, then the later in order of start."""
    ordered = sorted(turns, key=lambda t: (t.start_s, t.end_s))

    def key(index: int) -> tuple[float, float, int]:
        turn = ordered[index]
        overlap = max(0.0, min(end_s, turn.end_s) - max(start_s, turn.start_s))
        return overlap, -max(0.0, turn.start_s - end_s, start_s - turn.end_s), index

    return ordered[max(range(len(ordered)), key=key)].speaker


@pytest.mark.parametrize("seed", range(40))
def test_assignment_matches_comparing_every_turn(seed: int) -> None:
    """The bisection over turns finds what comparing the word with every turn finds, also with
    overlapping turns, long turns that others fall inside, and gaps."""
    rng = random.Random(seed)
    turns = tuple(
        SpeakerTurn(
            start, start + rng.choice([rng.uniform(0.2, 3.0), rng.uniform(5.0, 30.0)]), f"S{rng.randrange(4)}"
        )
        for start in sorted(rng.uniform(0.0, 60.0) for _ in range(rng.randint(1, 25)))
    )
    words = []
    for _ in range(200):
        start = rng.uniform(-2.0, 70.0)
        words.append(Word(start, start + rng.uniform(0.0, 0.8), f" w{len(words)}"))
    segments = [Segment(w.start_s, w.end_s, w.text, words=(w,)) for w in words]
    labelled = label_transcript(_transcript(*segments), turns)
    assert [s.speaker for s in labelled.segments] == [_reference(turns, w.start_s, w.end_s) for w in words]


def test_an_untimed_segment_across_two_voices_is_split_by_their_speech() -> None:
    """Text from a model without word times: laid over the turns' speech by letters, the pause between
    the turns taking none of it."""

    segment = Segment(0.0, 10.0, "aaaa bbbb cccc dddd")
    turns = [SpeakerTurn(0.0, 4.0, "Speaker 1"), SpeakerTurn(6.0, 10.0, "Speaker 2")]
    t = label_transcript(
        Transcript((segment,), "en", 10.0, "openai", "gpt-transcribe", Task.TRANSCRIBE), turns
    )
    assert [(s.text, s.speaker) for s in t.segments] == [
        ("aaaa bbbb", "Speaker 1"),
        ("cccc dddd", "Speaker 2"),
    ]
    assert t.segments[0].start_s == 0.0 and t.segments[0].end_s <= 4.0
    assert t.segments[1].start_s >= 6.0 and t.segments[1].end_s == 10.0
