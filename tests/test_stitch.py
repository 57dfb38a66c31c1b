"""Hallucination filters, timeline placement and prompt carry-over."""

from __future__ import annotations

from pathlib import Path

from whisperbatch.engines.openai import spread_over_speech
from whisperbatch.models import Chunk, EngineResult, Segment, Span
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
    assert len(spread_over_speech("No punctuation at all", spans)) == 1
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
