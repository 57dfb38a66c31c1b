"""The recording builder's scoring helpers: word error rate, words lost, markers found."""

from __future__ import annotations

import pytest

from whisperbatch.testing.scoring import find_marker, word_error_rate, words_lost
from whisperbatch.testing.speechbuilder import Placed


def test_scoring_helpers() -> None:
    ref = "The purple giraffe borrowed my umbrella on Tuesday. It rained."
    assert word_error_rate(ref, "the purple giraffe, borrowed my umbrella on tuesday it rained") == 0.0
    assert word_error_rate(ref, "The purple giraffe borrowed my umbrella.") == pytest.approx(4 / 10)
    assert words_lost(ref, "The purple giraffe borrowed my umbrella.") == 4
    assert words_lost(ref, "The purple cat borrowed my umbrella on Tuesday. It rained.") == 0
    assert word_error_rate("Don't stop", "dont stop") == 0.0 and word_error_rate("", "") == 0.0
    marker = Placed("The purple giraffe borrowed my umbrella on Tuesday.", 40.0, 42.5, True)
    cues = [
        (30.0, 33.0, "Some other words."),
        (39.9, 41.2, "The purple giraffe"),
        (41.2, 42.6, "borrowed my umbrella on Tuesday."),
        (60.0, 62.0, "The purple giraffe borrowed nothing."),
    ]
    assert find_marker(cues, marker) == (39.9, 42.6, "The purple giraffe borrowed my umbrella on Tuesday.")
    assert find_marker([c for c in cues if c[0] != 41.2], marker) is None
    # Misheard ("roof on the"), after a sentence holding the missing word: the marker's own cue.
    golden = Placed("The golden elephant danced on the roof of the cathedral.", 165.0, 168.0, True)
    near = [
        (153.5, 156.0, "The printer ran out of ink in the middle of my report."),
        (164.7, 168.2, "The golden"),
        (168.2, 169.0, "elephant danced on the roof on the cathedral."),
    ]
    heard = "The golden elephant danced on the roof on the cathedral."
    assert find_marker(near, golden) == (164.7, 169.0, heard)
