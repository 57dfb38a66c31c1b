"""The coverage checks on made-up input: hysteresis, speech spans, uncovered speech, overlong segments,
and text placed in gaps and words dealt to segments."""

from __future__ import annotations

import numpy as np
import pytest

from whisperbatch.models import Segment, Span, Word
from whisperbatch.speech import (
    overlong,
    speech_spans,
    uncovered,
    voiced_frames,
)


def test_hysteresis_starts_high_and_ends_low() -> None:
    probs = np.array([0.1, 0.4, 0.6, 0.4, 0.4, 0.2, 0.45, 0.1], dtype=np.float32)
    expected = [False, False, True, True, True, False, False, False]  # 0.45 alone never starts speech
    assert voiced_frames(probs, 0.5).tolist() == expected


def test_speech_spans_join_short_gaps() -> None:
    voiced = np.zeros(300, dtype=bool)
    voiced[10:50] = True
    voiced[70:100] = True  # gap of 0.2 s: same utterance
    voiced[200:260] = True  # gap of 1 s: a new one
    assert speech_spans(voiced, min_silence_frames=50) == [(10, 100), (200, 260)]
    assert speech_spans(np.zeros(10, dtype=bool), 50) == []


def _words(*spans: tuple[float, float]) -> tuple[Word, ...]:
    return tuple(Word(a, b, " w") for a, b in spans)


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        # words all along the speech: nothing uncovered
        ([Segment(0, 10, "x", words=_words(*[(t, t + 0.4) for t in np.arange(0.2, 10, 0.5)]))], []),
        # the model stopped after 4 s of 10: the rest is uncovered
        ([Segment(0, 10, "x", words=_words(*[(t, t + 0.4) for t in np.arange(0.2, 4, 0.5)]))], [(4.5, 10.0)]),
        # no words: the segment itself is what covers
        ([Segment(0, 6, "x")], [(6.0, 10.0)]),
        # a blank segment covers nothing
        ([Segment(0, 10, "  ")], [(0.0, 10.0)]),
    ],
)
def test_uncovered_speech(segments: list[Segment], expected: list[tuple[float, float]]) -> None:
    gaps = uncovered([Span(0.0, 10.0)], segments)
    assert [(round(g.start_s, 1), round(g.end_s, 1)) for g in gaps] == expected


def test_short_uncovered_speech_is_not_a_gap() -> None:
    assert uncovered([Span(0.0, 0.8)], []) == []
    assert uncovered([Span(0.0, 1.5)], []) == [Span(0.0, 1.5)]


def test_overlong_segment_is_suspect() -> None:
    speech = [Span(0.0, 3.0), Span(20.0, 23.0)]
    assert overlong(speech, [Segment(0.0, 29.0, "one long line over a long silence")])
    assert not overlong(speech, [Segment(0.0, 3.2, "a"), Segment(20.0, 23.0, "b")])


def test_text_found_in_a_gap_is_placed_once_in_order() -> None:
    from whisperbatch.models import EngineResult
    from whisperbatch.pipeline.repair import _fill

    def w(a: float, b: float, t: str) -> Word:
        return Word(a, b, f" {t}")

    # One segment whose words skip 4-8 s: the model lost "lost words here".
    first = Segment(
        0.0,
        10.0,
        "one two and three",
        words=(w(0, 1, "one"), w(1, 2, "two"), w(3, 3.5, "and"), w(8.5, 9.5, "three")),
    )
    gap = Span(3.9, 8.1)
    # Asked again over 3.4-8.6 s: the answer also hears the edges ("and" and "three" again).
    answer_words = (
        w(0.0, 0.3, "and"),
        w(0.8, 1.5, "lost"),
        w(1.6, 2.4, "words"),
        w(2.6, 4.0, "here"),
        w(5.1, 5.3, "three"),
    )
    answer = EngineResult(
        "and lost words here three", (Segment(0.0, 5.2, "and lost words here three", words=answer_words),)
    )
    result = _fill(EngineResult(first.text, (first,)), answer, 3.4, gap)
    assert result.text == "one two and lost words here three"
    starts = [seg.start_s for seg in result.segments]
    assert starts == sorted(starts) and len(result.segments) == 3


def test_api_words_are_dealt_to_segments_in_text_order() -> None:
    from whisperbatch.engines.openai import attach_words

    segments = (Segment(0.0, 5.0, "Hello there."), Segment(5.0, 5.6, "Yes."))
    words = (Word(0.2, 0.6, "Hello"), Word(0.7, 1.0, "there"), Word(4.7, 4.95, "Yes"))  # times disagree
    attached = attach_words(segments, words)
    assert [len(s.words) for s in attached] == [2, 1]
