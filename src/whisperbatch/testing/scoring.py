"""Scoring a transcript against the script a recording was built from: word error rate, words lost,
where a marker sentence ended up, and who said what (diarization error rate, words given the right
speaker).

Words are compared after `normalise` (case, apostrophes and punctuation set aside), since Whisper's
spelling of "don't" or "o'clock" is not what these tests judge; what they judge is whether the words are
there, and at their time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .speechbuilder import Placed

_APOSTROPHES = re.compile(r"['’`]")
_NON_WORD = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> str:
    """Lowercase, apostrophes dropped (don't → dont), other punctuation as spaces, spaces collapsed."""
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split())


def _words_output(reference: str, hypothesis: str) -> Any:
    import jiwer

    return jiwer.process_words(normalise(reference), normalise(hypothesis))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER after `normalise`; an empty reference scores 0 against an empty hypothesis, else 1."""
    if not normalise(reference):
        return 0.0 if not normalise(hypothesis) else 1.0
    return float(_words_output(reference, hypothesis).wer)


def words_lost(reference: str, hypothesis: str) -> int:
    """Reference words the hypothesis dropped: deletions in jiwer's alignment (substitutions not counted)."""
    if not normalise(reference):
        return 0
    return int(_words_output(reference, hypothesis).deletions)


Cue = tuple[float, float, str]


_SRT_TIME = re.compile(r"(\d+):(\d\d):(\d\d)[,.](\d{3})")


def parse_srt(text: str) -> list[Cue]:
    """SRT (or VTT) cues as (start_s, end_s, text), the shape `find_marker` takes."""
    cues: list[Cue] = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        lines = block.splitlines()
        timing = next((i for i, line in enumerate(lines) if " --> " in line), None)
        if timing is None:
            continue
        times = [_SRT_TIME.search(part) for part in lines[timing].split(" --> ")[:2]]
        secs = [
            int(h) * 3600 + int(m) * 60 + int(sec) + int(ms) / 1000
            for h, m, sec, ms in (t.groups() for t in times if t is not None)
        ]
        if len(secs) == 2:
            cues.append((secs[0], secs[1], " ".join(lines[timing + 1 :])))
    return cues


def find_marker(cues: Sequence[Cue], marker: Placed, *, share: float = 0.7, span: int = 3) -> Cue | None:
    """The cue that carries `marker`: (start_s, end_s, text), or None when it was lost.

    The marker's normalised words are aligned, in order, with the words of all cues in time order (a
    local alignment, Smith-Waterman: a word matched scores 2, one misheard, missing or extra costs 1).
    The best alignment must match at least `share` of the marker's words; among equally good ones the
    one starting nearest the marker's time wins. Whisper may split a sentence over neighbouring cues, so
    the cues from its first to its last matched word come back merged (first start, last end, texts
    joined), up to `span` of them. In order, not as a bag of words: a word of the sentence before (the
    "of" in "out of ink") must not pull that sentence's cue into a marker misheard as "roof on the".
    """
    wanted = normalise(marker.text).split()
    tokens = [(word, k) for k, cue in enumerate(cues) for word in normalise(cue[2]).split()]
    # Per cell: (score, words matched, index of the alignment's first token).
    row: list[tuple[int, int, int]] = [(0, 0, j) for j in range(len(tokens) + 1)]
    ends: list[tuple[int, int, int, int]] = []  # (score, matched, first token, last token)
    for want in wanted:
        new = [(0, 0, 0)]
        for j, (word, _) in enumerate(tokens, start=1):
            hit = word == want
            s, m, first = row[j - 1]
            options = [
                (s + (2 if hit else -1), m + hit, first),
                (row[j][0] - 1, row[j][1], row[j][2]),
                (new[j - 1][0] - 1, new[j - 1][1], new[j - 1][2]),
                (0, 0, j),
            ]
            best_here = max(options, key=lambda o: (o[0], o[1]))
            new.append(best_here)
            if hit and best_here == options[0]:
                ends.append((best_here[0], best_here[1], best_here[2], j - 1))
        row = new
    found = [e for e in ends if e[1] >= share * len(wanted)]
    if not found:
        return None
    top = max(e[0] for e in found)
    _, _, first, last = min(
        (e for e in found if e[0] == top), key=lambda e: abs(cues[tokens[e[2]][1]][0] - marker.start_s)
    )
    a, b = tokens[first][1], tokens[last][1]
    if b - a + 1 > span:
        return None
    run = cues[a : b + 1]
    return (run[0][0], run[-1][1], " ".join(c[2].strip() for c in run))


Labelled = tuple[float, float, str]  # (start_s, end_s, speaker)
_Speaker = TypeVar("_Speaker", str, str | None)
FRAME_S = 0.01  # the time step DER is counted in


@dataclass(frozen=True)
class DerReport:
    """Diarization error in seconds of scored speech, and their sum's share of the reference speech."""

    missed_s: float
    false_alarm_s: float
    confusion_s: float
    total_s: float
    der: float


