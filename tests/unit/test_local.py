"""The offline engine's own rules, without a model: decode windows, device choice, words kept inside
the clip they were decoded from."""

from __future__ import annotations

import itertools

import pytest

from whisperbatch.engines.local import device_and_compute_type, heard_in, speech_clips
from whisperbatch.models import Segment, Span, Word


def test_speech_is_decoded_in_windows_of_at_most_30_s() -> None:
    """Batched decoding hears our own utterances, grouped: neighbours joined while the window stays
    under 30 s, a longer utterance split, a little audio kept either side, nothing past the chunk."""
    speech = (Span(0.1, 4.0), Span(5.0, 12.0), Span(14.0, 29.0), Span(31.0, 95.0), Span(96.0, 99.8))
    clips = speech_clips(speech, 100.0)
    assert clips[0] == {"start": 0.0, "end": pytest.approx(29.2)}
    assert all(a["end"] <= b["start"] + 1e-9 for a, b in itertools.pairwise(clips))  # no overlap
    assert all(c["end"] - c["start"] <= 30.0 + 1e-9 for c in clips)
    covered = [(c["start"], c["end"]) for c in clips]
    for span in speech:  # every moment of speech is inside some window
        t = span.start_s
        while t < span.end_s:
            assert any(a <= t <= b for a, b in covered), (t, covered)
            t += 0.1
    assert clips[-1]["end"] == 100.0
    assert speech_clips((), 10.0) == []


def test_auto_device_is_the_gpu_with_float16_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    assert device_and_compute_type("auto", "auto") == (("cuda", "float16") if gpus else ("cpu", "int8"))
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert device_and_compute_type("auto", "auto") == ("cuda", "float16")
    assert device_and_compute_type("cpu", "auto") == ("cpu", "int8")
    assert device_and_compute_type("auto", "int8_float16") == ("cuda", "int8_float16")


def test_words_stamped_past_the_clip_they_were_decoded_from_are_not_kept() -> None:
    clips = [{"start": 0.0, "end": 4.2}, {"start": 10.0, "end": 14.0}]
    said = (Word(0.5, 1.0, " Real"), Word(1.0, 1.5, " words"), Word(1.5, 2.0, " here."))
    written_on = (Word(5.0, 5.5, " Written"), Word(5.5, 6.0, " on."))
    segments = (
        Segment(0.5, 6.0, "Real words here. Written on.", words=said + written_on),
        Segment(6.0, 8.0, "Nothing there.", words=(Word(6.0, 7.0, " Nothing"), Word(7.0, 8.0, " there."))),
        Segment(10.5, 12.0, "Kept whole."),
    )
    kept = heard_in(segments, clips)
    assert [(s.start_s, s.end_s, s.text) for s in kept] == [
        (0.5, 2.0, "Real words here."),
        (10.5, 12.0, "Kept whole."),
    ]
    assert kept[0].words == said
