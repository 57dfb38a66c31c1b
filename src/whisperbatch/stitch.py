"""Join per-chunk results into one timeline, dropping what Whisper invents.

Whisper hallucinates on silence and music ("Thank you for watching", loops of one phrase). Silent
stretches are never uploaded (see audio.py); what still slips through is dropped here with the usual
thresholds, before any text is carried into the next chunk's prompt, so one invented line cannot
seed the next.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .models import Chunk, EngineResult, Segment

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


def filter_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Drop blank and hallucinated segments, and a line repeated more than LOOP_REPEATS times in a row."""
    kept: list[Segment] = []
    run_text, run_len = "", 0
    for seg in segments:
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
    """Filtered segments of one chunk, shifted to the recording's timeline and kept inside the chunk."""
    out: list[Segment] = []
    for seg in filter_segments(result.segments):
        start = min(max(0.0, seg.start_s), chunk.duration_s)
        end = min(max(start, seg.end_s), chunk.duration_s)
        words = tuple(
            replace(w, start_s=min(max(start, w.start_s), end), end_s=min(max(start, w.end_s), end))
            for w in seg.words
        )
        out.append(
            replace(seg, start_s=start, end_s=end, text=seg.text.strip(), words=words).shifted(chunk.offset_s)
        )
    return out


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
