"""Join per-chunk results into one timeline, dropping what Whisper invents.

Whisper hallucinates on silence and music ("Thank you for watching", loops of one phrase). Silent
stretches are never uploaded (see audio/plan.py); what still slips through is dropped here with the usual
thresholds, before any text is carried into the next chunk's prompt, so one invented line cannot
seed the next.

It also writes on past the speech in its window, most of all on speech that repeats itself: the next
sentences it expects, stamped at the window's end, or the window's sentences a second time, timed over
the first copy. Such text is more than its seconds can hold (nobody speaks `MAX_CHARS_PER_S`, and audio
that already holds words holds no second copy), or lies outside the audio it was decoded from, so it is
taken out here; speech it seemed to cover is then found uncovered and asked about again (pipeline), and
text that comes back crammed again is dropped again.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .models import Chunk, EngineResult, Segment, Word

NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0
COMPRESSION_RATIO_MAX = 2.4
_MIN_TEXT_FOR_RATIO = 24  # short strings compress badly whatever they say


def text_compression_ratio(text: str) -> float:
    """The ratio Whisper reports, computed ourselves for models that report none."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def is_hallucination(seg: Segment) -> bool:
    if (
        seg.no_speech_prob is not None
        and seg.avg_logprob is not None
        and seg.no_speech_prob > NO_SPEECH_PROB
        and seg.avg_logprob < LOGPROB_FLOOR
    ):
        return True
    ratio = seg.compression_ratio
    if ratio is None and len(seg.text.strip()) >= _MIN_TEXT_FOR_RATIO:
        ratio = text_compression_ratio(seg.text.strip())
    return ratio is not None and ratio > COMPRESSION_RATIO_MAX


LOOP_REPEATS = 2  # the same line this many times in a row is speech; more is a decoding loop
MAX_CHARS_PER_S = 25.0  # faster than anyone speaks (fast speech is 15-20 characters a second)
CHARS_SLACK = 12  # a few short words said in a rush, or stamped with the same rounded time
MIN_WORD_S = 0.01  # the least time a word kept is given


def _chars(text: str) -> int:
    return len("".join(text.split()))


def holds(seconds: float) -> float:
    """The most characters `seconds` of speech can hold."""
    return MAX_CHARS_PER_S * max(0.0, seconds) + CHARS_SLACK


def overfull(text: str, seconds: float) -> bool:
    """More text than `seconds` of speech can hold."""
    return _chars(text) > holds(seconds)


def _crammed(words: Sequence[Word]) -> list[bool]:
    """Which words belong to a run of two or more that is more text than the run's seconds hold."""
    chars = [0]
    for w in words:
        chars.append(chars[-1] + _chars(w.text))
    marked = [False] * len(words)
    for i in range(len(words)):
        for j in range(i + 1, len(words)):
            room = holds(words[j].end_s - words[i].start_s)
            if room >= chars[-1] - chars[i]:
                break  # even every word left from i fits: no run from i is crammed
            if chars[j + 1] - chars[i] > room:
                marked[i : j + 1] = [True] * (j + 1 - i)
    return marked


def words_text(words: Sequence[Word]) -> str:
    return " ".join(w.text.strip() for w in words if w.text.strip())


def with_words(seg: Segment, words: Sequence[Word]) -> Segment | None:
    """`seg` cut down to `words` (some of its own, in order): their span and their text. None when no
    word is left."""
    if not words:
        return None
    return replace(
        seg, start_s=words[0].start_s, end_s=words[-1].end_s, text=words_text(words), words=tuple(words)
    )


def _held(seg: Segment) -> Segment | None:
    """The segment without text its seconds cannot hold: crammed runs of words taken out (the rest keeps
    its words' times), or the whole segment when it has no words and is overfull. None when nothing is
    left."""
    if not seg.words:
        return None if overfull(seg.text, seg.end_s - seg.start_s) else seg
    marked = _crammed(seg.words)
    if not any(marked):
        return seg
    return with_words(seg, [w for w, crammed in zip(seg.words, marked, strict=True) if not crammed])


def _mid(start_s: float, end_s: float) -> float:
    return (start_s + end_s) / 2


def _said_again(seg: Segment, kept: Sequence[Segment]) -> bool:
    """Most of the segment's words lie where words of a segment kept before it were said: the model went
    back and wrote the same audio twice (a decoding loop whose copy got times over the first)."""
    spans = [(s.words[0].start_s, s.words[-1].end_s) for s in kept[-8:] if s.words]
    inside = sum(any(a < _mid(w.start_s, w.end_s) < b for a, b in spans) for w in seg.words)
    return inside * 2 > len(seg.words)


