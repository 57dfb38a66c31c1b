"""The API server's checks: the base URL answers, the key is accepted, the model and the chat model
exist there, and none of it costs anything.

The server is asked `GET /v1/models` (the list) and `GET /v1/models/{id}`: OpenAI bills neither, and
both need the key, so a 401 to the list is a refused key. Two answers are judged apart:
- a 401 that says the key lacks a scope ("Missing scopes: api.model.read", OpenAI's restricted keys)
  names a key the server knows: the key is not refused, only the model cannot be asked about;
- some compatible servers have no model list (404). Such a 404 does not say the key is wrong: OpenAI
  and the gateways in front of compatible servers check the key before they route a request, so a
  server that wanted a key and got a wrong one would have answered 401. The only request that would
  prove the key there is a transcription, which is paid, so the key is reported as not checked rather
  than failed, and so is the model (its own 404 would mean "no such endpoint", not "no such model").
  A URL given without its `/v1` looks the same, so that one is tried too, and said when it answers.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..catalog import MODELS, lineup_notice, model_info
from ..config import Settings
from ..engines.openai import DEFAULT_BASE_URL, sdk_client
from ..errors import ConfigError
from ..translate import translation_target
from .check import Check

if TYPE_CHECKING:
    import openai

# Answers to the model list that mean the server has none: no such path, or no such method.
_NO_LIST = (404, 405)


@dataclass(frozen=True)
class _Probe:
    """What `GET /models` on one server said: `status` None when it could not be reached (`reason`
    says why); `listed` the model names when it answered with a list; `restricted` when the key was
    known but may not list models (OpenAI's restricted keys without the model scope); `api_at` where
    the API answers instead, for a URL that lacks its `/v1`."""

    client: openai.OpenAI
    host: str
    has_key: bool
    status: int | None
    reason: str = ""
    listed: tuple[str, ...] = ()
    restricted: bool = False
    api_at: str | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None and self.status < 500

    @property
    def usable(self) -> bool:
        """Answered as an OpenAI-compatible server, and took the key: the model can be asked about."""
        return self.answered and not self.key_refused and not self.reason and not self.api_at

    @property
    def key_refused(self) -> bool:
        return self.status in (401, 403) and not self.restricted

    @property
    def has_list(self) -> bool:
        return self.status == 200

    @property
    def unchecked(self) -> str:
        """Why the server cannot be asked about a model."""
        if self.restricted:
            return "the key may not list models (a restricted key)"
        if self.status in _NO_LIST:
            return f"{self.host} has no /v1/models (HTTP {self.status})"
        return f"{self.host} answered HTTP {self.status} to /v1/models"


class Servers:
    """One probe per server and key, shared by the transcription and the translation checks."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._probes: dict[tuple[str | None, str | None], _Probe] = {}

    def probe(self, api_key: str | None, base_url: str | None) -> _Probe:
        if (api_key, base_url) not in self._probes:
            self._probes[api_key, base_url] = _probe(api_key, base_url, self.timeout_s)
        return self._probes[api_key, base_url]

    def close(self) -> None:
        for probe in self._probes.values():
            probe.client.close()


def server_host(base_url: str | None) -> str:
    """`api.openai.com`, `127.0.0.1:8000`: the server a base URL names, as lines show it."""
    return urlsplit(base_url or DEFAULT_BASE_URL).netloc or str(base_url)


def _probe(api_key: str | None, base_url: str | None, timeout_s: float) -> _Probe:
    import openai

    client = sdk_client(api_key, base_url, timeout_s)
    found = _Probe(client, server_host(base_url), bool(api_key), None)
    try:
        page = client.models.list()
        listed = tuple(m.id for m in page.data)
    except openai.APITimeoutError:
        return dataclasses.replace(found, reason=f"no answer within {timeout_s:g} s")
    except openai.APIConnectionError as e:
        return dataclasses.replace(found, reason=_root_cause(e))
    except openai.APIStatusError as e:
        scopes = ("missing scopes", "insufficient permissions")
        restricted = e.status_code in (401, 403) and any(w in e.message.lower() for w in scopes)
        found = dataclasses.replace(found, status=e.status_code, restricted=restricted)
        if e.status_code == 404 and base_url and not base_url.rstrip("/").endswith("/v1"):
            found = dataclasses.replace(found, api_at=_api_under_v1(client, base_url))
        return found
    except (openai.APIError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        return dataclasses.replace(found, status=200, reason=f"not an OpenAI-compatible answer ({e})")
    return dataclasses.replace(found, status=200, listed=listed)


def _api_under_v1(client: openai.OpenAI, base_url: str) -> str | None:
    """`base_url` + `/v1` when the API answers there (a list, or a 401 asking for a key): the usual slip
    of a URL given without its `/v1`."""
    import openai

    url = base_url.rstrip("/") + "/v1"
    try:
        client.with_options(base_url=url).models.list()
    except openai.APIStatusError as e:
        return url if e.status_code in (401, 403) else None
    except openai.APIError:
        return None
    return url


def _root_cause(e: BaseException) -> str:
    """The innermost error's message (`[Errno 111] Connection refused`), which says why."""
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e) or type(e).__name__


def api_checks(settings: Settings, probe: _Probe, model: str, today: date) -> list[Check]:
    """The server's URL, the key and the transcription model."""
    url = settings.base_url or "the OpenAI API"
    where = "--base-url / OPENAI_BASE_URL"
    checks = []
    if probe.status is None:
        fix = f"check that the server is running at that address, or correct {where} (now {url})"
        checks.append(Check("base URL", False, f"cannot reach {probe.host} ({probe.reason})", fix))
    elif probe.api_at:
        detail = f"no OpenAI API at {url}: it answers at {probe.api_at}"
        checks.append(Check("base URL", False, detail, f"--base-url {probe.api_at} (or OPENAI_BASE_URL)"))
    elif not probe.answered or probe.reason:
        problem = probe.reason or f"HTTP {probe.status}"
        fix = f"check that {where} (now {url}) is an OpenAI-compatible server, and that it is working"
        checks.append(Check("base URL", False, f"{probe.host} answers, but {problem}", fix))
    else:
        checks.append(Check("base URL", True, f"{url} answers"))
        checks.append(_key(probe, "API key", "OPENAI_API_KEY (or api_key in config.toml)"))
    info = model_info(model, settings.models)
    try:
        going = lineup_notice(info, today)
    except ConfigError:
        fix = f"--model {info.successor} (its successor)" if info.successor else "choose another --model"
        fix += f'; a server that still serves it: [models."{model}"] retires = false in config.toml'
        assert info.retires is not None
        detail = f"{model} was shut down on {info.retires.isoformat()}"
        return [*checks, Check("model", False, detail, fix)]
    if probe.usable:
        when = ""
        if going and info.retires:
            days = (info.retires - today).days
            then = f"; its successor is {info.successor}" if info.successor else ""
            when = f"; shuts down on {info.retires.isoformat()} (in {days} days{then})"
        checks.append(_model(probe, "model", model, "--model", when))
    return checks


def _key(probe: _Probe, name: str, setting: str) -> Check:
    """Whether the server accepted the key with the model list (see the module's docstring)."""
    if probe.key_refused:
        detail = f"refused by {probe.host} (HTTP {probe.status})"
        if not probe.has_key:
            detail = f"none set, and {probe.host} needs one (HTTP {probe.status})"
        return Check(name, False, detail, f"set {setting} to a key {probe.host} accepts")
    if probe.restricted:
        return Check(name, True, f"known to {probe.host}, but {probe.unchecked}")
    if not probe.has_list:
        return Check(name, True, f"not checked: {probe.unchecked}")
    if not probe.has_key:
        return Check(name, True, f"none set; {probe.host} asks for none")
    return Check(name, True, f"accepted by {probe.host}")


def _model(probe: _Probe, name: str, model: str, flag: str, note: str = "") -> Check:
    """Whether the server has `model` (`GET /models/{model}`)."""
    import openai

    if not probe.has_list:
        return Check(name, True, f"{model}{note}; not checked: {probe.unchecked}")
    try:
        probe.client.models.retrieve(model)
    except openai.APIStatusError as e:
        if e.status_code == 404:
            known = [m for m in probe.listed if _hears(m) == (flag == "--model") and m != model][:6]
            offer = f": one {probe.host} lists, such as {', '.join(known)}" if known else ""
            return Check(name, False, f"{model} not found at {probe.host}", f"{flag} NAME{offer}")
        detail = f"{probe.host} answered HTTP {e.status_code} when asked for {model}"
        return Check(name, False, detail, "run doctor again; if it stays, check the server")
    except openai.APIError as e:
        detail = f"{probe.host} did not answer when asked for {model} ({type(e).__name__})"
        return Check(name, False, detail, "run doctor again; if it stays, check the server")
    return Check(name, True, f"{model} at {probe.host}{note}")


def _hears(model: str) -> bool:
    """Whether a listed model looks like a transcription model (else: a chat model, to offer for
    translation)."""
    return model in MODELS or "whisper" in model or "transcri" in model


def translation_checks(settings: Settings, servers: Servers) -> list[Check]:
    """The chat model that translates: on its own server and key, else the transcription server's."""
    name = "translation model"
    options = settings.translation_options()
    try:
        target = translation_target(options, settings.engine_name)
    except ConfigError:
        return [
            Check(
                name,
                False,
                f"translating into {options.to} needs a chat model, and no key or chat server is set",
                "set OPENAI_API_KEY, or translate_base_url and translate_model (an OpenAI-compatible "
                "chat server); offline, the local engine translates into English only (--to en)",
            )
        ]
    if target is None:
        return [Check(name, True, "none needed: Whisper translates into English itself, offline")]
    probe = servers.probe(options.api_key, options.base_url)
    shared = settings.engine_name == "openai" and (options.api_key, options.base_url) == (
        settings.api_key,
        settings.base_url,
    )
    if shared and not probe.usable:
        return []  # the transcription server's own line says what is wrong with it
    fix = "start the chat server, or correct translate_base_url (or --base-url)"
    if probe.status is None:
        return [Check(name, False, f"cannot reach {probe.host} ({probe.reason})", fix)]
    if probe.api_at:
        detail = f"no OpenAI API at {options.base_url}: it answers at {probe.api_at}"
        where = "(config.toml, or WHISPERBATCH_TRANSLATE_BASE_URL)"
        return [Check(name, False, detail, f"translate_base_url {probe.api_at} {where}")]
    if not probe.answered or probe.reason:
        problem = probe.reason or f"HTTP {probe.status}"
        return [Check(name, False, f"{probe.host} answers, but {problem}", fix)]
    if probe.key_refused:
        return [_key(probe, name, "translate_api_key (or OPENAI_API_KEY)")]
    into = f", translating into {target}"
    return [_model(probe, name, options.model.name, "--translate-model", into)]
