"""Words and segments -> subtitle cues that people can read.

Why it is shaped this way:
- A Whisper segment can run 30 s and hold several sentences; shown as one cue it is a wall of text that
  sits on screen long after the words were spoken. Cues are instead built to the constraints broadcast
  and streaming style guides use (Netflix's timed-text style guide, the BBC subtitle guidelines): at
  most two lines of at most 42 characters, at most 7 s on screen, a reading speed of at most 20
  characters per second, breaks at sentence and clause boundaries and at pauses, never inside a word,
  two lines balanced rather than one long and one very short. The knobs keep the names of the whisper
  CLI's `--max_line_width`, `--max_line_count` and `--max_words_per_line`.
- With word timestamps every cue starts at its first word and ends at its last, so a cue appears when
  its words are spoken. The words of the whole transcript form one stream in time order: a cue may
  carry a sentence across a Whisper segment boundary (segments often end mid-sentence), but a segment
  end is still a preferred place to break, and a pause of `PAUSE_S` or more always ends a cue.
- Segments without words (json-only models, engines that gave none) become the same kind of stream:
  their words get times spread over the segment by character count, and each such segment is cut off
  from its neighbours, because its inner times are estimates that must not leak into another segment.
- Where to break is chosen for the whole stream at once (dynamic programming over break points, as
  Knuth-Plass does for paragraphs) rather than greedily, so a sentence that needs two cues gets two
  balanced ones, not a full one and a one-word remainder. Hard limits (lines, line width, cue length,
  pauses) decide which cues are possible; soft preferences (break quality, balance, reading speed)
  are costs. Reading speed cannot be a hard limit: fast speech exceeds it however it is cut. A cue is
  first lengthened into the silence after it (up to the next cue and `max_cue_s`); where that is not
  enough, the cost moves words out of the too-fast cue into a neighbour that has time to spare.
- Some engines give words without punctuation (whisper-1's word timestamps): the segment text is
  aligned with the words so cues keep its punctuation and casing, and sentence ends stay visible.
- A cue never mixes two voices: with speaker labels, a change of speaker always ends a cue, like a
  pause, and each cue carries its speaker for the writers (dialogue cues: `labels.dialogue`).
- Times become whole milliseconds once (`to_ms`); everything after that is integer arithmetic.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from whisperbatch.errors import ConfigError
from whisperbatch.models import Segment, Word

# A silence between two words at least this long always ends a cue.
PAUSE_S = 0.5
_PAUSE_MS = round(PAUSE_S * 1000)

# Costs of the break search (arbitrary units; only their relations matter).
_CUE = 1.5  # every cue: prefer fewer, fuller cues
_FILL = 2.0  # times (characters / capacity)^2: convex, so two cues of one sentence come out balanced
_BREAK = {"sentence": 0.0, "clause": 2.0, "segment": 3.0, "plain": 6.0}
_GAP_BONUS = 4.0  # taken off a break's cost in proportion to the silence there (up to PAUSE_S)
_INNER_SENTENCE = 2.5  # a sentence end inside a cue instead of at its end
_SHORT_MS = 1000  # cues shorter than this on screen flash by ...
_SHORT = 2.0  # ... and cost up to this much more
_READ = 20.0  # times the relative excess over max_chars_per_s ...
_READ_MAX_EXCESS = 2.0  # ... capped, so untimed (zero-length) text does not dominate everything
# Line layout inside a cue: a line ending at punctuation is preferred among near-balanced splits.
_LINE_END_BONUS = {"sentence": 0.15, "clause": 0.1}

_SENTENCE_END = frozenset(".!?…。！？")
_CLAUSE_END = frozenset(",;:—–、，；：")
_DASHES = frozenset({"-", "--", "–", "—"})
_CLOSERS = "\"'”’»)]}」』"
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "e.g.", "i.e."})
# Scripts written without spaces between words: units in them join without one.
_NO_SPACE_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3000, 0x30FF),  # CJK punctuation, Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xFF00, 0xFFEF),  # full-width forms
)
_ALIGN_LOOKAHEAD = 6  # how far the segment text and the words may drift apart and still re-align


@dataclass(frozen=True)
class CueStyle:
    """How cues are shaped; the defaults follow common broadcast practice (see the module docstring)."""

    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: int | None = None  # None: no limit
    max_cue_s: float = 7.0
    max_chars_per_s: float = 20.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"subtitle style: {field.name} must be a positive number (got {value})")


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start_ms` to `end_ms` (whole milliseconds), one string per line.
    `speakers`: none without labels, one for a cue of one voice, one per line in a dialogue cue."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    speakers: tuple[str, ...] = ()


def to_ms(seconds: float) -> int:
    """Seconds -> whole milliseconds, rounded once; negative times clamp to 0."""
    return max(0, round(seconds * 1000))


@dataclass
class _Unit:
    """One word of the stream: display text (no surrounding whitespace) and its time."""

    text: str
    start_ms: int
    end_ms: int
    glue: bool = False  # joins the previous unit without a space (scripts written without spaces)
    hard_after: bool = False  # a cue must end after this unit
    segment_end: bool = False  # the last word of a segment
    speaker: str | None = None


def build_cues(segments: Sequence[Segment], style: CueStyle, *, end_s: float | None = None) -> list[Cue]:
    """Cues in time order, never overlapping, each at least 1 ms long; every word exactly once.

    `end_s`, the recording's end where known, is as far as a cue is lengthened for reading speed.
    """
    units = _stream(segments)
    cues: list[Cue] = []
    previous_end = 0
    for first, stop, end_ms in _choose_cues(units, style, None if end_s is None else to_ms(end_s)):
        # Only overlapping input (words out of order, overlapping segments) or a zero-length cue made
        # 1 ms long moves a start, and only later.
        start = max(units[first].start_ms, previous_end)
        end = max(end_ms, start + 1)
        speaker = units[first].speaker
        cues.append(Cue(start, end, _layout(units[first:stop], style), () if speaker is None else (speaker,)))
        previous_end = end
    return cues


# ---- the word stream -------------------------------------------------------------------------------


def _timed_words(segment: Segment) -> tuple[Word, ...]:
    return tuple(w for w in segment.words if w.text.strip())


def _stream(segments: Sequence[Segment]) -> list[_Unit]:
    """Every word in time order; runs of segments with words share one stream, others stand alone."""
    ordered = sorted((s for s in segments if s.text.strip() or _timed_words(s)), key=lambda s: s.start_s)
    units: list[_Unit] = []
    for timed, group in itertools.groupby(ordered, key=lambda s: bool(_timed_words(s))):
        members = list(group)
        pieces = [_word_units(members)] if timed else [_text_units(s) for s in members]
        for piece in pieces:
            if piece:
                piece[-1].hard_after = True
                units.extend(piece)
    for unit, following in itertools.pairwise(units):  # a pause, or another voice, always ends a cue
        if following.start_ms - unit.end_ms >= _PAUSE_MS or following.speaker != unit.speaker:
            unit.hard_after = True
    return units


def _word_units(segments: list[Segment]) -> list[_Unit]:
    words = [w for s in segments for w in _timed_words(s)]
    speakers = [s.speaker if w.speaker is None else w.speaker for s in segments for w in _timed_words(s)]
    shown = _align([t for s in segments for t in s.text.split()], [w.text for w in words])
    units: list[_Unit] = []
    for word, text, speaker in zip(words, shown, speakers, strict=True):
        start = to_ms(word.start_s)
        glue = bool(units) and not word.text[:1].isspace() and _no_space(units[-1].text[-1], text[0])
        units.append(_Unit(text, start, max(to_ms(word.end_s), start), glue=glue, speaker=speaker))
    last = -1
    for segment in segments:
        last += len(_timed_words(segment))
        units[last].segment_end = True
    return units


def _text_units(segment: Segment) -> list[_Unit]:
    """Untimed words, each given a share of the segment's time by its characters (space included)."""
    tokens = segment.text.split()
    start = to_ms(segment.start_s)
    span = max(0, to_ms(segment.end_s) - start)
    total = sum(len(t) for t in tokens) + len(tokens) - 1
    units: list[_Unit] = []
    offset = 0
    for index, token in enumerate(tokens):
        following = total if index == len(tokens) - 1 else offset + len(token) + 1
        first, last = start + _share(span, offset, total), start + _share(span, following, total)
        units.append(_Unit(token, first, last, speaker=segment.speaker))
        offset = following
    return units