def filter_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Drop blank and hallucinated segments, text its seconds cannot hold (crammed, or said again over
    words already kept), and a line repeated more than LOOP_REPEATS times in a row."""
    kept: list[Segment] = []
    run_text, run_len = "", 0
    for whole in segments:
        seg = _held(whole)
        if seg is None or (seg.words and _said_again(seg, kept)):
            continue
        text = " ".join(seg.text.split())
        if not text or is_hallucination(seg):
            continue
        key = text.lower()
        run_len = run_len + 1 if key == run_text else 1
        run_text = key
        if run_len > LOOP_REPEATS:
            continue
        kept.append(seg)
    return kept


def place(chunk: Chunk, result: EngineResult) -> list[Segment]:
    """Filtered segments of one chunk, shifted to the recording's timeline. Text is kept only where the
    chunk's audio is (a word or segment whose middle lies past the end was written past the audio),
    clamped to it, and every word and segment lasts at least MIN_WORD_S."""
    out: list[Segment] = []
    length = chunk.duration_s
    for seg in filter_segments(result.segments):
        words: list[Word] = []
        for w in seg.words:
            if (times := _within(w.start_s, w.end_s, length)) is not None:
                words.append(replace(w, start_s=times[0], end_s=times[1]))
        span = _within(seg.start_s, seg.end_s, length)
        kept: Segment | None
        if len(words) < len(seg.words) or span is None:  # the segment is what is left of its words
            kept = with_words(seg, words)
        else:
            kept = replace(seg, start_s=span[0], end_s=span[1], text=seg.text.strip(), words=tuple(words))
        if kept is not None:
            out.append(kept.shifted(chunk.offset_s))
    return out


def _within(start_s: float, end_s: float, length: float) -> tuple[float, float] | None:
    """A time span clamped to [0, length] and at least MIN_WORD_S long (times rounded to one instant say
    where a word was, not that it took no time); None when its middle lies outside."""
    if not 0.0 <= _mid(start_s, end_s) <= length:
        return None
    start = min(max(0.0, start_s), length)
    end = min(max(start, end_s), length)
    if end - start < MIN_WORD_S:
        end = min(start + MIN_WORD_S, length)
        start = max(0.0, end - MIN_WORD_S)
    return start, end


def stitch(placed: Sequence[Sequence[Segment]]) -> tuple[Segment, ...]:
    """Concatenate chunks' segments in order, clamping so cue times never go backwards."""
    out: list[Segment] = []
    for segs in placed:
        for seg in segs:
            if out and seg.start_s < out[-1].end_s:
                start = out[-1].end_s
                seg = replace(seg, start_s=start, end_s=max(start, seg.end_s))
            out.append(seg)
    return tuple(out)


def estimate_tokens(text: str) -> int:
    """A cautious token count (about 3 UTF-8 bytes a token) that errs towards too many."""
    return sum(max(1, -(-len(w.encode("utf-8")) // 3)) for w in text.split())


def prompt_for(user_prompt: str | None, previous_text: str, max_tokens: int) -> str | None:
    """The user's prompt followed by as much of the previous chunk's tail as fits in `max_tokens`.

    Whisper reads only the last `max_tokens` tokens of a prompt, so the tail is cut to fit and the
    user's own words are kept whole in front of it.
    """
    budget = max_tokens - (estimate_tokens(user_prompt) if user_prompt else 0)
    tail: list[str] = []
    for word in reversed(previous_text.split()):
        cost = estimate_tokens(word)
        if cost > budget:
            break
        tail.append(word)
        budget -= cost
    parts = [p for p in (user_prompt, " ".join(reversed(tail))) if p]
    return " ".join(parts) or None


def _norm_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


REPEAT_MIN_WORDS = 4


def repeats_context(segments: Iterable[Segment], context: str) -> bool:
    """A segment of a few words or more that is word for word in the carried context: the model
    continued its prompt instead of listening."""
    said = " ".join(_norm_words(context))
    if not said:
        return False
    for seg in segments:
        words = _norm_words(seg.text)
        if len(words) >= REPEAT_MIN_WORDS and f" {' '.join(words)} " in f" {said} ":
            return True
    return False
