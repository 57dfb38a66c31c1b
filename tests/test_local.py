"""The offline engine with the real bundled model (multilingual base) on the committed samples."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from conftest import copy_sample, run_cli, write_silence
from whisperbatch.engines.local import bundled_model_dir, device_and_compute_type, heard_in, speech_clips
from whisperbatch.models import Segment, Span, Word
from whisperbatch.testing.speechbuilder import parse_srt


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


def test_bundled_model_is_joined_once(model_cache: Path) -> None:
    first = bundled_model_dir("base", model_cache)
    stamp = (first / "model.bin").stat().st_mtime_ns
    again = bundled_model_dir("base", model_cache)
    assert again == first and (again / "model.bin").stat().st_mtime_ns == stamp
    assert {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"} <= {
        p.name for p in first.iterdir()
    }


def test_english_only_model_refuses_to_translate(env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "tiny.en"
    fake.mkdir()
    (fake / "model.bin").write_bytes(b"")
    f = copy_sample("german.m4a", tmp_path / "work")
    r = run_cli(["translate", str(f), "--model", str(fake)], env)
    assert r.code == 2 and "English-only" in r.stderr


@pytest.mark.parametrize("name", ["morning.webm", "fox.wav"])
def test_other_containers(env: dict[str, str], tmp_path: Path, name: str) -> None:
    f = copy_sample(name, tmp_path / "work")
    r = run_cli(["transcribe", str(f), "-f", "txt"], env)
    assert r.code == 0, r.output
    assert len(f.with_suffix(".txt").read_text().split()) >= 8


def test_speech_is_decoded_in_windows_of_at_most_30_s() -> None:
    """Batched decoding hears our own utterances, grouped: neighbours joined while the window stays
    under 30 s, a longer utterance split, a little audio kept either side, nothing past the chunk."""
    speech = (Span(0.1, 4.0), Span(5.0, 12.0), Span(14.0, 29.0), Span(31.0, 95.0), Span(96.0, 99.8))
    clips = speech_clips(speech, 100.0)
    assert clips[0] == {"start": 0.0, "end": pytest.approx(29.2)}
    assert all(a["end"] <= b["start"] + 1e-9 for a, b in itertools.pairwise(clips))  # no overlap
    assert all(c["end"] - c["start"] <= 30.0 + 1e-9 for c in clips)
    covered = [(c["start"], c["end"]) for c in clips]
    for span in speech:  # every moment of speech is inside some window
        t = span.start_s
        while t < span.end_s:
            assert any(a <= t <= b for a, b in covered), (t, covered)
            t += 0.1
    assert clips[-1]["end"] == 100.0
    assert speech_clips((), 10.0) == []


def test_auto_device_is_the_gpu_with_float16_where_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    assert device_and_compute_type("auto", "auto") == (("cuda", "float16") if gpus else ("cpu", "int8"))
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert device_and_compute_type("auto", "auto") == ("cuda", "float16")
    assert device_and_compute_type("cpu", "auto") == ("cpu", "int8")
    assert device_and_compute_type("auto", "int8_float16") == ("cuda", "int8_float16")


def test_words_stamped_past_the_clip_they_were_decoded_from_are_not_kept() -> None:
    clips = [{"start": 0.0, "end": 4.2}, {"start": 10.0, "end": 14.0}]
    said = (Word(0.5, 1.0, " Real"), Word(1.0, 1.5, " words"), Word(1.5, 2.0, " here."))
    written_on = (Word(5.0, 5.5, " Written"), Word(5.5, 6.0, " on."))
    segments = (
        Segment(0.5, 6.0, "Real words here. Written on.", words=said + written_on),
        Segment(6.0, 8.0, "Nothing there.", words=(Word(6.0, 7.0, " Nothing"), Word(7.0, 8.0, " there."))),
        Segment(10.5, 12.0, "Kept whole."),
    )
    kept = heard_in(segments, clips)
    assert [(s.start_s, s.end_s, s.text) for s in kept] == [
        (0.5, 2.0, "Real words here."),
        (10.5, 12.0, "Kept whole."),
    ]
    assert kept[0].words == said
