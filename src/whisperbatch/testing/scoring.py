"""Scoring a transcript against the script a recording was built from: word error rate, words lost, and
where a marker sentence ended up.

Words are compared after `normalise` (case, apostrophes and punctuation set aside), since Whisper's
spelling of "don't" or "o'clock" is not what these tests judge; what they judge is whether the words are
there, and at their time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

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
