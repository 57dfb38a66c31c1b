"""How speaker labels appear in the outputs, each format in its own convention.

Why it is shaped this way:
- Each format already has a way to say who speaks, which players and editors understand: WebVTT's
  voice span (`<v Speaker 1>`), a bracketed label before the text in SRT (which has no markup for
  it), the label before each turn in plain text, and RTTM, the standard diarization output that
  scoring tools read. Writers keep the formats; this module only adds the labels, so a transcript
  without labels renders exactly as before.
- Subtitles show a quick exchange as one two-line cue, each line a turn with a leading dash (the
  dialogue convention of broadcast style guides); only whole turns that each fit on one line are
  paired, so a line is never a fragment of a longer turn and no cue mixes voices otherwise.
- RTTM identifies a recording and a speaker by single fields separated by spaces, so whitespace in
  either becomes "_".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from typing import TextIO

from whisperbatch.cues import PAUSE_S, Cue, CueStyle, to_ms
from whisperbatch.models import Segment, Transcript

_DASH = "- "
_PAUSE_MS = round(PAUSE_S * 1000)


def dialogue(cues: Sequence[Cue], style: CueStyle) -> list[Cue]:
    """`cues` with each pair of short whole turns of two speakers in quick succession shown as one
    two-line cue, a line per speaker: both lines fit with the dash, neither speaker's turn goes on in
    the cue before or after, the second starts within `PAUSE_S` of the first's end, and the pair stays
    within `max_cue_s`. Other cues are kept as they are."""
    paired: list[Cue] = []
    index = 0
    while index < len(cues):
        if index + 1 < len(cues) and _pairs(cues, index, style):
            first, second = cues[index], cues[index + 1]
            lines, speakers = (*first.lines, *second.lines), (*first.speakers, *second.speakers)
            paired.append(Cue(first.start_ms, second.end_ms, lines, speakers))
            index += 2
        else:
            paired.append(cues[index])
            index += 1
    return paired


def _pairs(cues: Sequence[Cue], index: int, style: CueStyle) -> bool:
    first, second = cues[index], cues[index + 1]
    before = cues[index - 1].speakers if index > 0 else ()
    after = cues[index + 2].speakers if index + 2 < len(cues) else ()
    return (
        style.max_line_count >= 2
        and all(len(c.lines) == 1 and len(c.speakers) == 1 for c in (first, second))
        and first.speakers != second.speakers
        and before != first.speakers
        and after != second.speakers
        and all(len(_DASH) + len(c.lines[0]) <= style.max_line_width for c in (first, second))
        and second.start_ms - first.end_ms < _PAUSE_MS
        and second.end_ms - first.start_ms <= round(style.max_cue_s * 1000)
    )


def srt_lines(cue: Cue) -> list[str]:
    """`[Speaker 1] ` before a cue's text; a dialogue cue's lines as `- [Speaker 1] …`, one per voice."""
    lines = list(cue.lines)
    if len(cue.speakers) > 1:
        return [f"{_DASH}[{who}] {line}" for who, line in zip(cue.speakers, lines, strict=True)]
    if cue.speakers:
        lines[0] = f"[{cue.speakers[0]}] {lines[0]}"
    return lines


def vtt_lines(cue: Cue, escape: Callable[[str], str]) -> list[str]:
    """A cue's lines escaped, a voice span `<v Speaker 1>` opening its text; in a dialogue cue each line
    is a voice span of its own, with the dash, closed so that the next line's voice does not nest in it."""
    lines = [escape(line) for line in cue.lines]
    if len(cue.speakers) > 1:
        return [f"<v {escape(who)}>{_DASH}{line}</v>" for who, line in zip(cue.speakers, lines, strict=True)]
    if cue.speakers:
        lines[0] = f"<v {escape(cue.speakers[0])}>{lines[0]}"
    return lines


def write_paragraphs(segments: Sequence[Segment], stream: TextIO) -> None:
    """Plain text with labels: a paragraph per turn, its label first (`Speaker 1: …`), one segment per
    line as without labels, and a blank line between turns."""
    spoken = [(s.speaker, " ".join(s.text.split())) for s in segments if s.text.strip()]
    turns = [list(group) for _, group in itertools.groupby(spoken, key=lambda item: item[0])]
    for index, turn in enumerate(turns):
        speaker = turn[0][0]
        lines = [text for _, text in turn]
        if speaker is not None:
            lines[0] = f"{speaker}: {lines[0]}"
        stream.write(("\n" if index else "") + "\n".join(lines) + "\n")


def _rttm_field(text: str) -> str:
    """A recording's or a speaker's name as one RTTM field: whitespace becomes "_"."""
    return re.sub(r"\s+", "_", text.strip()) or "_"


def write_rttm(t: Transcript, stream: TextIO, file_id: str) -> None:
    """One `SPEAKER` line per turn, in time order (NIST RTTM: onset and duration in seconds)."""
    recording = _rttm_field(file_id)
    for turn in sorted(t.speakers, key=lambda turn: (turn.start_s, turn.end_s)):
        start_ms = to_ms(turn.start_s)
        duration_ms = max(0, to_ms(turn.end_s) - start_ms)
        stream.write(
            f"SPEAKER {recording} 1 {start_ms / 1000:.3f} {duration_ms / 1000:.3f}"
            f" <NA> <NA> {_rttm_field(turn.speaker)} <NA> <NA>\n"
        )