def _frames(turns: Sequence[Labelled], labels: Sequence[str], n: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """(labels, frames): whether each label speaks in each FRAME_S frame."""
    grid = np.zeros((len(labels), n), dtype=bool)
    row = {label: k for k, label in enumerate(labels)}
    for start, end, label in turns:
        grid[row[label], round(start / FRAME_S) : round(end / FRAME_S)] = True
    return grid


def _best_mapping(counts: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
    """(row, column) pairs of the one-to-one mapping that maximises the summed counts."""
    from scipy.optimize import linear_sum_assignment

    if counts.size == 0:
        return []
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def der(
    reference: Sequence[Labelled],
    hypothesis: Sequence[Labelled],
    *,
    collar_s: float = 0.25,
    skip_overlap: bool = False,
) -> DerReport:
    """Diarization error rate the way NIST md-eval and pyannote.metrics count it, in 10-ms frames.

    `collar_s` either side of every reference turn's start and end is not scored (md-eval's `-c`;
    pyannote.metrics' `collar` is the whole width, twice this); with `skip_overlap` neither is any frame
    where the reference has two speakers or more. Per scored frame with R reference and H hypothesis
    speakers: missed max(0, R - H), false alarm max(0, H - R), confusion min(R, H) less
    the speakers matched under the one-to-one mapping of hypothesis to reference labels that maximises
    their time together (Hungarian). `der` is the three summed over the reference speech scored; with
    no reference speech it is 0 when there is no error and infinite otherwise.
    """
    end_s = max((e for _, e, _ in [*reference, *hypothesis]), default=0.0) + collar_s
    n = round(end_s / FRAME_S) + 1
    ref_labels = sorted({label for _, _, label in reference})
    hyp_labels = sorted({label for _, _, label in hypothesis})
    ref, hyp = _frames(reference, ref_labels, n), _frames(hypothesis, hyp_labels, n)
    scored = np.ones(n, dtype=bool)
    collar = round(collar_s / FRAME_S)
    for start, end, _ in reference:
        for edge in (round(start / FRAME_S), round(end / FRAME_S)):
            scored[max(0, edge - collar) : edge + collar] = False
    if skip_overlap:
        scored &= ref.sum(axis=0) < 2
    ref, hyp = ref[:, scored], hyp[:, scored]
    counts = ref.astype(np.int64) @ hyp.T.astype(np.int64)  # frames each pair speaks together
    matched = sum(int(counts[r, h]) for r, h in _best_mapping(counts))
    r_count, h_count = ref.sum(axis=0), hyp.sum(axis=0)
    missed = int(np.maximum(0, r_count - h_count).sum())
    false_alarm = int(np.maximum(0, h_count - r_count).sum())
    confusion = int(np.minimum(r_count, h_count).sum()) - matched
    total = int(r_count.sum())
    errors = missed + false_alarm + confusion
    rate = errors / total if total else (0.0 if errors == 0 else float("inf"))
    return DerReport(missed * FRAME_S, false_alarm * FRAME_S, confusion * FRAME_S, total * FRAME_S, rate)


def _tokens(words: Sequence[tuple[str, _Speaker]]) -> list[tuple[str, _Speaker]]:
    """Each word `normalise`d (which may split it: "well-known"), every token keeping its speaker."""
    return [(token, speaker) for text, speaker in words for token in normalise(text).split()]


def word_attribution(
    reference_words: Sequence[tuple[str, str]], hypothesis_words: Sequence[tuple[str, str | None]]
) -> float:
    """The share of reference words, among those the hypothesis has at their place, whose hypothesis
    speaker is the right one once hypothesis labels are mapped one-to-one onto reference labels.

    Both are (word, speaker) in spoken order (a hypothesis word may have no speaker: never right). The
    two word sequences are aligned after `normalise` (jiwer's alignment); words matched or substituted
    are at their place, words inserted or deleted take no part (the word error rate counts them). The
    mapping maximises the aligned words it gets right. No aligned word at all scores 0.
    """
    import jiwer

    ref, hyp = _tokens(reference_words), _tokens(hypothesis_words)
    if not ref or not hyp:
        return 0.0
    out = jiwer.process_words(" ".join(w for w, _ in ref), " ".join(w for w, _ in hyp))
    pairs = [
        (ref[chunk.ref_start_idx + k][1], hyp[chunk.hyp_start_idx + k][1])
        for chunk in out.alignments[0]
        if chunk.type in ("equal", "substitute")
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx)
    ]
    if not pairs:
        return 0.0
    ref_labels = sorted({r for r, _ in pairs})
    hyp_labels = sorted({h for _, h in pairs if h is not None})
    counts = np.zeros((len(ref_labels), len(hyp_labels)), dtype=np.int64)
    for r, h in pairs:
        if h is not None:
            counts[ref_labels.index(r), hyp_labels.index(h)] += 1
    right = sum(int(counts[r, h]) for r, h in _best_mapping(counts))
    return right / len(pairs)
