"""The offline engine with the real bundled model (multilingual base) on the committed samples."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import copy_sample, run_cli, write_silence
from whisperbatch.testing.scoring import parse_srt


def test_transcribe_english_sample_offline(env: dict[str, str], tmp_path: Path) -> None:
    f = copy_sample("talk.m4a", tmp_path / "work")
    r = run_cli(["transcribe", str(f)], env)
    assert r.code == 0, r.output
    assert "engine: local" in r.stderr
    assert f"{f}: done -> talk.txt, talk.srt (1 of 1 chunk(s) transcribed here, $0.0000)" in r.stderr
    assert "upload" not in r.stderr  # nothing leaves the machine
    text = f.with_suffix(".txt").read_text().lower()
    for word in ("quick", "brown", "fox", "lazy", "dog", "subtitles"):
        assert word in text, text
    cues = parse_srt(f.with_suffix(".srt").read_text())
    assert cues and 0.0 <= cues[0][0] < 1.5 and cues[-1][1] <= 9.5
    assert "API equiv" in r.stdout and "0.0000" in r.stdout
    rows = (f.parent / "costs.csv").read_text().splitlines()
    assert rows[0].startswith("file,audio_s,billed_min,engine,model")
    assert ",local,base," in rows[1]


def test_translate_german_to_english_offline(env: dict[str, str], tmp_path: Path) -> None:
    f = copy_sample("german.m4a", tmp_path / "work")
    r = run_cli(["translate", str(f), "--format", "txt,vtt"], env)
    assert r.code == 0, r.output
    text = (f.parent / "german.en.txt").read_text().lower()
    assert "morning" in text and ("coffee" in text or "friends" in text), text
    assert (f.parent / "german.en.vtt").read_text().startswith("WEBVTT")
    assert not (f.parent / "german.txt").exists()


def test_silent_recording_gives_empty_outputs_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    quiet = write_silence(work / "quiet.wav", 8.0)
    r = run_cli(["transcribe", str(quiet), "--format", "txt,srt,json"], env)
    assert r.code == 0, r.output
    assert f"{quiet}: no speech found; its outputs are empty" in r.stderr.splitlines()
    assert quiet.with_suffix(".txt").read_text().strip() == ""
    assert parse_srt(quiet.with_suffix(".srt").read_text()) == []
    assert '"segments": []' in quiet.with_suffix(".json").read_text()


def test_chunks_decoded_side_by_side_are_heard_in_the_first_chunks_language(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The French sample is four chunks (its pauses are long enough to leave out). At `-j 2` the second
    is taken while the first is decoded; asked without the language, the model heard that short
    sentence as Romanian. It waits for the first chunk's language instead, so -j 2 reads as -j 1."""
    f = copy_sample("french.m4a", tmp_path / "work")
    read = []
    for j in ("1", "2"):
        r = run_cli(["transcribe", str(f), "-f", "json", "-j", j, "--force"], env)
        assert r.code == 0, r.output
        doc = json.loads(f.with_suffix(".json").read_text())
        assert doc["language"] == "fr"
        read.append([s["text"] for s in doc["segments"]])
    assert len(read[0]) >= 4
    assert read[1] == read[0]


def test_english_only_model_refuses_to_translate(env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "tiny.en"
    fake.mkdir()
    (fake / "model.bin").write_bytes(b"")
    f = copy_sample("german.m4a", tmp_path / "work")
    r = run_cli(["translate", str(f), "--model", str(fake)], env)
    assert r.code == 2 and "English-only" in r.stderr


def test_other_containers(env: dict[str, str], tmp_path: Path) -> None:
    """WebM (Opus) and WAV side by side in one run: each decoded and transcribed."""
    files = [copy_sample(name, tmp_path / "work") for name in ("morning.webm", "fox.wav")]
    r = run_cli(["transcribe", *map(str, files), "-f", "txt"], env)
    assert r.code == 0, r.output
    for f in files:
        assert len(f.with_suffix(".txt").read_text().split()) >= 8, f
