"""Speaker labels through the CLI, as a user runs it: `--diarize` on a recording transcribed before
uploads and pays nothing, a damaged speaker model costs the labels but never the transcript, a
registered voice names its speaker (on every host of a PostgreSQL store), translations keep each
cue's speaker, and a queued job keeps its `--diarize`.

The recordings are short conversations of synthetic voices whose every turn is known; the loopback
server answers by speech energy (its segments follow the pauses between turns), so what is asserted
is who each output says speaks when, against who did.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shutil
import sqlite3
import wave
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from whisperbatch.speakers.runtime import BUNDLED, EMBEDDING
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.conversations import (
    VOICES,
    Conversation,
    build_conversation,
    monologue,
)
from whisperbatch.testing.scoring import parse_srt

EXIT_USER_ERROR = 2
LABELLED = "txt,srt,vtt,json,rttm"
PLAIN = "txt,srt,vtt,json"
RATE = 16_000
BOB = VOICES[1]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> Conversation:
    """Ann, Bob and Cid taking turns for 45 s, with pauses long enough for the loopback server's
    segments to stay within a turn. Tests copy it: outputs are written beside the recording."""
    path = tmp_path_factory.mktemp("conversation") / "meeting.wav"
    return build_conversation(path, duration_s=45.0, seed=3, speakers=3, pause_s=(0.7, 1.2))


@pytest.fixture(scope="module")
def bob_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bob alone, saying four sentences (about ten seconds), as a clip to register his voice from."""
    return monologue(tmp_path_factory.mktemp("clip") / "bob.wav", BOB, sentences=4)


def _write_wav(path: Path, frames: bytes) -> Path:
    """16-bit mono PCM at RATE."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(frames)
    return path


def _copy(conversation: Conversation, folder: Path, name: str = "meeting.wav") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(conversation.path, folder / name))


def _who(conversation: Conversation, start_s: float, end_s: float) -> str | None:
    """The speaker of the reference who speaks most within [start_s, end_s]."""
    spoken = Counter[str]()
    for turn in conversation.turns:
        spoken[turn.speaker] += max(0.0, min(end_s, turn.end_s) - max(start_s, turn.start_s))
    best = spoken.most_common(1)
    return best[0][0] if best and best[0][1] > 0 else None


def _segments(rec: Path) -> list[dict[str, Any]]:
    segments: list[dict[str, Any]] = json.loads(rec.with_suffix(".json").read_text())["segments"]
    return segments


def _label_of(conversation: Conversation, rec: Path) -> dict[str, str]:
    """Who the json says each reference speaker is: every segment carries a speaker (every word too),
    and every segment of one reference speaker carries the same label, a label per speaker."""
    segments = _segments(rec)
    assert segments
    labels: dict[str, set[str]] = {}
    for s in segments:
        assert all(w["speaker"] == s["speaker"] for w in s.get("words") or []), s
        who = _who(conversation, s["start_s"], s["end_s"])
        assert who is not None, s
        labels.setdefault(who, set()).add(s["speaker"])
    assert all(len(found) == 1 for found in labels.values()), labels
    named = {who: found.pop() for who, found in labels.items()}
    assert sorted(named) == sorted(conversation.speakers)
    assert len(set(named.values())) == len(named), named
    return named


def _turns(labels: Sequence[str]) -> list[str]:
    """Labels in order, a run of one speaker's as one."""
    return [label for k, label in enumerate(labels) if k == 0 or labels[k - 1] != label]


def _cue_labels(text: str, pattern: str) -> list[str]:
    return [label for _, _, cue in parse_srt(text) for label in re.findall(pattern, cue)]


def _txt_labels(txt: str) -> list[str]:
    return [paragraph.split(": ", 1)[0] for paragraph in txt.strip().split("\n\n")]


def _rttm_speakers(rttm: str) -> set[str]:
    lines = [line.split() for line in rttm.splitlines()]
    assert lines and all(len(f) == 10 and f[0] == "SPEAKER" for f in lines), rttm
    return {f[7] for f in lines}


def _assert_labelled(conversation: Conversation, rec: Path) -> dict[str, str]:
    """Every format tells the same turns, each by the speaker who said it; returns the labels."""
    named = _label_of(conversation, rec)
    in_json = _turns([s["speaker"] for s in _segments(rec)])
    assert _turns(_cue_labels(rec.with_suffix(".srt").read_text(), r"\[([^\]]+)\]")) == in_json
    assert _turns(_cue_labels(rec.with_suffix(".vtt").read_text(), r"<v ([^>]+)>")) == in_json
    assert _txt_labels(rec.with_suffix(".txt").read_text()) == in_json
    in_rttm = _rttm_speakers(rec.with_suffix(".rttm").read_text())
    assert in_rttm == {label.replace(" ", "_") for label in named.values()}
    return named


