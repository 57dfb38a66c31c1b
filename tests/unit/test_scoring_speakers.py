"""DER and word attribution against hand-made turns whose answers are known."""

from __future__ import annotations

import pytest

from whisperbatch.testing.scoring import DerReport, der, word_attribution

REF = [(0.0, 10.0, "A"), (10.0, 20.0, "B")]


def _close(report: DerReport, missed: float, fa: float, confusion: float, total: float) -> None:
    got = (report.missed_s, report.false_alarm_s, report.confusion_s, report.total_s)
    assert got == pytest.approx((missed, fa, confusion, total), abs=1e-9)
    assert report.der == pytest.approx((missed + fa + confusion) / total)


def test_a_perfect_hypothesis_scores_zero() -> None:
    _close(der(REF, REF, collar_s=0.0), 0, 0, 0, 20.0)


def test_labels_are_mapped_one_to_one_whatever_their_names() -> None:
    _close(der(REF, [(0.0, 10.0, "Speaker 2"), (10.0, 20.0, "Speaker 1")], collar_s=0.0), 0, 0, 0, 20.0)


def test_one_label_for_two_voices_confuses_the_shorter_one() -> None:
    report = der([(0.0, 12.0, "A"), (12.0, 20.0, "B")], [(0.0, 20.0, "x")], collar_s=0.0)
    _close(report, 0, 0, 8.0, 20.0)


def test_speech_the_hypothesis_lacks_is_missed() -> None:
    _close(der(REF, [(0.0, 10.0, "x"), (12.0, 20.0, "y")], collar_s=0.0), 2.0, 0, 0, 20.0)


def test_speech_the_reference_lacks_is_a_false_alarm() -> None:
    _close(der(REF, [*REF, (21.0, 24.0, "B")], collar_s=0.0), 0, 3.0, 0, 20.0)


def test_the_collar_forgives_a_boundary_a_little_off() -> None:
    late = [(0.0, 10.2, "x"), (10.2, 20.0, "y")]
    _close(der(REF, late, collar_s=0.0), 0, 0, 0.2, 20.0)
    # ±0.25 s around 0, 10 (twice) and 20 is not scored: 0.25 + 0.5 + 0.25 s.
    _close(der(REF, late), 0, 0, 0, 19.0)
    _close(der(REF, [(0.0, 10.5, "x"), (10.5, 20.0, "y")]), 0, 0, 0.25, 19.0)


def test_an_extra_hypothesis_speaker_is_confusion() -> None:
    split = [(0.0, 10.0, "x"), (10.0, 15.0, "y"), (15.0, 20.0, "z")]
    _close(der(REF, split, collar_s=0.0), 0, 0, 5.0, 20.0)


def test_overlap_counts_both_speakers_unless_skipped() -> None:
    ref = [(0.0, 10.0, "A"), (8.0, 20.0, "B")]
    one_at_a_time = [(0.0, 10.0, "x"), (10.0, 20.0, "y")]
    _close(der(ref, one_at_a_time, collar_s=0.0), 2.0, 0, 0, 22.0)
    _close(der(ref, one_at_a_time, collar_s=0.0, skip_overlap=True), 0, 0, 0, 18.0)


def test_no_reference_speech() -> None:
    assert der([], [], collar_s=0.0).der == 0.0
    assert der([], [(0.0, 1.0, "x")], collar_s=0.0).der == float("inf")


REF_WORDS = [("Hello,", "A"), ("how", "A"), ("are", "A"), ("you?", "A"), ("Fine,", "B"), ("thanks.", "B")]


def test_words_with_the_right_speakers_under_other_names_all_count() -> None:
    hyp = [("hello", "S2"), ("how", "S2"), ("are", "S2"), ("you", "S2"), ("fine", "S1"), ("thanks", "S1")]
    assert word_attribution(REF_WORDS, hyp) == 1.0


def test_a_word_given_to_the_other_speaker_is_wrong() -> None:
    hyp = [("hello", "x"), ("how", "x"), ("are", "x"), ("you", "y"), ("fine", "y"), ("thanks", "y")]
    assert word_attribution(REF_WORDS, hyp) == pytest.approx(5 / 6)


def test_missing_and_extra_words_take_no_part_misheard_ones_do() -> None:
    hyp = [("hello", "x"), ("how", "x"), ("you", "y"), ("vine", "y"), ("thanks", "y"), ("um", "x")]
    # "are" dropped, "fine" misheard, "um" added: five reference words aligned, "you" given to B's voice.
    assert word_attribution(REF_WORDS, hyp) == pytest.approx(4 / 5)


def test_an_extra_hypothesis_speaker_cannot_be_mapped_twice() -> None:
    hyp = [("hello", "x"), ("how", "x"), ("are", "z"), ("you", "z"), ("fine", "y"), ("thanks", "y")]
    assert word_attribution(REF_WORDS, hyp) == pytest.approx(4 / 6)


def test_unlabelled_words_are_never_right_and_nothing_aligned_scores_zero() -> None:
    hyp: list[tuple[str, str | None]] = [(w, None) for w, _ in REF_WORDS]
    assert word_attribution(REF_WORDS, hyp) == 0.0
    assert word_attribution(REF_WORDS, []) == 0.0