def word_texts(segment: Segment) -> tuple[str, ...]:
    """Each of the segment's words as cues show it, with the space before it where one belongs
    (punctuation and casing from the segment text, as for cues), "" for a blank word: joined, a run
    of them reads as that stretch of the segment, also for engines that give bare words."""
    timed = _timed_words(segment)
    shown = iter(_align(segment.text.split(), [w.text for w in timed]))
    texts: list[str] = []
    previous = ""
    for word in segment.words:
        if not word.text.strip():
            texts.append("")
            continue
        text = next(shown)
        glue = bool(previous) and not word.text[:1].isspace() and _no_space(previous[-1], text[0])
        texts.append(text if glue else f" {text}")
        previous = text
    return tuple(texts)


def _share(span: int, part: int, whole: int) -> int:
    """round(span * part / whole) in integers."""
    return (2 * span * part + whole) // (2 * whole)


def _no_space(before: str, after: str) -> bool:
    return all(any(lo <= ord(ch) <= hi for lo, hi in _NO_SPACE_RANGES) for ch in (before, after))


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _align(tokens: list[str], words: list[str]) -> list[str]:
    """Each word's display text: the segment-text token it matches (punctuation, casing), else itself.

    The words stay the units: a token is only borrowed where it spells the same word, and a
    punctuation-only token ("—") rides on the matched word before it. Mismatches re-align within a
    few tokens; anything that does not match keeps the word's own text, so nothing is shown twice.
    """
    shown = [" ".join(w.split()) for w in words]
    token_keys = [_key(t) for t in tokens]
    word_keys = [_key(w) for w in words]
    i = j = 0
    matched_previous = False
    while i < len(tokens) and j < len(words):
        if not token_keys[i] and not word_keys[j]:
            i, j, matched_previous = i + 1, j + 1, False
        elif not token_keys[i]:
            if matched_previous:
                shown[j - 1] = f"{shown[j - 1]} {tokens[i]}"
            i += 1
        elif not word_keys[j]:
            j, matched_previous = j + 1, False
        elif token_keys[i] == word_keys[j]:
            shown[j] = tokens[i]
            i, j, matched_previous = i + 1, j + 1, True
        else:
            skip = _resync(token_keys, word_keys, i, j)
            i, j = (i + 1, j + 1) if skip is None else (i + skip[0], j + skip[1])
            matched_previous = False
    return shown