def _assert_unlabelled(rec: Path) -> None:
    assert all("speaker" not in s for s in _segments(rec))
    for ext in ("srt", "vtt", "txt"):
        text = rec.with_suffix(f".{ext}").read_text()
        assert "Speaker" not in text and "<v " not in text, (ext, text)


def _assert_translation_labelled(rec: Path, language: str) -> None:
    """The translation's srt and vtt cues: the times and the speaker labels of the source's, with
    translated text."""
    for ext, pattern in (("srt", r"\[([^\]]+)\]"), ("vtt", r"<v ([^>]+)>")):
        source = parse_srt(rec.with_suffix(f".{ext}").read_text())
        translated = parse_srt(rec.with_suffix(f".{language}.{ext}").read_text())
        assert [c[:2] for c in translated] == [c[:2] for c in source]
        labels = [re.findall(pattern, c[2]) for c in source]
        assert all(labels) and [re.findall(pattern, c[2]) for c in translated] == labels
        assert any(de[2] != en[2] for en, de in zip(source, translated, strict=True))


def _query(env: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    """Rows of this host's store (its SQLite file), read only."""
    db_path = Path(env["WHISPERBATCH_HOME"]) / "whisperbatch.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute(sql).fetchall()


def _paid_usd(env: dict[str, str]) -> float:
    """What the ledger says was spent on transcription, all runs together."""
    return float(_query(env, "SELECT COALESCE(SUM(transcribe_usd), 0) FROM ledger")[0][0])


def _cost_rows_usd(rec: Path) -> list[float]:
    """What each row of the `costs.csv` beside `rec`'s outputs (one per run that wrote them) spent on
    transcription."""
    rows = csv.DictReader(rec.with_name("costs.csv").read_text().splitlines())
    return [float(row["transcribe_usd"]) for row in rows]


def test_labels_and_their_translation_added_later_upload_nothing_and_force_redoes_them(
    api_env: dict[str, str], fake_openai: FakeOpenAI, conversation: Conversation, tmp_path: Path
) -> None:
    rec = _copy(conversation, tmp_path / "in")
    r = run_cli(["transcribe", str(rec), "-f", PLAIN], api_env)
    assert r.code == 0, r.output
    uploads, paid = fake_openai.count, _paid_usd(api_env)
    assert uploads > 0 and paid > 0
    _assert_unlabelled(rec)

    r = run_cli(["transcribe", str(rec), "--diarize", "-f", LABELLED], api_env)
    assert r.code == 0, r.output
    assert f"{rec}: transcribed before; adding speaker labels, no upload" in r.stderr
    assert "(0 of 0 chunk(s) uploaded, $0.0000)" in r.stderr
    assert fake_openai.count == uploads
    named = _assert_labelled(conversation, rec)
    assert all(label.startswith("Speaker ") for label in named.values())
    [(labelled_at,)] = _query(api_env, "SELECT created_at FROM speaker_labels")

    r = run_cli(["transcribe", str(rec), "--diarize", "-f", LABELLED], api_env)
    assert r.code == 0, r.output
    assert f"{rec}: outputs are up to date, skipped" in r.stderr

    # A translation added now: the stored transcript and labels, only the chat model asked.
    r = run_cli(["translate", str(rec), "--to", "de", "--diarize", "-f", "srt,vtt"], api_env)
    assert r.code == 0, r.output
    assert f"{rec}: transcribed before; adding speaker labels and translating into de, no upload" in r.stderr
    assert fake_openai.count == uploads and fake_openai.chats
    _assert_translation_labelled(rec, "de")

    r = run_cli(["transcribe", str(rec), "-f", PLAIN], api_env)
    assert r.code == 0, r.output
    assert f"{rec}: outputs written from the stored transcript, no upload" in r.stderr
    _assert_unlabelled(rec)
    assert fake_openai.count == uploads and _paid_usd(api_env) == pytest.approx(paid)
    first, *again = _cost_rows_usd(rec)
    assert first == pytest.approx(paid) and again == [0.0, 0.0, 0.0]

    r = run_cli(["transcribe", str(rec), "--force", "--diarize", "-f", LABELLED], api_env)
    assert r.code == 0, r.output
    assert f"{rec}: done again from the start (--force)" in r.stderr
    assert fake_openai.count > uploads  # --force redoes the job: its transcript and its labels
    [(relabelled_at,)] = _query(api_env, "SELECT created_at FROM speaker_labels")
    assert relabelled_at > labelled_at
    assert _assert_labelled(conversation, rec) == named


def test_a_damaged_speaker_model_costs_the_labels_not_the_transcript(
    api_env: dict[str, str], fake_openai: FakeOpenAI, conversation: Conversation, tmp_path: Path
) -> None:
    models = Path(shutil.copytree(BUNDLED, tmp_path / "models"))
    (models / EMBEDDING).write_bytes(b"not a model" * 1000)
    first = _copy(conversation, tmp_path / "in")
    with wave.open(str(first)) as w:  # another recording: the first 35 s of it
        _write_wav(first.with_name("other.wav"), w.readframes(35 * RATE))
    second = first.with_name("other.wav")
    damaged = {**api_env, "WHISPERBATCH_SPEAKER_MODELS": str(models)}
    r = run_cli(["transcribe", str(first), str(second), "--diarize", "-f", LABELLED], damaged)
    assert r.code == 0, r.output
    assert "warning: 2 file(s) done with warnings" in r.stderr
    for rec in (first, second):
        assert f"{rec}: done -> " in r.stderr
        [line] = [x for x in r.stderr.splitlines() if str(rec) in x and EMBEDDING in x]
        assert line.strip().startswith(f"{rec}: no speaker labels: speaker model {EMBEDDING} "), line
        _assert_unlabelled(rec)
        assert rec.with_suffix(".rttm").read_text() == ""
        warnings = json.loads(rec.with_suffix(".json").read_text())["warnings"]
        assert len(warnings) == 1 and EMBEDDING in warnings[0]

    # The model mended: a run asking for labels again makes them, from the stored transcript.
    uploads = fake_openai.count
    r = run_cli(["transcribe", str(first), "--diarize", "-f", LABELLED], api_env)
    assert r.code == 0, r.output
    assert f"{first}: transcribed before; adding speaker labels, no upload" in r.stderr
    assert fake_openai.count == uploads and "done with warnings" not in r.stderr
    _assert_labelled(conversation, first)


def test_a_voice_registered_on_one_host_names_its_speaker_on_another_until_removed(
    api_env: dict[str, str], pg_url: str, conversation: Conversation, bob_clip: Path, tmp_path: Path
) -> None:
    """Two hosts of one PostgreSQL store: one registers Bob's voice from a clip of him alone (a process
    given `--database`), the other (the store's URL from its environment) labels a conversation where
    Bob speaks; once the voice is removed, a run with `--force` labels him as any speaker."""
    this_host = ["--database", pg_url]
    other_host = {**api_env, "WHISPERBATCH_DATABASE_URL": pg_url}
    r = run_cli(["voices", "add", "Bob", str(bob_clip), *this_host], api_env)
    assert r.code == 0, r.output
    rec = _copy(conversation, tmp_path / "elsewhere")
    r = run_cli(["transcribe", str(rec), "--diarize", "-f", LABELLED], other_host)
    assert r.code == 0, r.output
    named = _assert_labelled(conversation, rec)
    assert named["Bob"] == "Bob"
    assert all(named[who].startswith("Speaker ") for who in ("Ann", "Cid"))
    assert "<v Bob>" in rec.with_suffix(".vtt").read_text()

    r = run_cli(["voices", "remove", "Bob", *this_host], api_env)
    assert r.code == 0, r.output
    r = run_cli(["transcribe", str(rec), "--diarize", "--force", "-f", LABELLED], other_host)
    assert r.code == 0, r.output
    named = _assert_labelled(conversation, rec)
    assert all(label.startswith("Speaker ") for label in named.values())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-f", "rttm"], ("the rttm format lists speakers: add --diarize",)),
        (["--diarize", "--min-speakers", "3", "--max-speakers", "2"], ("--min-speakers", "max_speakers")),
    ],
)
def test_speaker_options_that_cannot_hold_are_one_line_and_exit_2(
    env: dict[str, str], conversation: Conversation, tmp_path: Path, args: list[str], words: tuple[str, ...]
) -> None:
    rec = _copy(conversation, tmp_path / "in")
    r = run_cli(["transcribe", str(rec), *args], env)
    assert r.code == EXIT_USER_ERROR, r.output
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(w in line for w in words), line
    assert sorted(p.name for p in rec.parent.iterdir()) == [rec.name]


def test_a_queued_job_keeps_its_diarize_for_the_worker(
    api_env: dict[str, str], fake_openai: FakeOpenAI, conversation: Conversation, tmp_path: Path
) -> None:
    rec = _copy(conversation, tmp_path / "share")
    r = run_cli(["enqueue", str(rec), "--diarize", "-f", LABELLED], api_env)
    assert r.code == 0, r.output
    assert fake_openai.count == 0 and not rec.with_suffix(".rttm").exists()
    r = run_cli(["worker", "--once"], api_env)  # its own settings say nothing of speakers
    assert r.code == 0, r.output
    _assert_labelled(conversation, rec)
