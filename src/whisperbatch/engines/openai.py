"""The OpenAI audio API (or any OpenAI-compatible server) through the official SDK.

The SDK's own retries are turned off (`max_retries=0`): it retries every 429, including
`insufficient_quota`, which can never succeed. Instead each SDK error is mapped onto our tree
(`api_error`, shared with the chat translator) so the pipeline's retry policy can tell "wait and
retry" from "stop the run" from "this file is bad". Server messages are not passed through for 401s,
since some servers echo (part of) the key; other messages are, with the key masked (a gateway's 400 may
name the Authorization header with its value).

Translation never goes through the translations endpoint (it shuts down on 2027-02-26 and only
reaches English): `translate` transcribes here, then translates the text with a chat model.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import re
import time
from concurrent.futures import Future
from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..catalog import ModelInfo
from ..cues import ending
from ..errors import (
    AuthError,
    EngineError,
    ModelNotFound,
    QuotaExceeded,
    RequestTooLarge,
    RetryableEngineError,
    UnreadableAnswer,
    keep_secret,
)
from ..languages import language_code
from ..models import Chunk, EngineResult, Segment, Span, Task, Usage, Word
from ..stitch import holds

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the SDK's, when no base_url is set


@dataclass(frozen=True)
class RequestTimeout:
    """How long a transcription request waits for its answer: a floor, plus some seconds for each second
    of audio it carries, within a ceiling. A server takes time in proportion to the audio, so one
    timeout for every chunk is either too short for the longest or far too long for the shortest."""

    min_s: float
    per_audio_s: float
    max_s: float

    def for_audio(self, duration_s: float) -> float:
        return min(self.max_s, self.min_s + self.per_audio_s * duration_s)


class OpenAIEngine:
    name = "openai"
    chunk_suffix = ".mp3"
    parallel_chunks = True

    def __init__(
        self,
        info: ModelInfo,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: RequestTimeout,
        max_upload_bytes: int,
        word_timestamps: bool = True,
        keywords: tuple[str, ...] = (),
        client: openai.OpenAI | None = None,
    ) -> None:
        self.info = info
        self._word_timestamps = word_timestamps
        self._keywords = keywords
        self.timeout = timeout
        self.model = info.name
        self.max_upload_bytes: int | None = max_upload_bytes
        # The SDK takes about a second to import and to load its CA bundle: that happens in a thread of
        # its own while the run opens its store and prepares the first chunks, and the first request
        # waits for it.
        self._client: Future[openai.OpenAI] = Future()
        if client is not None:
            self._client.set_result(client)
        else:
            args = (api_key, base_url, timeout.max_s)
            Thread(target=self._connect, args=args, name="wb-sdk", daemon=True).start()
        self.host = urlsplit(str(client.base_url) if client else base_url or DEFAULT_BASE_URL).netloc

    def _connect(self, api_key: str | None, base_url: str | None, timeout_s: float) -> None:
        try:
            self._client.set_result(sdk_client(api_key, base_url, timeout_s))
        except BaseException as e:  # raised to the first request
            self._client.set_exception(e)

    def transcribe(
        self,
        chunk: Chunk,
        *,
        task: Task,
        language: str | None,
        prompt: str | None,
        condition_on_previous_text: bool = False,  # the server decides this for itself
    ) -> EngineResult:
        if task is not Task.TRANSCRIBE:
            raise EngineError("the API path transcribes; translation is a chat model's step")
        fmt = "verbose_json" if self.info.timestamps else "json"
        kwargs: dict[str, Any] = {"model": self.model, "response_format": fmt}
        if prompt:
            kwargs["prompt"] = prompt
        if language and self.info.languages_param:
            kwargs["languages"] = [language]
        elif language:
            kwargs["language"] = language
        if self._keywords and self.info.languages_param:  # gpt-transcribe's generation takes keywords
            kwargs["keywords"] = list(self._keywords)
        if fmt == "verbose_json":
            kwargs["timestamp_granularities"] = ["word", "segment"] if self._word_timestamps else ["segment"]
        kwargs["timeout"] = timeout_s = self.timeout.for_audio(chunk.duration_s)
        try:
            with chunk.path.open("rb") as fh:
                kwargs["file"] = (chunk.path.name, fh)
                resp = self._client.result().audio.transcriptions.create(**kwargs)
        except sdk_error() as e:
            raise api_error(e, self.host, self.model, timeout_s=timeout_s) from e
        except json.JSONDecodeError as e:  # a 200 whose body was cut off: answered, so billed
            raise unreadable(e, self.host) from e
        try:
            return self._result(resp, chunk)
        except (AttributeError, TypeError, ValueError) as e:  # JSON, but not a transcription's
            raise unreadable(e, self.host) from e

    def _result(self, resp: Any, chunk: Chunk) -> EngineResult:
        text = str(getattr(resp, "text", resp) or "").strip()
        reported = getattr(resp, "language", None)  # whisper-1 says "english"; we keep codes
        if reported is None and getattr(resp, "languages", None):  # gpt-transcribe: [{"code": "en"}]
            reported = getattr(resp.languages[0], "code", None)
        language = (language_code(reported) or reported) if isinstance(reported, str) else None
        usage = _usage(getattr(resp, "usage", None))
        raw = getattr(resp, "segments", None)
        if raw is not None:
            segments = tuple(
                Segment(
                    start_s=float(s.start),
                    end_s=float(s.end),
                    text=str(s.text),
                    avg_logprob=getattr(s, "avg_logprob", None),
                    compression_ratio=getattr(s, "compression_ratio", None),
                    no_speech_prob=getattr(s, "no_speech_prob", None),
                )
                for s in raw
            )
            words = tuple(
                Word(float(w.start), float(w.end), str(w.word)) for w in getattr(resp, "words", None) or ()
            )
            return EngineResult(
                text=text, segments=attach_words(segments, words), language=language, usage=usage
            )
        # No timestamps from this model: the chunk is a short group of utterances from our own
        # speech detection, so its sentences are laid over those utterances.
        spans = chunk.speech or (Span(0.0, chunk.duration_s),)
        return EngineResult(
            text=text, segments=spread_over_speech(text, spans), language=language, usage=usage
        )

    def close(self) -> None:
        if self._client.done() and self._client.exception() is None:
            self._client.result().close()


def _usage(reported: Any) -> Usage | None:
    """The answer's `usage`: `{"type": "duration", "seconds"}` or `{"type": "tokens", ...}`."""
    if reported is None:
        return None
    if getattr(reported, "type", None) == "duration":
        return Usage(seconds=float(reported.seconds))
    details = getattr(reported, "input_token_details", None)
    audio = int(getattr(details, "audio_tokens", 0) or 0)
    text = int(getattr(details, "text_tokens", 0) or 0)
    if not details:  # no split given: all input counts as audio, the dearer kind
        audio = int(getattr(reported, "input_tokens", 0) or 0)
    return Usage(
        audio_tokens=audio, text_tokens=text, output_tokens=int(getattr(reported, "output_tokens", 0) or 0)
    )