def _resync(token_keys: list[str], word_keys: list[str], i: int, j: int) -> tuple[int, int] | None:
    """The nearest (tokens skipped, words skipped) after which both spell the same word again."""
    for total in range(1, 2 * _ALIGN_LOOKAHEAD + 1):
        for skip_tokens in range(max(0, total - _ALIGN_LOOKAHEAD), min(total, _ALIGN_LOOKAHEAD) + 1):
            a, b = i + skip_tokens, j + total - skip_tokens
            if a < len(token_keys) and b < len(word_keys) and token_keys[a] and token_keys[a] == word_keys[b]:
                return skip_tokens, total - skip_tokens
    return None


def ending(text: str) -> str:
    """What kind of boundary follows a word, from its punctuation: sentence, clause or plain."""
    if text in _DASHES:
        return "clause"
    bare = text.rstrip(_CLOSERS)
    if not bare:
        return "plain"
    if bare[-1] in _SENTENCE_END and bare.casefold() not in _ABBREVIATIONS:
        return "sentence"
    return "clause" if bare[-1] in _CLAUSE_END else "plain"


# ---- choosing the cues -----------------------------------------------------------------------------


def _break_cost(units: list[_Unit], k: int) -> float:
    """The cost of ending a cue after unit k."""
    unit = units[k]
    if unit.hard_after or k == len(units) - 1:
        return 0.0
    kind = ending(unit.text)
    if kind == "plain" and unit.segment_end:
        kind = "segment"
    if kind == "sentence":
        return 0.0
    gap = min(max(0, units[k + 1].start_ms - unit.end_ms), _PAUSE_MS)
    return max(0.0, _BREAK[kind] - _GAP_BONUS * gap / _PAUSE_MS)


