"""`whisperbatch serve` as an OpenAI audio server: the real `openai` SDK and whisperbatch itself
(`--base-url`, and its `doctor`) as its clients, the tests' OpenAI server behind it as the engine.
Where words matter that upstream runs a real model (tiny.en), so a transcript that reached the client
through the job, its outputs and the response shapes is checked against what the sample says.

A server killed mid-job (kill -9) and started again on the same home gives the same request its
stored result, and the upstream is not sent again any chunk whose answer the server had stored."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from conftest import CANARY_KEY, assemble, copy_sample, distinct_words, run_cli
from e2e.serve_support import module_env
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.recordings import SAMPLES
from whisperbatch.testing.scoring import parse_srt
from whisperbatch.testing.serving import Served

FOX = SAMPLES / "fox.wav"  # "the quick brown fox … lazy dog", 8.94 s
FOX_WORDS = ("quick", "fox", "lazy", "subtitles")  # the words tiny.en hears right
CLIENT_KEY = "wb_unused-on-loopback"  # the SDK needs a key; a loopback server asks for none


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as fake:
        yield fake


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, upstream: FakeOpenAI
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve")
    with Served([], module_env(folder, model_cache, upstream), cwd=folder) as server:
        yield server


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[OpenAI]:
    with OpenAI(base_url=served.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=120) as sdk:
        yield sdk


def said_fox(text: str) -> bool:
    lowered = text.lower()
    return all(word in lowered for word in FOX_WORDS)


def test_the_sdk_gets_the_words_in_every_format_from_one_job(client: OpenAI, upstream: FakeOpenAI) -> None:
    sent = upstream.count
    with FOX.open("rb") as f:
        plain = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="json")
    assert said_fox(plain.text), plain.text
    assert plain.usage is not None and plain.usage.type == "duration" and plain.usage.seconds == 9
    uploads = upstream.count - sent
    assert uploads >= 1

    text = client.audio.transcriptions.create(model="whisper-1", file=FOX, response_format="text")
    assert isinstance(text, str) and said_fox(text) and text.strip() == plain.text

    srt = client.audio.transcriptions.create(model="whisper-1", file=FOX, response_format="srt")
    cues = parse_srt(srt)
    assert cues and said_fox(" ".join(c[2] for c in cues)), srt
    assert 0.0 <= cues[0][0] <= 1.5 and cues[-1][1] <= 9.0, (
        cues
    )  # the speech starts at 0.6 s, and ends before 9 s
    vtt = client.audio.transcriptions.create(model="whisper-1", file=FOX, response_format="vtt")
    assert vtt.startswith("WEBVTT") and said_fox(vtt)

    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=FOX,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "english" and verbose.duration == pytest.approx(8.94, abs=0.05)
    assert said_fox(verbose.text) and verbose.segments and verbose.words
    first = verbose.segments[0]
    assert (first.id, first.temperature) == (0, 0.0) and 0.0 <= first.start < first.end <= 9.0
    assert said_fox(" ".join(w.word for w in verbose.words))
    assert all(w.start <= w.end for w in verbose.words)
    assert [w.start for w in verbose.words] == sorted(w.start for w in verbose.words)
    # One recording, one job: every format after the first came from the stored job.
    assert upstream.count - sent == uploads


def test_bad_fields_are_refused_as_openai_errors_naming_them(client: OpenAI, upstream: FakeOpenAI) -> None:
    sent = upstream.count
    with pytest.raises(openai.BadRequestError) as bad_format:
        client.audio.transcriptions.create(model="whisper-1", file=FOX, response_format="diarized_json")
    assert bad_format.value.param == "response_format"
    assert bad_format.value.code == "invalid_value"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.audio.transcriptions.create(model="whisper-1", file=FOX, extra_body={"beam": "5"})
    assert unknown.value.param == "beam" and "beam" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as language:
        client.audio.transcriptions.create(model="whisper-1", file=FOX, language="klingon")
    assert language.value.param == "language"
    assert upstream.count == sent  # refused at the door: nothing sent on


def test_models_lists_the_server_model_and_the_whisper_1_alias(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "whisper-1"  # the server's own model (the API's model of the day), first
    assert "gpt-transcribe" in ids
    assert client.models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"


def test_whisperbatch_itself_transcribes_through_the_server(
    served: Served, env: dict[str, str], tmp_path: Path
) -> None:
    recording = copy_sample("fox.wav", tmp_path / "work")
    client_env = {**env, "OPENAI_API_KEY": CLIENT_KEY}
    r = run_cli(["transcribe", str(recording), "--base-url", served.url + "/v1", "-f", "txt,srt"], client_env)
    assert r.code == 0, r.output
    assert said_fox(recording.with_suffix(".txt").read_text())
    cues = parse_srt(recording.with_suffix(".srt").read_text())
    assert cues and 0.0 <= cues[0][0] <= 1.5


def test_doctor_pointed_at_the_server_finds_its_model(served: Served, env: dict[str, str]) -> None:
    r = run_cli(["doctor", "--base-url", served.url + "/v1"], {**env, "OPENAI_API_KEY": CLIENT_KEY})
    assert r.code == 0, r.output
    assert "✔ model: whisper-1" in r.stdout and "✘" not in r.stdout


def _chunks_stored(served: Served) -> int:
    """Chunks the server said were done: each is told once its answer is stored."""
    return len(re.findall(r": chunk \d+ done", served.log))


def test_a_server_killed_mid_job_gives_the_stored_result_without_a_second_upload(
    tmp_path: Path, model_cache: Path, ffmpeg: str
) -> None:
    recording = tmp_path / "talk.wav"
    assemble(recording, [True] * 12, ffmpeg)  # two minutes of speech: three chunks or more
    small_chunks = {"WHISPERBATCH_CHUNK_TARGET_S": "30"}
    # Each answer takes 4 s per 40-s chunk: the kill comes while chunks are still to do.
    with FakeOpenAI(api_key=CANARY_KEY, s_per_audio_min=6.0) as slow:
        slow.transcriber = distinct_words
        env = module_env(tmp_path, model_cache, slow, **small_chunks)

        def ask(url: str) -> str:
            with OpenAI(base_url=url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=300) as sdk:
                return sdk.audio.transcriptions.create(
                    model="whisper-1", file=recording, response_format="text"
                )

        failed: list[BaseException] = []

        def doomed(url: str) -> None:
            try:
                ask(url)
            except openai.APIConnectionError as e:
                failed.append(e)

        with Served(["-j", "1"], env, cwd=tmp_path) as first:
            waiting = threading.Thread(target=doomed, args=(first.url,))
            waiting.start()
            deadline = time.monotonic() + 120
            while (stored := _chunks_stored(first)) < 1:
                assert time.monotonic() < deadline, first.log
                time.sleep(0.05)
            first.kill()
            waiting.join(30)
        assert failed, "the request in flight ends with its connection"
        deadline = time.monotonic() + 30
        while slow.count < slow.arrived:  # the upload in flight at the kill is answered (to no one)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = slow.uploads
        answered = [u.sha256 for u in before if u.status == 200]  # in the order sent: one at a time
        assert len(answered) >= stored >= 1

        with Served(["-j", "1"], env, cwd=tmp_path) as second:
            text = ask(second.url)
            after = slow.uploads[len(before) :]
            again = ask(second.url)
        assert text.strip() and again == text
        assert len(slow.uploads) == len(before) + len(after)  # the third request sent nothing
    assert after, "killed with chunks still to send: the second life sent them"
    # Each chunk stored before the kill was sent once, ever. Only a chunk whose answer came after the
    # server had died (in flight at the kill) may be sent a second time, and at most one such chunk.
    sent = Counter(u.sha256 for u in slow.uploads if u.status == 200)
    assert all(sent[sha] == 1 for sha in answered[:stored]), (stored, answered, sent)
    twice = [sha for sha, n in sent.items() if n > 1]
    assert len(twice) <= 1 and set(twice) <= set(answered[stored:]) and max(sent.values()) <= 2, sent


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks the endpoint as going
def test_translations_are_a_job_translated_into_english(client: OpenAI, upstream: FakeOpenAI) -> None:
    chats = len(upstream.chats)
    translated = client.audio.translations.create(
        model="whisper-1", file=SAMPLES / "morning.mp3", response_format="verbose_json"
    )
    assert translated.to_dict()["task"] == "translate" and translated.language == "english"
    assert "morning" in translated.text.lower() and translated.segments
    assert len(upstream.chats) > chats  # the server's chat model made the English text
