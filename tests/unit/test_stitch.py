"""Hallucination filters, timeline placement and prompt carry-over."""

from __future__ import annotations

from pathlib import Path

from whisperbatch.engines.openai import spread_over_speech
from whisperbatch.models import Chunk, EngineResult, Segment, Span, Word
from whisperbatch.speech import uncovered
from whisperbatch.stitch import estimate_tokens, filter_segments, place, prompt_for, stitch


def test_filters_drop_what_whisper_invents() -> None:
    segs = [
        Segment(0, 2, "Hello there."),
        Segment(2, 4, "Thank you for watching.", avg_logprob=-1.3, no_speech_prob=0.8),
        Segment(4, 6, "na na na na na na na na na na na na na na na na na na", compression_ratio=3.1),
        Segment(6, 8, "   "),
        Segment(8, 9, "Yes."),
        Segment(9, 10, "Yes."),
        Segment(10, 11, "Yes."),
        Segment(11, 12, "Yes."),
        Segment(12, 13, "the the the the the the the the the the the the the the"),
        Segment(13, 14, "Quiet but real.", avg_logprob=-1.5, no_speech_prob=0.2),
    ]
    kept = [s.text for s in filter_segments(segs)]
    assert kept == ["Hello there.", "Yes.", "Yes.", "Quiet but real."]


def test_place_shifts_by_exact_offset_and_clamps_to_chunk() -> None:
    chunk = Chunk(index=3, offset_s=3601.25, duration_s=10.0, path=Path("c.mp3"), size_bytes=1)
    result = EngineResult(text="", segments=(Segment(0.5, 4.0, " a "), Segment(8.0, 12.0, "b")))
    placed = place(chunk, result)
    assert [(s.start_s, s.end_s, s.text) for s in placed] == [
        (3601.75, 3605.25, "a"),
        (3609.25, 3611.25, "b"),
    ]


def _said(text: str, start_s: float, seconds_per_word: float) -> tuple[Word, ...]:
    return tuple(
        Word(start_s + i * seconds_per_word, start_s + (i + 1) * seconds_per_word, f" {w}")
        for i, w in enumerate(text.split())
    )


def test_text_the_audio_cannot_hold_is_taken_out_and_no_word_is_left_without_time() -> None:
    """Whisper writing on past the speech in its window: the sentences it expects next, stamped at the
    window's end (zero-length), or past the end of the audio it was given."""
    chunk = Chunk(index=0, offset_s=100.0, duration_s=6.0, path=Path("c.wav"), size_bytes=1)
    real = _said("The library opens early.", 0.3, 0.35)
    invented = tuple(w.shifted(4.0) for w in _said("Please remember to water the plants.", 0.0, 0.0))
    past_end = _said("The train leaves every hour.", 6.2, 0.3)
    result = EngineResult(
        text="",
        segments=(
            Segment(
                0.3,
                4.0,
                "The library opens early. Please remember to water the plants.",
                words=real + invented,
            ),
            Segment(4.0, 4.0, "The train to the airport leaves every twenty minutes."),  # no words, no time
            Segment(6.2, 7.7, "The train leaves every hour.", words=past_end),
            Segment(4.5, 4.5, "Yes.", words=(Word(4.5, 4.5, " Yes."),)),  # one word stamped at one instant
        ),
    )
    placed = place(chunk, result)
    assert [s.text for s in placed] == ["The library opens early.", "Yes."]
    assert placed[0].start_s == 100.3 and placed[0].end_s == 100.0 + real[-1].end_s
    words = [w for s in placed for w in s.words]
    assert all(w.end_s > w.start_s and w.start_s >= 100.0 and w.end_s <= 106.0 for w in words), words
    assert all(s.end_s > s.start_s for s in placed)
    # The speech under text that was taken out is uncovered again: it is asked about once more.
    speech = (Span(0.3, 1.7), Span(2.5, 4.0))
    assert uncovered(speech, filter_segments(result.segments)) == [Span(2.5, 4.0)]