def _choose_cues(units: list[_Unit], style: CueStyle, until_ms: int | None) -> list[tuple[int, int, int]]:
    """The cheapest split of the stream into possible cues: (first unit, stop unit, end_ms) each."""
    n = len(units)
    width, max_lines = style.max_line_width, style.max_line_count
    per_line = style.max_words_per_line or n
    max_cue_ms = max(1, round(style.max_cue_s * 1000))
    capacity = width * max_lines
    ends_cost = [_break_cost(units, k) for k in range(n)]
    sentence_end = [ending(u.text) == "sentence" for u in units]

    best = [math.inf] * (n + 1)
    best[0] = 0.0
    choice: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (first unit, end_ms) of the cue ending there
    for first in range(n):
        start = units[first].start_ms
        lines = line_len = line_words = chars = inner = 0
        last_end = start
        for k in range(first, n):
            unit = units[k]
            sep = 0 if k == first or unit.glue else 1
            size = len(unit.text)
            # Greedy wrapping gives the fewest lines; an over-wide word takes a line of its own.
            if line_words and line_len <= width and line_len + sep + size <= width and line_words < per_line:
                line_len += sep + size
                line_words += 1
            else:
                lines, line_len, line_words = lines + 1, size, 1
            chars += sep + size
            last_end = max(last_end, unit.end_ms)
            if k > first and (lines > max_lines or last_end - start > max_cue_ms):
                break
            # Lengthen into the following silence for reading speed, up to the next word and max_cue_s.
            limit = start + max_cue_ms
            if k + 1 < n:
                limit = min(limit, units[k + 1].start_ms)
            elif until_ms is not None:
                limit = min(limit, until_ms)
            needed = math.ceil(chars * 1000 / style.max_chars_per_s)
            end = min(max(last_end, min(start + needed, limit)), start + max_cue_ms)
            shown = end - start
            cost = best[first] + _CUE + _FILL * (chars / capacity) ** 2
            cost += ends_cost[k] + _INNER_SENTENCE * inner
            if shown < _SHORT_MS:
                cost += _SHORT * (_SHORT_MS - shown) / _SHORT_MS
            rate = chars * 1000 / max(shown, 1)
            if rate > style.max_chars_per_s:
                cost += _READ * min(rate / style.max_chars_per_s - 1, _READ_MAX_EXCESS)
            if cost < best[k + 1]:
                best[k + 1] = cost
                choice[k + 1] = (first, end)
            if unit.hard_after:
                break
            inner += sentence_end[k]

    spans: list[tuple[int, int, int]] = []
    stop = n
    while stop > 0:
        first, end = choice[stop]
        spans.append((first, stop, end))
        stop = first
    spans.reverse()
    return spans


def fixed_cues(segments: Sequence[Segment], style: CueStyle) -> list[Cue]:
    """One cue per segment at exactly its times, only its lines laid out (as many as the text needs):
    a translation keeps every source cue's times, whatever length the other language gives it."""
    cues = []
    for seg in segments:
        words = seg.text.split()
        if words:
            start = to_ms(seg.start_s)
            units = [_Unit(word, start, start) for word in words]
            speakers = () if seg.speaker is None else (seg.speaker,)
            cues.append(Cue(start, max(to_ms(seg.end_s), start + 1), _layout(units, style), speakers))
    return cues


# ---- lines inside a cue ----------------------------------------------------------------------------


def _layout(units: Sequence[_Unit], style: CueStyle) -> tuple[str, ...]:
    """The fewest lines that fit, as balanced as possible, preferring line ends at punctuation."""
    n = len(units)
    width = style.max_line_width
    per_line = style.max_words_per_line or n
    seps = [0] + [0 if u.glue else 1 for u in units[1:]]
    # chars_to[x]: length of units[:x] joined; a line units[a:b] is chars_to[b] - chars_to[a] - seps[a].
    chars_to = [0]
    for unit, sep in zip(units, seps, strict=True):
        chars_to.append(chars_to[-1] + sep + len(unit.text))

    def length(a: int, b: int) -> int:
        return chars_to[b] - chars_to[a] - seps[a]

    def fits(a: int, b: int) -> bool:
        return b - a == 1 or (length(a, b) <= width and b - a <= per_line)

    # best[lines][b]: cheapest layout of units[:b] in that many lines; start[lines][b]: its last line's start.
    best: list[list[float]] = [[0.0] + [math.inf] * n]
    start: list[list[int]] = [[0] * (n + 1)]
    while best[-1][n] == math.inf:
        previous = best[-1]
        row, starts = [math.inf] * (n + 1), [0] * (n + 1)
        for b in range(1, n + 1):
            for a in range(b - 1, -1, -1):
                if not fits(a, b):
                    break
                if previous[a] == math.inf:
                    continue
                bonus = _LINE_END_BONUS.get(ending(units[b - 1].text), 0.0) if b < n else 0.0
                cost = previous[a] + (length(a, b) / width) ** 2 - bonus
                if cost < row[b]:
                    row[b], starts[b] = cost, a
        best.append(row)
        start.append(starts)
    lines: list[str] = []
    b = n
    for count in range(len(best) - 1, 0, -1):
        a = start[count][b]
        lines.append(units[a].text + "".join(" " * seps[x] + units[x].text for x in range(a + 1, b)))
        b = a
    lines.reverse()
    return tuple(lines)
