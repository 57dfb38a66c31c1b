"""`whisperbatch voices`: registering a voice from a real clip of speech, listing and removing it, as a
user runs the command; user errors are one line each, with their exit code and no traceback; and a
voice registered on one host of a PostgreSQL store is every host's."""

from __future__ import annotations

import math
from pathlib import Path

from conftest import copy_sample, run_cli, write_silence
from whisperbatch.speakers import voiceprint
from whisperbatch.store.postgres import PostgresStore

EXIT_USER_ERROR = 2


def _one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert all(w in lines[0] for w in words), stderr
    assert "Traceback" not in stderr


def _listed(env: dict[str, str]) -> str:
    r = run_cli(["voices", "list"], env)
    assert r.code == 0, r.output
    return r.stdout


def test_a_voice_is_added_listed_replaced_and_removed(env: dict[str, str], tmp_path: Path) -> None:
    talk = copy_sample("talk.m4a", tmp_path / "clips")
    fox = copy_sample("fox.wav", tmp_path / "clips")
    assert _listed(env).strip() == "no voices registered"

    r = run_cli(["voices", "add", "Alice", str(talk)], env)
    assert r.code == 0, r.output
    assert r.stderr.strip() == 'added voice "Alice" from talk.m4a'
    listed = _listed(env)
    assert "Alice" in listed and "talk.m4a" in listed and "Name" in listed and "Added" in listed

    r = run_cli(["voices", "add", "Alice", str(fox)], env)
    assert r.code == EXIT_USER_ERROR
    _one_line_error(r.stderr, '"Alice"', "--replace")
    assert "talk.m4a" in _listed(env)  # the registered voice stays as it was

    r = run_cli(["voices", "add", "Alice", str(fox), "--replace"], env)
    assert r.code == 0, r.output
    assert r.stderr.strip() == 'replaced voice "Alice" from fox.wav'
    listed = _listed(env)
    assert "fox.wav" in listed and "talk.m4a" not in listed

    r = run_cli(["voices", "add", "Bob", str(talk)], env)
    assert r.code == 0, r.output
    listed = _listed(env)
    assert listed.index("Alice") < listed.index("Bob")

    r = run_cli(["voices", "remove", "Alice"], env)
    assert r.code == 0 and r.stderr.strip() == 'removed voice "Alice"', r.output
    r = run_cli(["voices", "remove", "Alice"], env)
    assert r.code == EXIT_USER_ERROR
    _one_line_error(r.stderr, '"Alice"')
    listed = _listed(env)
    assert "Alice" not in listed and "Bob" in listed


def test_a_clip_that_is_missing_or_holds_no_speech_registers_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nobody.m4a"
    r = run_cli(["voices", "add", "Carol", str(missing)], env)
    assert r.code == EXIT_USER_ERROR
    _one_line_error(r.stderr, str(missing))

    silence = write_silence(tmp_path / "silence.wav", 5.0)
    r = run_cli(["voices", "add", "Carol", str(silence)], env)
    assert r.code != 0
    _one_line_error(r.stderr)

    r = run_cli(["voices", "add", "Speaker 2", str(copy_sample("talk.m4a", tmp_path))], env)
    assert r.code == EXIT_USER_ERROR
    _one_line_error(r.stderr, '"Speaker 2"')
    assert _listed(env).strip() == "no voices registered"


def test_a_voice_registered_on_one_host_is_every_hosts(
    env: dict[str, str], pg_url: str, ffmpeg: str, tmp_path: Path
) -> None:
    """One host registers through `--database`, another (the same URL from its environment) lists and
    removes it; the store keeps the clip's voiceprint exactly as `voiceprint` gives it."""
    talk = copy_sample("talk.m4a", tmp_path)
    r = run_cli(["voices", "add", "Alice", str(talk), "--database", pg_url], env)
    assert r.code == 0, r.output
    other_host = {**env, "WHISPERBATCH_DATABASE_URL": pg_url}
    assert "Alice" in _listed(other_host)
    assert _listed(env).strip() == "no voices registered"  # this host's own SQLite store has none

    store = PostgresStore(pg_url)
    try:
        [alice] = store.voices()
    finally:
        store.close()
    expected = voiceprint(talk, ffmpeg=ffmpeg)
    assert len(alice.embedding) == len(expected) == 192
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(alice.embedding, expected, strict=True))

    r = run_cli(["voices", "remove", "Alice"], other_host)
    assert r.code == 0, r.output
    assert _listed(other_host).strip() == "no voices registered"
