"""The API's line-up on either side of 2027-02-26: default model, shut-down models, missing models.

The clock is set with `WHISPERBATCH_TODAY`. The server runs a real model (tiny.en) and answers
gpt-transcribe in json only, as the real one does, so cue times come from our own speech detection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, SAMPLES, TODAY, run_cli
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.scoring import find_marker, parse_srt
from whisperbatch.testing.speechbuilder import Built, build_recording

AFTER = "2027-03-01"
BEFORE = TODAY


@pytest.fixture(scope="module")
def asr() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        yield server


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Built:
    """A minute of sentences at known times, two of them right after long pauses."""
    path = tmp_path_factory.mktemp("lineup") / "talk.wav"
    return build_recording(path, duration_s=60.0, seed=11, ffmpeg=ffmpeg, markers_at_s=(22.0, 47.0))


def _env(env: dict[str, str], server: FakeOpenAI, today: str) -> dict[str, str]:
    return {
        **env,
        "OPENAI_API_KEY": CANARY_KEY,
        "OPENAI_BASE_URL": server.base_url,
        "WHISPERBATCH_TODAY": today,
    }


def test_after_the_shutdown_the_default_is_gpt_transcribe_and_cues_keep_their_times(
    env: dict[str, str], asr: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    before = asr.count
    out = tmp_path / "out"
    r = run_cli(["transcribe", str(talk.path), "-f", "srt,vtt,json", "-o", str(out)], _env(env, asr, AFTER))
    assert r.code == 0, r.output
    assert "model gpt-transcribe" in r.stderr and "shuts down" not in r.stderr
    uploads = asr.uploads[before:]
    assert uploads and {(u.model, u.response_format) for u in uploads} == {("gpt-transcribe", "json")}
    cues = parse_srt((out / "talk.srt").read_text())
    assert (out / "talk.vtt").read_text().startswith("WEBVTT")
    found = [(p, find_marker(cues, p, share=0.6)) for p in talk.placed]
    on_time = [p for p, cue in found if cue is not None and abs(cue[0] - p.start_s) <= 1.0]
    for marker in talk.markers:
        assert marker in on_time, (marker, cues)
    assert len(on_time) >= 0.9 * len(talk.placed), (len(on_time), len(talk.placed), cues)


def test_a_shut_down_model_stops_before_any_request(
    env: dict[str, str], asr: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    before = asr.count
    args = ["transcribe", str(talk.path), "--model", "whisper-1", "-o", str(tmp_path)]
    r = run_cli(args, _env(env, asr, AFTER))
    assert r.code == 2, r.output
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert "whisper-1" in line and "2027-02-26" in line and "gpt-transcribe" in line
    assert asr.count == before and not list(tmp_path.glob("talk.*"))


def test_before_the_shutdown_whisper_1_works_with_a_warning(
    env: dict[str, str], asr: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    before = asr.count
    r = run_cli(["transcribe", str(talk.path), "-o", str(tmp_path)], _env(env, asr, BEFORE))
    assert r.code == 0, r.output
    assert "warning: model whisper-1 shuts down on 2027-02-26 (in 95 days)" in r.stderr
    assert "gpt-transcribe" in r.stderr
    assert {u.model for u in asr.uploads[before:]} == {"whisper-1"}


def test_a_model_the_server_does_not_have_stops_the_run_once(
    env: dict[str, str], asr: FakeOpenAI, talk: Built, tmp_path: Path
) -> None:
    fox = (SAMPLES / "fox.wav").read_bytes()  # one short sentence: one request each
    files = []
    for name in ("a", "b", "c"):
        files.append(tmp_path / f"{name}.wav")
        files[-1].write_bytes(fox[:-2] + name.encode() * 2)  # three contents
    asr.missing_models = {"gpt-transcribe"}
    before = asr.count
    try:
        r = run_cli(["transcribe", *map(str, files), "-j", "1"], _env(env, asr, AFTER))
    finally:
        asr.missing_models = set()
    assert r.code == 3, r.output
    assert "stopped: " in r.stderr and "model gpt-transcribe is not available" in r.stderr
    assert asr.count - before == 1  # asked once, not once per file
    assert r.stderr.count("not started: the run was stopped") == 2, r.stderr
    assert not list(tmp_path.glob("*.srt"))
