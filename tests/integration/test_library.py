"""`whisperbatch.transcribe`: the library call under the CLI, in this process, on the real offline
model and through the loopback API server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import whisperbatch
from conftest import copy_sample
from whisperbatch.pipeline import ChunkDone, Event
from whisperbatch.testing import FakeOpenAI


@pytest.fixture()
def in_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture()
def in_api_env(api_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in api_env.items():
        monkeypatch.setenv(name, value)


def test_transcribe_offline_returns_a_typed_transcript_and_writes_nothing(
    in_env: None, tmp_path: Path
) -> None:
    recording = copy_sample("talk.m4a", tmp_path / "in")
    events: list[Event] = []
    t = whisperbatch.transcribe(recording, on_event=events.append)
    assert isinstance(t, whisperbatch.Transcript)
    assert (t.engine, t.model, t.language) == ("local", "base", "en")
    assert "quick brown fox" in t.text.lower()
    assert t.segments and all(s.words for s in t.segments)
    for s in t.segments:
        assert 0.0 <= s.start_s < s.end_s <= t.duration_s
        assert all(s.start_s - 0.01 <= w.start_s <= w.end_s <= s.end_s + 0.01 for w in s.words)
    assert any(isinstance(e, ChunkDone) for e in events)
    assert [p.name for p in recording.parent.iterdir()] == ["talk.m4a"]  # nothing written beside it


def test_a_recording_done_before_is_answered_from_the_store(
    in_api_env: None, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """The second call uploads nothing, whether its outputs are written again or already up to date."""
    recording = copy_sample("talk.m4a", tmp_path / "in")
    first = whisperbatch.transcribe(recording, output_format="srt")
    sent = len(fake_openai.uploads)
    assert sent >= 1 and recording.with_suffix(".srt").exists()
    assert whisperbatch.transcribe(recording) == first  # from the store, into a folder dropped after
    assert whisperbatch.transcribe(recording, output_format=["srt"]) == first  # talk.srt is up to date
    assert len(fake_openai.uploads) == sent
    again = whisperbatch.transcribe(recording, force=True)
    assert len(fake_openai.uploads) > sent and again.text != first.text  # a fresh answer, not the stored one


def test_translate_into_another_language_returns_the_translation(
    in_api_env: None, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.transcriber = lambda upload, index, start_s, end_s: "The sun and the sky."
    recording = copy_sample("talk.m4a", tmp_path / "in")
    source = whisperbatch.transcribe(recording)
    german = whisperbatch.transcribe(recording, task="translate", to="de")
    assert german.language == "de" and "und" in german.text.split() and german.text != source.text
    assert len(german.segments) >= 1
    assert german.segments[0].start_s == pytest.approx(source.segments[0].start_s, abs=0.01)


def test_bad_input_raises_one_error_naming_the_file(in_env: None, tmp_path: Path) -> None:
    with pytest.raises(whisperbatch.WhisperbatchError, match=r"missing\.m4a: no such file"):
        whisperbatch.transcribe(tmp_path / "missing.m4a")
    notes = tmp_path / "notes.m4a"
    notes.write_text("not audio")
    with pytest.raises(whisperbatch.WhisperbatchError, match=r"notes\.m4a"):
        whisperbatch.transcribe(notes)


def test_a_call_from_another_thread_works(in_api_env: None, fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    """Signal handlers can only be set on the main thread: a script's worker thread still gets its
    transcript."""
    recording = copy_sample("talk.m4a", tmp_path / "in")
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(whisperbatch.transcribe(recording)))
    worker.start()
    worker.join()
    assert len(got) == 1 and isinstance(got[0], whisperbatch.Transcript)


def test_a_target_language_without_the_translate_task_is_an_error(in_env: None, tmp_path: Path) -> None:
    recording = copy_sample("talk.m4a", tmp_path / "in")
    with pytest.raises(whisperbatch.WhisperbatchError, match='task="translate"'):
        whisperbatch.transcribe(recording, to="de")
    with pytest.raises(whisperbatch.WhisperbatchError, match="task must be transcribe or translate"):
        whisperbatch.transcribe(recording, task="summarise")