def sdk_client(api_key: str | None, base_url: str | None, timeout_s: float) -> openai.OpenAI:
    """The SDK's client, for transcription and translation alike: no retries of its own (the run's
    retry policy decides), and a placeholder key, since a compatible server on a private network often
    needs none and the SDK insists on one. The key is kept secret from here on (`keep_secret`), however
    the client was configured."""
    import openai

    keep_secret(api_key)
    key = api_key or "no-key"
    return openai.OpenAI(api_key=key, base_url=base_url or None, timeout=timeout_s, max_retries=0)


def sdk_error() -> type[openai.APIError]:
    """The SDK's error base class (the SDK is imported by the time a request has run)."""
    import openai

    return openai.APIError


def api_error(e: openai.APIError, host: str, model: str, *, timeout_s: float | None = None) -> EngineError:
    """An SDK error as one of ours: retry (429 rate limit, 5xx, timeouts), stop the run (quota, key, a
    model the server does not have) or fail the file (anything else the server refused)."""
    import openai

    if isinstance(e, openai.APITimeoutError):
        within = "" if timeout_s is None else f" within {timeout_s:.0f} s"
        return RetryableEngineError(f"no answer from {host}{within} (timed out)")
    if isinstance(e, openai.APIConnectionError):
        return RetryableEngineError(f"connection to {host} failed or was dropped")
    if not isinstance(e, openai.APIStatusError):
        return EngineError(f"unexpected response from {host} ({type(e).__name__})")
    status = e.status_code
    if isinstance(e, openai.RateLimitError) or status == 429:
        if e.code == "insufficient_quota" or (e.type or "") == "insufficient_quota":
            return QuotaExceeded(
                f"API quota exhausted at {host} (insufficient_quota): add credit or raise the limit, "
                "then run again"
            )
        return RetryableEngineError(
            f"rate limited by {host} (HTTP 429)", retry_after_s=_retry_after_s(e.response.headers)
        )
    if status in (401, 403):
        return AuthError(f"API key rejected by {host} (HTTP {status}): check OPENAI_API_KEY or api_key")
    if status == 413:
        return RequestTooLarge(f"upload refused as too large by {host} (HTTP 413)")
    if status in (408, 409) or status >= 500:
        return RetryableEngineError(
            f"server error from {host} (HTTP {status})", retry_after_s=_retry_after_s(e.response.headers)
        )
    message = _server_message(e)
    if e.code == "model_not_found" or (
        status in (400, 404) and (e.param == "model" or f"'{model}'" in message)
    ):
        return ModelNotFound(f"model {model} is not available at {host} (HTTP {status}): {message}")
    return EngineError(f"rejected by {host} (HTTP {status}): {message}")


