"""Translation as a step: transcribe (any engine), then a chat model translates the cues, times kept.

The loopback server speaks both the audio API (a real Whisper model behind it) and `chat.completions`,
where it translates deterministically word by word and misbehaves on request (a dropped or merged
line, an empty one, 429 and 500). The translations endpoint is switched off: the line-up after
2027-02-26 has none.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, SAMPLES, copy_sample, run_cli, run_cli_together
from whisperbatch.catalog import CHAT_MODELS
from whisperbatch.cost import CSV_COLUMNS
from whisperbatch.testing import (
    FakeOpenAI,
    drop_id,
    empty_text,
    merge_two,
    not_json,
    rate_limit,
    server_error,
)
from whisperbatch.testing.scoring import normalise, parse_srt
from whisperbatch.testing.speechbuilder import Built, build_recording

AFTER = "2027-03-01"  # the line-up after the shutdown: gpt-transcribe, no translations endpoint
MINI = CHAT_MODELS["gpt-5.4-mini"]


@pytest.fixture(scope="module")
def multilingual() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="base") as server:
        server.translations_endpoint = False
        yield server


@pytest.fixture(scope="module")
def english() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        server.translations_endpoint = False
        yield server


@pytest.fixture()
def server(english: FakeOpenAI) -> Iterator[FakeOpenAI]:
    english.chat_edit = None
    yield english
    english.chat_edit = None


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Built:
    path = tmp_path_factory.mktemp("talk") / "talk.wav"
    return build_recording(path, duration_s=30.0, seed=21, ffmpeg=ffmpeg, markers_at_s=(20.0,))


def _env(env: dict[str, str], server: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        **env,
        "OPENAI_API_KEY": CANARY_KEY,
        "OPENAI_BASE_URL": server.base_url,
        "WHISPERBATCH_TODAY": AFTER,
        **extra,
    }


def _times(srt: Path) -> list[tuple[float, float]]:
    return [(start, end) for start, end, _ in parse_srt(srt.read_text())]


def test_french_into_english_keeps_the_speech_times(
    env: dict[str, str], multilingual: FakeOpenAI, tmp_path: Path
) -> None:
    f = copy_sample("french.m4a", tmp_path / "work")
    truth = json.loads((SAMPLES / "french.json").read_text())["sentences"]
    before, chats = multilingual.count, len(multilingual.chats)
    args = ["translate", str(f), "--language", "fr", "-f", "srt,txt,json"]
    r = run_cli(args, _env(env, multilingual))
    assert r.code == 0, r.output
    assert "translating into en with gpt-5.4-mini" in r.stderr
    audio = multilingual.uploads[before:]
    assert audio and all(u.endpoint == "/v1/audio/transcriptions" for u in audio)
    requests = multilingual.chats[chats:]
    assert requests and all(c.payload["target_language"] == "en" for c in requests)
    assert {c.payload["source_language"] for c in requests} == {"fr"}
    # The French transcript and its English translation, cue for cue at the same times.
    english_srt = f.with_name("french.en.srt")
    assert _times(english_srt) == _times(f.with_name("french.srt"))
    cues = parse_srt(english_srt.read_text())
    for sentence in truth:  # every sentence's cue starts within 1 s of its speech
        assert any(abs(start - sentence["start_s"]) <= 1.0 for start, _, _ in cues), (sentence, cues)
    said = set(normalise(f.with_name("french.en.txt").read_text()).split())
    english = {
        "hello",
        "everyone",
        "thank",
        "the",
        "train",
        "leaves",
        "we",
        "city",
        "meeting",
        "ends",
        "noon",
    }
    assert len(english & said) >= 5, said
    doc = json.loads(f.with_name("french.en.json").read_text())
    assert doc["language"] == "en" and doc["task"] == "translate"


def test_any_language_with_the_cue_times_of_the_transcript(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["translate", str(talk.path), "--to", "de", "-f", "srt,json", "-o", str(out)]
    before, chats = server.count, len(server.chats)
    r = run_cli(args, _env(env, server))
    assert r.code == 0, r.output
    source, german = out / "talk.srt", out / "talk.de.srt"
    assert _times(german) == _times(source)
    pairs = list(zip(parse_srt(source.read_text()), parse_srt(german.read_text()), strict=True))
    assert all(de[2].strip() for _, de in pairs)
    assert sum(en[2] != de[2] for en, de in pairs) >= 0.8 * len(pairs)
    assert {"der", "die", "und", "ist"} & set(normalise(german.read_text()).split())
    # Cost from the usage the servers reported: audio seconds, chat tokens; apart and summed.
    requests = server.chats[chats:]
    prompt = sum(c.prompt_tokens for c in requests)
    completion = sum(c.completion_tokens for c in requests)
    expected = round((prompt * MINI.usd_per_m_input + completion * MINI.usd_per_m_output) / 1e6, 6)
    cost = json.loads((out / "talk.de.json").read_text())["cost"]
    assert cost["translate_usd"] == pytest.approx(expected, abs=2e-6) and expected > 0
    assert cost["translate_input_tokens"] == prompt and cost["translate_output_tokens"] == completion
    billed_s = sum(math.ceil(u.duration_s or 0) for u in server.uploads[before:] if u.status == 200)
    assert cost["transcribe_usd"] == pytest.approx(billed_s / 60 * 0.0045, abs=2e-6)
    assert cost["usd"] == pytest.approx(cost["transcribe_usd"] + cost["translate_usd"], abs=2e-6)
    assert "Transcription USD" in r.stdout and "Translation USD" in r.stdout
    row = next(csv.DictReader((out / "costs.csv").read_text().splitlines()))
    assert tuple(row) == CSV_COLUMNS and float(row["translate_usd"]) == pytest.approx(expected, abs=2e-6)
    report = run_cli(["report", "--json"], _env(env, server))
    (ledger,) = json.loads(report.stdout)
    assert ledger["translate_usd"] == pytest.approx(expected, abs=2e-6)
    assert ledger["transcribe_usd"] == pytest.approx(cost["transcribe_usd"], abs=2e-6)

    # Another language: transcribed once already, so nothing is uploaded; only the chat is asked.
    before, chats = server.count, len(server.chats)
    r = run_cli([*args[:2], "--to", "fr", *args[4:]], _env(env, server))
    assert r.code == 0, r.output
    assert server.count == before and len(server.chats) > chats
    assert _times(out / "talk.fr.srt") == _times(source)
    assert all(t.startswith("[fr] ") for _, _, t in parse_srt((out / "talk.fr.srt").read_text()))
    # The German one again, its outputs gone: from the store, neither uploaded nor translated again.
    german.unlink()
    chats = len(server.chats)
    r = run_cli(args, _env(env, server))
    assert r.code == 0, r.output
    assert server.count == before and len(server.chats) == chats and _times(german) == _times(source)


def test_a_reply_that_drops_merges_or_fails_is_asked_again(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    server.inject_chat(drop_id(), merge_two(), empty_text(), not_json(), rate_limit(0.1), server_error(500))
    chats = len(server.chats)
    args = ["translate", str(talk.path), "--to", "de", "-o", str(out), "-f", "srt"]
    r = run_cli(args, _env(env, server, WHISPERBATCH_TRANSLATE_BATCH_SIZE="4"))
    assert r.code == 0, r.output
    assert "asked again" in r.stderr and "retrying" in r.stderr
    source = parse_srt((out / "talk.srt").read_text())
    german = parse_srt((out / "talk.de.srt").read_text())
    assert [c[:2] for c in german] == [c[:2] for c in source] and all(c[2].strip() for c in german)
    batches = -(-len(source) // 4)
    assert len(server.chats) - chats >= batches + 6


def test_a_batch_that_keeps_failing_is_halved_down_to_single_lines(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    server.chat_edit = lambda payload, segments: segments[:1]  # only ever the first line back
    out = tmp_path / "out"
    r = run_cli(
        ["translate", str(talk.path), "--to", "de", "-o", str(out), "-f", "srt"],
        _env(env, server, WHISPERBATCH_TRANSLATE_BATCH_SIZE="8"),
    )
    assert r.code == 0, r.output
    assert _times(out / "talk.de.srt") == _times(out / "talk.srt")


def test_a_chat_model_the_server_lacks_stops_the_run(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    server.missing_models = {"gpt-5.4-mini"}
    try:
        r = run_cli(["translate", str(talk.path), "--to", "de", "-o", str(tmp_path)], _env(env, server))
    finally:
        server.missing_models = set()
    assert r.code == 3, r.output
    assert "model gpt-5.4-mini is not available" in r.stderr
    assert not list(tmp_path.glob("talk.de.*"))


def test_translation_goes_to_its_own_chat_server(
    env: dict[str, str], server: FakeOpenAI, fake_openai: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    """Transcription on one server, translation on another (a local chat server), each with its key."""
    chats_here, chats_there = len(server.chats), len(fake_openai.chats)
    extra = {
        "WHISPERBATCH_TRANSLATE_BASE_URL": fake_openai.base_url,
        "WHISPERBATCH_TRANSLATE_MODEL": "llama3",
    }
    r = run_cli(["translate", str(talk.path), "--to", "de", "-o", str(tmp_path)], _env(env, server, **extra))
    assert r.code == 0, r.output
    assert len(server.chats) == chats_here
    assert {c.model for c in fake_openai.chats[chats_there:]} == {"llama3"}
    # Its price is not known: shown as unknown, never invented.
    assert "unknown" in r.stdout and 'set [models."llama3"]' in r.stderr
    cost = json.loads(run_cli(["report", "--json"], _env(env, server)).stdout)[-1]
    assert cost["translate_usd"] is None and cost["translate_model"] == "llama3"


def test_estimate_forecasts_both_and_contacts_nothing(
    env: dict[str, str], server: FakeOpenAI, talk: Built
) -> None:
    before, chats = server.count, len(server.chats)
    r, plain = run_cli_together(
        [
            (["estimate", str(talk.path), "--to", "de"], _env(env, server)),
            (["estimate", str(talk.path)], _env(env, server)),
        ]
    )
    assert r.code == 0, r.output
    assert server.count == before and len(server.chats) == chats
    assert "Transcription USD" in r.stdout and "Translation USD" in r.stdout and "gpt-5.4-mini" in r.stdout
    assert "Translation" not in plain.stdout


def test_offline_english_works_and_other_languages_say_what_they_need(
    env: dict[str, str], tmp_path: Path
) -> None:
    f = copy_sample("german.m4a", tmp_path)
    r = run_cli(["translate", str(f), "--to", "de"], env)
    assert r.code == 2, r.output
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert "needs a chat model" in line and "OPENAI_API_KEY" in line and "translate_base_url" in line
    assert not list(tmp_path.glob("german.*.*"))


def test_an_older_costs_csv_is_migrated_not_mixed(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    f = copy_sample("fox.wav", tmp_path)
    old = "file,audio_s,billed_min,engine,model,usd_per_min,usd,api_equivalent_usd,task\n"
    old += "/old/talk.m4a,60.000,1.0000,openai,whisper-1,0.0060,0.006000,0.006000,transcribe\n"
    (tmp_path / "costs.csv").write_text(old)
    r = run_cli(["transcribe", str(f)], {**api_env, "WHISPERBATCH_TODAY": AFTER})
    assert r.code == 0, r.output
    rows = list(csv.reader((tmp_path / "costs.csv").read_text().splitlines()))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    first = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert first["file"] == "/old/talk.m4a" and first["usd"] == first["transcribe_usd"] == "0.006000"
    assert dict(zip(CSV_COLUMNS, rows[2], strict=True))["model"] == "gpt-transcribe"


def test_a_line_no_reply_translates_fails_the_file_and_drops_no_cue(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    server.chat_edit = lambda payload, segments: []  # nothing ever comes back
    r = run_cli(
        ["translate", str(talk.path), "--to", "de", "-o", str(tmp_path)],
        _env(env, server, WHISPERBATCH_TRANSLATE_BATCH_SIZE="2"),
    )
    assert r.code == 1, r.output
    assert f"{talk.path}: line 1 could not be translated by gpt-5.4-mini" in r.stderr
    assert not list(tmp_path.glob("talk.*"))  # nothing half-written, the transcript's outputs neither


def test_the_budget_covers_the_translation_too(
    env: dict[str, str], server: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    """30 s with gpt-transcribe costs at most $0.00225; its translation is forecast at about $0.0008 and
    reserved twice over. $0.003 covers the transcription alone, not both: refused before any request."""
    before, chats = server.count, len(server.chats)
    args = ["translate", str(talk.path), "--to", "de", "-o", str(tmp_path), "--budget", "0.003"]
    r = run_cli(args, _env(env, server))
    assert r.code == 3, r.output
    assert "budget" in r.stderr and server.count == before and len(server.chats) == chats
    r = run_cli(["transcribe", *args[1:2], "-o", str(tmp_path), "--budget", "0.003"], _env(env, server))
    assert r.code == 0, r.output
