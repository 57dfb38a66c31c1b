"""Timed text into another language through a chat model, each cue keeping its times.

Whisper translates only into English, and OpenAI's translations endpoint shuts down on 2027-02-26.
A chat model on any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp's server), reached
through the same SDK's `chat.completions`, translates into any language. What is translated is the
source's subtitle cues, one line per cue with an id, so every translated cue is shown exactly when its
source cue is.

Written by hand because no library does id-checked batch translation over the chat API: lines go in
batches, with a few neighbours either side as context (not translated), and the reply must give every
id back once and non-empty. A reply that drops, merges or empties a line, or is not JSON, is asked
again; a batch that keeps coming back wrong is halved, down to single lines, and a line that still
cannot be translated fails the file rather than leave a cue out. Requests go through the run's retry
policy (`call`), so a 429 or 5xx waits and retries like a transcription request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .catalog import ChatModelInfo
from .engines.openai import api_error, sdk_client, sdk_error, unreadable
from .errors import ConfigError, EngineError
from .languages import LANGUAGES
from .models import Usage

if TYPE_CHECKING:  # the SDK is imported when a client is made: half a second of every start-up
    import openai

ASK_AGAIN = 2  # a batch whose reply does not match is asked this many more times before it is halved

SYSTEM = (
    "You translate subtitles. The user sends JSON with source_language, target_language, glossary "
    "(names and terms to keep or spell as given), before and after (neighbouring lines, for context "
    "only) and segments (id and text). Translate each segment's text into the target language on its "
    "own: never merge, split, drop or reorder segments, and never leave one empty. Answer with JSON "
    'only: {"segments": [{"id": <id>, "text": "<translation>"}, ...]} with every id exactly once.'
)


def chat_needed(target: str) -> ConfigError:
    return ConfigError(
        f"translating into {LANGUAGES.get(target, target).title()} ({target}) needs a chat model: set "
        "OPENAI_API_KEY, or translate_base_url (an OpenAI-compatible chat server such as Ollama) and "
        "translate_model; offline, the local engine translates into English only (--to en)"
    )


@dataclass(frozen=True)
class TranslationOptions:
    """Where cues are translated: into which language, by which chat model, on which server."""

    to: str  # a language code
    model: ChatModelInfo
    api_key: str | None = field(repr=False)  # the chat server's own key, else the transcription key
    base_url: str | None  # the chat server's own URL, else the transcription server's
    timeout_s: float
    batch_size: int  # cues per request
    context: int  # neighbouring cues sent either side, not translated

    @property
    def reachable(self) -> bool:
        """Whether a chat model can be reached at all: a key or a server."""
        return bool(self.api_key or self.base_url)


class BadReply(EngineError):
    """The chat model's reply does not give every line back once, translated."""


@dataclass(frozen=True)
class Translation:
    texts: tuple[str, ...]  # one per line asked, in order
    usage: Usage  # tokens billed, for every request, re-asks included


Reply = tuple[str, Usage]
Call = Callable[[Callable[[], Reply]], Reply]  # one request under the run's retry policy


