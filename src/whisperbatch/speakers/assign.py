"""Speaker turns -> labels on a transcript's words and segments.

Why it is shaped this way:
- Diarization and transcription are made apart and meet only in time, so each word takes the voice of
  the turn it overlaps most. Word times and turn edges both drift by a few tens of milliseconds, so a
  word that overlaps no turn (in a gap between turns, or at the very edge of one) takes the nearest
  turn rather than none: every word of a labelled transcript has a speaker. Where two voices overlap,
  the turn covering most of the word wins.
- A Whisper segment often runs across a change of speaker; it is split there, so a segment (and every
  line and cue made from it) is one voice. The parts keep the segment's decoder figures, take their
  times from their own words, and their text from the segment's own text (its punctuation and casing,
  also where an engine gives bare words), so nothing is said twice or lost.
- Segments without words (models that return text only) have only their text and span to go by: where
  the span holds more than one voice, the text is laid over the turns' speech in it by its letters and
  split where the speaker changes. Translated cues take the turn that overlaps them most.
- Turns are searched by start with a running maximum of ends, so an hour of words against an hour of
  turns costs a bisection per word, not a scan.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Sequence

from whisperbatch.cues import word_texts
from whisperbatch.models import Segment, SpeakerTurn, Transcript, Word


def label_transcript(transcript: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """`transcript` with a speaker on every word and segment, each segment split where its words'
    speaker changes, and `speakers` set to `turns`. No turns: the transcript as it is, unlabelled."""
    if not turns:
        return dataclasses.replace(transcript, speakers=())
    timeline = _Timeline(turns)
    segments = tuple(part for segment in transcript.segments for part in _label_segment(segment, timeline))
    return dataclasses.replace(transcript, segments=segments, speakers=timeline.turns)


def label_cues(translated: Transcript, turns: Sequence[SpeakerTurn]) -> Transcript:
    """A translation (one segment per cue, at its source cue's times) with each cue's speaker: the turn
    overlapping the cue most; `speakers` set to `turns`. No turns: the translation as it is."""
    if not turns:
        return dataclasses.replace(translated, speakers=())
    timeline = _Timeline(turns)
    segments = tuple(
        dataclasses.replace(s, speaker=timeline.speaker(s.start_s, s.end_s)) for s in translated.segments
    )
    return dataclasses.replace(translated, segments=segments, speakers=timeline.turns)


def _label_segment(segment: Segment, timeline: _Timeline) -> list[Segment]:
    if not segment.words:
        return _label_untimed(segment, timeline)
    words = _label_words(segment.words, timeline)
    runs = [list(run) for _, run in itertools.groupby(words, key=lambda w: w.speaker)]
    if len(runs) == 1:
        return [dataclasses.replace(segment, words=tuple(words), speaker=words[0].speaker)]
    texts = iter(word_texts(segment))
    return [_part(segment, run, "".join(next(texts) for _ in run).strip()) for run in runs]


def _label_untimed(segment: Segment, timeline: _Timeline) -> list[Segment]:
    """A segment without word times (a model that returns text only) across several turns: its words
    are laid over the turns' speech inside it in proportion to their letters, and it is split where
    that gives another speaker. Speech is what the turns cover, so a pause inside the segment takes
    none of its words."""
    pieces = timeline.inside(segment.start_s, segment.end_s)
    tokens = segment.text.split()
    if len({speaker for *_, speaker in pieces}) < 2 or len(tokens) < 2:
        return [dataclasses.replace(segment, speaker=timeline.speaker(segment.start_s, segment.end_s))]
    speech_s = sum(b - a for a, b, _ in pieces)
    weights = [len(t) + 1 for t in tokens]
    total, done = sum(weights), 0
    placed: list[tuple[str, float, float, str]] = []  # token, start_s, end_s, speaker
    for token, weight in zip(tokens, weights, strict=True):
        start_s, _ = _at(pieces, speech_s * done / total, starting=True)
        _, speaker = _at(pieces, speech_s * (done + weight / 2) / total)  # where its middle falls
        done += weight
        end_s, _ = _at(pieces, speech_s * done / total)
        placed.append((token, start_s, max(start_s, end_s), speaker))
    runs = [list(run) for _, run in itertools.groupby(placed, key=lambda p: p[3])]
    return [
        dataclasses.replace(
            segment, start_s=run[0][1], end_s=run[-1][2], text=" ".join(p[0] for p in run), speaker=run[0][3]
        )
        for run in runs
    ]


def _at(
    pieces: Sequence[tuple[float, float, str]], speech_s: float, *, starting: bool = False
) -> tuple[float, str]:
    """The time and speaker `speech_s` seconds of speech into `pieces` (what starts where a piece ends
    starts in the next one)."""
    for a, b, speaker in pieces:
        if speech_s < b - a or (speech_s == b - a and not starting):
            return a + speech_s, speaker
        speech_s -= b - a
    a, b, speaker = pieces[-1]
    return b, speaker


def _label_words(words: Sequence[Word], timeline: _Timeline) -> list[Word]:
    """Each word with its speaker; a blank word (no text, nothing to show) goes with the word before it
    (the first word's: with the one after), so it never makes a part of its own."""
    spoken = [timeline.speaker(w.start_s, w.end_s) if w.text.strip() else None for w in words]
    known = [s for s in spoken if s is not None]
    previous = known[0] if known else timeline.speaker(words[0].start_s, words[-1].end_s)
    labelled = []
    for word, speaker in zip(words, spoken, strict=True):
        previous = speaker or previous
        labelled.append(dataclasses.replace(word, speaker=previous))
    return labelled


def _part(segment: Segment, words: list[Word], text: str) -> Segment:
    """One voice's run of the segment's words, as a segment of its own."""
    return dataclasses.replace(
        segment,
        start_s=min(w.start_s for w in words),
        end_s=max(w.end_s for w in words),
        text=text,
        words=tuple(words),
        speaker=words[0].speaker,
    )


class _Timeline:
    """The turns in order of start, with the furthest end reached so far at each: the turns that can
    overlap a span are found by bisection, and the search back stops where no earlier turn reaches."""

    def __init__(self, turns: Sequence[SpeakerTurn]) -> None:
        self.turns = tuple(sorted(turns, key=lambda t: (t.start_s, t.end_s)))
        self.starts = [t.start_s for t in self.turns]
        self.reach: list[int] = []  # index of the turn ending last among turns[: i + 1]
        for index, turn in enumerate(self.turns):
            if not self.reach or turn.end_s > self.turns[self.reach[-1]].end_s:
                self.reach.append(index)
            else:
                self.reach.append(self.reach[-1])

    def speaker(self, start_s: float, end_s: float) -> str:
        """The speaker of the turn overlapping start_s..end_s most; with no overlap, of the nearest turn
        (an equal overlap or distance: the turn that started later)."""
        end_s = max(end_s, start_s)
        after = bisect.bisect_left(self.starts, end_s)  # turns[:after] start before end_s
        candidates = [after] if after < len(self.turns) else []
        index = after - 1
        while index >= 0 and self.turns[self.reach[index]].end_s > start_s:
            candidates.append(index)
            index -= 1
        if index >= 0:
            candidates.append(self.reach[index])
        best = max(
            candidates,
            key=lambda i: (self._overlap(i, start_s, end_s), -self._distance(i, start_s, end_s), i),
        )
        return self.turns[best].speaker

    def inside(self, start_s: float, end_s: float) -> list[tuple[float, float, str]]:
        """The parts of the turns inside start_s..end_s, in order of start."""
        after = bisect.bisect_left(self.starts, end_s)
        found = []
        for index in range(after - 1, -1, -1):
            if self.turns[self.reach[index]].end_s <= start_s:
                break
            turn = self.turns[index]
            if turn.end_s > start_s:
                found.append((max(start_s, turn.start_s), min(end_s, turn.end_s), turn.speaker))
        return sorted(found)

    def _overlap(self, index: int, start_s: float, end_s: float) -> float:
        turn = self.turns[index]
        return max(0.0, min(end_s, turn.end_s) - max(start_s, turn.start_s))

    def _distance(self, index: int, start_s: float, end_s: float) -> float:
        turn = self.turns[index]
        return max(0.0, turn.start_s - end_s, start_s - turn.end_s)
