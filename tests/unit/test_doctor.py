"""`run_checks` on what needs no server: ffmpeg, the engine, the offline model, translation without a
chat model, the state folder and the database, each failing on its own while the others still run."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from whisperbatch.config import Settings
from whisperbatch.doctor import Check, run_checks
from whisperbatch.errors import FFmpegMissing
from whisperbatch.models import Task
from whisperbatch.store import MIGRATIONS

TODAY = date(2026, 11, 23)


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return dataclasses.replace(Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache"), **changes)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if not c.ok]


def _ready_model(cache: Path) -> None:
    folder = cache / "models" / "whisper-base"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"weights")


def test_a_local_set_up_passes_every_check_in_order(tmp_path: Path) -> None:
    _ready_model(tmp_path / "cache")
    checks = run_checks(_settings(tmp_path), today=TODAY, find_ffmpeg=lambda: "/opt/ffmpeg")
    assert [c.name for c in checks] == ["ffmpeg", "engine", "offline model", "state folder", "database"]
    assert all(c.ok and c.fix is None for c in checks)
    found = _by_name(checks)
    assert found["ffmpeg"].detail == "/opt/ffmpeg"
    assert found["engine"].detail == "local (auto), model base (offline)"
    assert "ready in" in found["offline model"].detail
    assert (tmp_path / "home").is_dir() and not list((tmp_path / "home").glob(".doctor-*"))
    assert f"{len(MIGRATIONS)} migrations, up to date" in found["database"].detail
    assert (tmp_path / "home" / "whisperbatch.sqlite3").is_file()


def test_each_failure_is_one_line_with_a_fix_and_the_others_still_run(tmp_path: Path) -> None:
    def missing() -> str:
        raise FFmpegMissing()

    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where the home's parent would be")
    settings = _settings(tmp_path, home=blocker / "sub", database=str(tmp_path / "db" / "jobs.sqlite3"))
    checks = run_checks(settings, today=TODAY, find_ffmpeg=missing)
    assert _failed(checks) == ["ffmpeg", "state folder"]
    found = _by_name(checks)
    assert "apt install ffmpeg" in str(found["ffmpeg"].fix)
    assert "not a directory" in found["state folder"].detail.lower()
    assert "WHISPERBATCH_HOME" in str(found["state folder"].fix)
    assert found["database"].ok  # a database of its own is checked all the same


def test_the_default_database_in_an_unwritable_home_is_not_reported_twice(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    checks = run_checks(_settings(tmp_path, home=blocker / "sub"), today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _failed(checks) == ["state folder"]
    assert "database" not in _by_name(checks)


@pytest.mark.parametrize(
    ("database", "said", "fix"),
    [
        ("mysql://db.example/jobs", "use a postgresql:// URL", "SQLite file"),
        ("{tmp}/file.txt/jobs.sqlite3", "cannot open the state database", "SQLite file"),
    ],
)
def test_a_database_that_cannot_be_opened_fails_with_a_fix(
    tmp_path: Path, database: str, said: str, fix: str
) -> None:
    (tmp_path / "file.txt").write_text("")
    settings = _settings(tmp_path, database=database.format(tmp=tmp_path))
    checks = run_checks(settings, today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _failed(checks) == ["database"]
    found = _by_name(checks)["database"]
    assert said in found.detail and fix in str(found.fix)


def test_offline_models(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    empty = run_checks(_settings(tmp_path, model=str(folder)), today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _failed(empty) == ["offline model"]
    assert "no model.bin" in _by_name(empty)["offline model"].detail
    (folder / "model.bin").write_bytes(b"weights")
    ready = run_checks(_settings(tmp_path, model=str(folder)), today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _by_name(ready)["offline model"].ok
    # Not joined yet: the bundled packages are installed with their parts.
    bundled = run_checks(_settings(tmp_path), today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _by_name(bundled)["offline model"].detail.startswith("base, bundled")


def test_engine_choices_that_cannot_work(tmp_path: Path) -> None:
    api_model = run_checks(
        _settings(tmp_path, engine="local", model="whisper-1"), today=TODAY, find_ffmpeg=lambda: "ffmpeg"
    )
    assert _failed(api_model) == ["engine"] and "offline model" not in _by_name(api_model)
    assert "OPENAI_API_KEY" in str(_by_name(api_model)["engine"].fix)
    no_key = run_checks(_settings(tmp_path, engine="openai"), today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _failed(no_key) == ["engine"] and "base URL" not in _by_name(no_key)


def test_translation_without_a_chat_model(tmp_path: Path) -> None:
    _ready_model(tmp_path / "cache")
    english = run_checks(_settings(tmp_path), task=Task.TRANSLATE, today=TODAY, find_ffmpeg=lambda: "ffmpeg")
    assert _by_name(english)["translation model"].ok
    assert "offline" in _by_name(english)["translation model"].detail
    german = run_checks(
        _settings(tmp_path, translate_to="de"), task=Task.TRANSLATE, today=TODAY, find_ffmpeg=lambda: "ffmpeg"
    )
    assert _failed(german) == ["translation model"]
    assert "translate_base_url" in str(_by_name(german)["translation model"].fix)
