"""The test server's translator at `POST /v1/chat/completions`.

The last user message is a JSON payload ({"source_language", "target_language", "glossary", "before",
"segments": [{"id", "text"}], "after"}) and the answer's content is `{"segments": [{"id", "text"}]}`,
translated word by word through small lexicons (French to English when the target is "en", English to
German for "de", a "[xx] " prefix for any other target). Word lists rather than a model keep the answers
deterministic and instant, so a test can say exactly which words a translated cue must hold.
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import UNAUTHORIZED, ChatFault, error_body, model_not_found
from .wire import Reply, Segments, json_reply, str_field


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


def message_text(message: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def translator_payload(messages: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The last user message parsed as the translator's payload, or why it cannot be."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return None, "fake translator: no user message"
    try:
        payload = json.loads(message_text(users[-1]))
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


def misbehave(fault: ChatFault | None, segments: Segments) -> str:
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


def answer_chat(
    request: dict[str, Any],
    fault: ChatFault | None,
    *,
    authorized: bool,
    missing_models: set[str],
    chat_edit: ChatEdit | None,
    next_id: Callable[[], str],
) -> tuple[Reply, tuple[int, int]]:
    """Validate like the real API, then "translate"; returns the reply and the tokens it billed (prompt,
    completion). `next_id` numbers the answers that get through."""
    bad = "invalid_request_error"
    model = str_field(request, "model")
    messages = request.get("messages")
    none = (0, 0)  # nothing billed
    if not authorized:
        return json_reply(401, UNAUTHORIZED), none
    if not request:
        msg = "We could not parse the JSON body of your request."
        return json_reply(400, error_body(msg, bad)), none
    if not model:
        return json_reply(400, error_body("you must provide a model parameter", bad, "model")), none
    if model in missing_models:
        return json_reply(404, model_not_found(model)), none
    if not isinstance(messages, list) or not messages:
        msg = "Missing required parameter: 'messages'."
        return json_reply(400, error_body(msg, bad, "messages", "missing_required_parameter")), none
    texts = [message_text(m) for m in messages]
    response_format = request.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format.get("type") == "json_object"
        and not any("json" in t.lower() for t in texts)
    ):
        msg = "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
        msg += "'json_object'."
        return json_reply(400, error_body(msg, bad, "messages")), none
    payload, problem = translator_payload(messages)
    if problem is not None or payload is None:
        return json_reply(400, error_body(problem or "fake translator: no payload", bad, "messages")), none
    target = payload["target_language"].lower()
    segments: Segments = [
        {"id": s["id"], "text": translate_text(s["text"], target)} for s in payload["segments"]
    ]
    if chat_edit is not None:
        segments = chat_edit(payload, [dict(s) for s in segments])
    content = misbehave(fault, segments)
    prompt_tokens = math.ceil(sum(len(t) for t in texts) / 4)
    completion_tokens = math.ceil(len(content) / 4)
    answer: dict[str, Any] = {
        "id": next_id(),
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
    return json_reply(200, answer), (prompt_tokens, completion_tokens)