def unreadable(e: Exception, host: str) -> UnreadableAnswer:
    """A 200 whose body is not whole JSON, or not the shape asked for: the SDK raises the parser's own
    error, which says nothing of the request."""
    what = "not whole JSON" if isinstance(e, json.JSONDecodeError) else type(e).__name__
    return UnreadableAnswer(f"unreadable answer from {host} ({what}: {e})")


def attach_words(segments: tuple[Segment, ...], words: tuple[Word, ...]) -> tuple[Segment, ...]:
    """The API lists words apart from segments: give each segment its own words, so cues and coverage
    checks see both together.

    Words follow the text in order, so they are dealt out by each segment's word count; the API's word
    and segment times disagree too often to match by time. Only when the counts differ (a tokenisation
    the text split does not follow) does each word go to the segment its middle falls in, or the nearest.
    """
    if not words or not segments:
        return segments
    counts = [len(s.text.split()) for s in segments]
    owned: list[tuple[Word, ...]] = []
    if sum(counts) == len(words):
        at = 0
        for n in counts:
            owned.append(words[at : at + n])
            at += n
    else:
        lists: list[list[Word]] = [[] for _ in segments]
        for word in words:
            mid = (word.start_s + word.end_s) / 2
            best = min(
                range(len(segments)),
                key=lambda i: max(segments[i].start_s - mid, mid - segments[i].end_s, 0.0),
            )
            lists[best].append(word)
        owned = [tuple(w) for w in lists]
    return tuple(dataclasses.replace(s, words=w) for s, w in zip(segments, owned, strict=True))


# A sentence: up to its end mark and any closing quote or bracket ("closes." The next…), or up to a
# CJK end mark, which needs no space after it.
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+[\"”’')\]]*(?=\s|$)|[。！？]+[\"”’」』)]*|$)", re.S)


# What a cut between two stretches of speech costs, by what ends the text before it (`cues.ending`); a
# capital after a plain end is nearly a sentence end (models that leave out full stops still capitalise).
_CUT = {"sentence": 0.0, "clause": 0.5, "capital": 0.7, "plain": 1.5}
_SHARE = 4.0  # times the squared relative miss of a stretch's share of characters
_SILENT = 2.0  # a stretch of a second or more of speech left without text (shorter: in proportion)


def spread_over_speech(text: str, spans: tuple[Span, ...]) -> tuple[Segment, ...]:
    """Segments for untimed text: its words dealt out in order over the chunk's stretches of speech, so
    each stretch gets about its share of the characters (people speak at a steady pace), with the cuts
    moved to where a sentence or clause ends nearby. A sentence after a pause thus starts on the stretch
    after the pause, and no text lands where no speech was detected.

    The cuts are chosen together (dynamic programming over where each stretch's text ends), trading the
    miss of each share against the kind of break. Written here because placing text without times on
    speech is otherwise forced alignment, which needs an acoustic model."""
    words = [w for m in _SENTENCE.finditer(text) for w in m.group().split()]
    if not words or not spans:
        return ()
    ends = [0]
    for word in words:
        ends.append(ends[-1] + len(word) + 1)
    seconds = [s.duration_s for s in spans]
    shares = [ends[-1] * s / (sum(seconds) or 1.0) for s in seconds]
    cut = [_CUT[_kind(words[j], words[j + 1])] for j in range(len(words) - 1)]
    n, inf = len(words), float("inf")
    # best[k][j]: the least cost of the first j words on the first k stretches; back[k][j]: where the
    # k-th stretch's words begin.
    best = [[0.0] + [inf] * n] + [[inf] * (n + 1) for _ in spans]
    back = [[0] * (n + 1) for _ in range(len(spans) + 1)]
    # No stretch takes more than its seconds can hold (so none is taken for invented text), nor far
    # more than its share; where the text is more than the whole chunk can hold, only the share counts
    # (the pipeline asks such an answer again, and drops it if it comes back).
    fits = sum(holds(s) for s in seconds) >= ends[-1] - len(words)
    longest = max(len(w) for w in words) + 1
    for k, share in enumerate(shares, start=1):
        reach = 3 * share + 40 + longest
        for j in range(n + 1):
            for i in range(j, -1, -1):
                chars = ends[j] - ends[i]
                if chars > reach or (fits and chars - (j - i) > holds(seconds[k - 1])):
                    break
                if best[k - 1][i] == inf:
                    continue
                cost = best[k - 1][i] + _SHARE * ((chars - share) / (share + 10)) ** 2
                if i < j < n:
                    cost += cut[j - 1]
                elif i == j:
                    cost += _SILENT * min(1.0, seconds[k - 1])
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    bounds, j = [], n
    for k in range(len(spans), 0, -1):
        bounds.append((back[k][j], j))
        j = back[k][j]
    return tuple(
        Segment(span.start_s, span.end_s, " ".join(words[i:j]))
        for span, (i, j) in zip(spans, reversed(bounds), strict=True)
        if i < j
    )


def _kind(word: str, following: str) -> str:
    kind = ending(word)
    return "capital" if kind == "plain" and following[:1].isupper() else kind


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return e.message


def _retry_after_s(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None