class Translator:
    """Translates lines with one chat model on one server. Safe to call from threads."""

    def __init__(
        self,
        info: ChatModelInfo,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout_s: float,
        batch_size: int,
        context: int,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.info = info
        self.model = info.name
        self.batch_size, self.context = batch_size, context
        self._client = client or sdk_client(api_key, base_url, timeout_s)
        self.host = urlsplit(str(self._client.base_url)).netloc

    @classmethod
    def from_options(cls, options: TranslationOptions) -> Translator:
        if not options.reachable:
            raise chat_needed(options.to)
        return cls(
            options.model,
            api_key=options.api_key,
            base_url=options.base_url,
            timeout_s=options.timeout_s,
            batch_size=options.batch_size,
            context=options.context,
        )

    def translate(
        self,
        texts: Sequence[str],
        *,
        source: str | None,
        target: str,
        glossary: str | None,
        call: Call,
        on_retry: Callable[[str], None] = lambda message: None,
    ) -> Translation:
        """Every line of `texts` in `target`; blank lines stay blank and are not sent."""
        done: dict[int, str] = {i: "" for i, text in enumerate(texts) if not text.strip()}
        asked = [i for i in range(len(texts)) if i not in done]
        usage = Usage()
        for at in range(0, len(asked), self.batch_size):
            got, used = self._batch(
                texts, asked[at : at + self.batch_size], source, target, glossary, call, on_retry
            )
            done.update(got)
            usage += used
        return Translation(tuple(done[i] for i in range(len(texts))), usage)

    def _batch(
        self,
        texts: Sequence[str],
        ids: list[int],
        source: str | None,
        target: str,
        glossary: str | None,
        call: Call,
        on_retry: Callable[[str], None],
    ) -> tuple[dict[int, str], Usage]:
        first, last = ids[0], ids[-1]
        payload = {
            "source_language": source,
            "target_language": target,
            "glossary": glossary,
            "before": [t for t in texts[max(0, first - self.context) : first] if t.strip()],
            "segments": [{"id": i + 1, "text": texts[i].strip()} for i in ids],
            "after": [t for t in texts[last + 1 : last + 1 + self.context] if t.strip()],
        }
        usage = Usage()
        problem = ""
        for _ in range(1 + ASK_AGAIN):
            content, used = call(lambda: self._ask(payload))
            usage += used
            try:
                return {i - 1: text for i, text in _checked(content, [i + 1 for i in ids]).items()}, usage
            except BadReply as e:
                problem = str(e)
                on_retry(f"lines {first + 1}-{last + 1}: {problem}; asked again")
        if len(ids) == 1:
            raise BadReply(
                f"line {first + 1} could not be translated by {self.model} at {self.host}: {problem}"
            )
        half = len(ids) // 2
        a, used_a = self._batch(texts, ids[:half], source, target, glossary, call, on_retry)
        b, used_b = self._batch(texts, ids[half:], source, target, glossary, call, on_retry)
        return a | b, usage + used_a + used_b

    def _ask(self, payload: dict[str, Any]) -> Reply:
        try:
            resp = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": json.dumps(payload, ensure_ascii=False)},
                ],
                response_format={"type": "json_object"},
            )
        except sdk_error() as e:
            raise api_error(e, self.host, self.model) from e
        except json.JSONDecodeError as e:  # a body cut off: asked again (its tokens cannot be read)
            raise unreadable(e, self.host) from e
        used = resp.usage
        usage = Usage(
            text_tokens=used.prompt_tokens if used else 0, output_tokens=used.completion_tokens if used else 0
        )
        content = resp.choices[0].message.content if resp.choices else None
        return content or "", usage

    def close(self) -> None:
        self._client.close()


def _checked(content: str, ids: list[int]) -> dict[int, str]:
    """The reply's translation per id; BadReply unless every id comes back exactly once, non-empty."""
    text = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadReply("the reply is not JSON") from e
    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadReply('the reply has no "segments" list')
    wanted, got = set(ids), {}
    for item in items:
        raw = item.get("id") if isinstance(item, dict) else None
        key = int(raw) if isinstance(raw, int | str) and str(raw).strip().isdigit() else None
        value = item.get("text") if isinstance(item, dict) else None
        if key not in wanted or key in got:
            raise BadReply(f"the reply has an unexpected or repeated id {raw!r}")
        if not isinstance(value, str) or not value.strip():
            raise BadReply(f"line {key} came back empty")
        got[key] = value.strip()
    missing = wanted - got.keys()
    if missing:
        raise BadReply(f"{len(missing)} line(s) missing from the reply (dropped or merged)")
    return got


def translation_target(options: TranslationOptions, engine: str) -> str | None:
    """The language `translate` asks a chat model for, or None where Whisper translates by itself (the
    local engine, into English: offline, as ever). Raises ConfigError when a chat model is needed and
    none can be reached."""
    if engine == "local" and options.to == "en":
        return None
    if not options.reachable:
        raise chat_needed(options.to)
    return options.to