def test_a_window_written_twice_keeps_its_first_copy() -> None:
    """A decoding loop: Whisper wrote a window's sentences as one segment, then went back and wrote them
    again, the copy's words timed over the first's. Stitched, the copy became zero-length cues."""
    first = _said("The library opens at eight. Please water the plants. The train leaves at noon.", 0.5, 0.4)
    copy = [
        _said("Please water the plants.", 2.5, 0.4),
        _said("The train leaves at noon.", 4.1, 0.4),
    ]
    segments = (
        Segment(0.5, first[-1].end_s, " ".join(w.text.strip() for w in first), words=first),
        *(Segment(c[0].start_s, c[-1].end_s, " ".join(w.text.strip() for w in c), words=c) for c in copy),
        Segment(7.0, 8.2, "Then something new.", words=_said("Then something new.", 7.0, 0.4)),
    )
    kept = filter_segments(segments)
    assert [s.text for s in kept] == [segments[0].text, "Then something new."]
    placed = stitch([place(Chunk(0, 0.0, 9.0, Path("c.wav"), 1), EngineResult(text="", segments=segments))])
    assert all(s.end_s > s.start_s for s in placed)


def test_stitch_keeps_cues_monotonic() -> None:
    out = stitch([[Segment(0, 5, "a")], [Segment(4.5, 6, "b"), Segment(7, 8, "c")]])
    assert [(s.start_s, s.end_s) for s in out] == [(0, 5), (5, 6), (7, 8)]


def test_prompt_carries_the_tail_within_the_token_budget() -> None:
    previous = " ".join(f"word{i}" for i in range(500))
    p = prompt_for("Names: Zoë, Ngozi.", previous, 224)
    assert p is not None and p.startswith("Names: Zoë, Ngozi. ") and p.endswith("word499")
    assert estimate_tokens(p) <= 224
    assert prompt_for(None, "", 224) is None
    assert prompt_for("only mine", "", 224) == "only mine"


def test_untimed_text_is_spread_over_utterances() -> None:
    spans = (Span(0.2, 4.0), Span(10.0, 14.0), Span(20.0, 21.0))
    segs = spread_over_speech("First thing here. Second thing now. Third.", spans)
    assert [(s.start_s, s.text) for s in segs] == [
        (0.2, "First thing here."),
        (10.0, "Second thing now."),
        (20.0, "Third."),
    ]
    assert spread_over_speech("", spans) == ()
    # Without sentence ends the words still go out in order, each stretch about its share.
    plain = spread_over_speech("no punctuation at all in this answer of ten short words", spans)
    assert " ".join(s.text for s in plain) == "no punctuation at all in this answer of ten short words"
    assert [s.start_s for s in plain] == [0.2, 10.0, 20.0]
    # A sentence ends after its closing quote, and a CJK end mark needs no space after it.
    even = (Span(0.0, 3.0), Span(10.0, 13.0), Span(20.0, 23.0))
    quoted = spread_over_speech('He said "it closes now." The milk is cold here. It costs 3.5 euros!', even)
    assert [s.text for s in quoted] == [
        'He said "it closes now."',
        "The milk is cold here.",
        "It costs 3.5 euros!",
    ]
    cjk = spread_over_speech("你好。今天很冷！再见。", even)
    assert [(s.start_s, s.text) for s in cjk] == [(0.0, "你好。"), (10.0, "今天很冷！"), (20.0, "再见。")]


def test_untimed_text_never_gives_a_stretch_more_than_it_can_hold() -> None:
    """A blip of speech between two sentences takes no more text than its seconds hold, so nothing laid
    over speech is later taken for text the audio cannot hold, and every word is kept."""
    spans = (Span(0.0, 0.3), Span(1.0, 1.4), Span(2.1, 2.4), Span(3.1, 5.1))
    text = "Absolutely wonderful. Unbelievable, honestly. The train leaves at noon. The train leaves at noon."
    segs = spread_over_speech(text, spans)
    assert " ".join(s.text for s in segs) == text
    assert filter_segments(segs) == list(segs)


def test_a_sentence_after_a_pause_starts_on_the_speech_after_the_pause() -> None:
    """A json-only answer of four sentences, the second spoken after a six-second pause, and a model
    that wrote no full stops: each sentence lands on its own stretch of speech, none over the pause."""
    spans = (Span(0.0, 4.3), Span(10.3, 12.8), Span(13.4, 17.6), Span(18.2, 22.4))
    text = (
        "The library opens at 8 in the morning and closes at 6 in the evening "
        "Marker 3, the silver bicycle is waiting The train to the airport leaves every 20 minutes "
        "Please remember to water the plants on the balcony before the weekend"
    )
    segs = spread_over_speech(text, spans)
    assert [(s.start_s, s.text.split()[0]) for s in segs] == [
        (0.0, "The"),
        (10.3, "Marker"),
        (13.4, "The"),
        (18.2, "Please"),
    ]
