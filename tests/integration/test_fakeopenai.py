"""The fake OpenAI server, exercised through the real SDK: if these pass, tests built on it mean something."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openai
import pytest

from conftest import SAMPLES
from whisperbatch.testing import (
    ChatFault,
    FakeOpenAI,
    Upload,
    delay,
    drop_connection,
    drop_id,
    echo_authorization,
    empty_text,
    insufficient_quota,
    merge_two,
    not_json,
    rate_limit,
    server_error,
    unauthorized,
)
from whisperbatch.testing.scoring import find_marker, parse_srt, word_error_rate, words_lost
from whisperbatch.testing.speechbuilder import Built, build_recording

FOX = SAMPLES / "fox.wav"
KEY = "sk-test-canary-0000"


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as srv:
        yield srv


MakeClient = Callable[..., openai.OpenAI]


@pytest.fixture
def make_client() -> Iterator[MakeClient]:
    """Real SDK clients without retries (the tests own the retry policy), closed at teardown."""
    clients: list[openai.OpenAI] = []

    def make(server: FakeOpenAI | str, key: str = KEY, timeout: float = 30.0) -> openai.OpenAI:
        url = server if isinstance(server, str) else server.base_url
        clients.append(openai.OpenAI(api_key=key, base_url=url, max_retries=0, timeout=timeout))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(server: FakeOpenAI, make_client: MakeClient) -> openai.OpenAI:
    return make_client(server)


def fox() -> tuple[str, bytes]:
    """fox.wav as a (name, bytes) upload: no file handle left open."""
    return ("fox.wav", FOX.read_bytes())


def fox_speech_span() -> tuple[float, float]:
    """Where fox.wav is audible, found independently of the server (peak amplitude, not RMS frames)."""
    with wave.open(str(FOX)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        rate = w.getframerate()
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 328)  # -40 dBFS
    return loud[0] / rate, loud[-1] / rate


def write_silence(path: Path, seconds: float = 3.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\0\0" * int(16_000 * seconds))
    return path


def test_verbose_json_segments_follow_the_speech_and_upload_is_recorded(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    speech_start, speech_end = fox_speech_span()
    with FOX.open("rb") as f:
        result = client.audio.transcriptions.create(
            file=f, model="whisper-1", response_format="verbose_json", prompt="Fox, dog.", language="en"
        )
    segments = result.segments or []
    assert len(segments) >= 1
    assert abs(segments[0].start - 0.6) < 0.3
    assert abs(segments[-1].end - speech_end) < 0.5
    assert all(a.end <= b.start for a, b in itertools.pairwise(segments))
    assert result.duration == pytest.approx(8.94, abs=0.05)
    assert result.text == " ".join(s.text.strip() for s in segments)
    (upload,) = server.uploads
    assert (upload.model, upload.prompt, upload.filename, upload.language) == (
        "whisper-1",
        "Fox, dog.",
        "fox.wav",
        "en",
    )
    assert upload.size_bytes == FOX.stat().st_size < upload.body_bytes
    assert upload.status == 200 and upload.authorization_present
    assert upload.duration_s == pytest.approx(8.94, abs=0.05)
    assert speech_start == pytest.approx(0.6, abs=0.1)


def test_transcriber_hook_sees_each_region(server: FakeOpenAI, client: openai.OpenAI) -> None:
    calls: list[tuple[int, float, float]] = []

    def transcriber(upload: Upload, index: int, start: float, end: float) -> str:
        calls.append((index, start, end))
        return f"part {index} of {upload.filename}"

    server.transcriber = transcriber
    text = client.audio.transcriptions.create(
        file=("talk.m4a", (SAMPLES / "talk.m4a").read_bytes()), model="whisper-1", response_format="text"
    )
    assert [c[0] for c in calls] == list(range(len(calls))) and len(calls) >= 1
    assert text.strip() == " ".join(f"part {i} of talk.m4a" for i in range(len(calls)))


@pytest.mark.parametrize("fmt, marker", [("srt", "1\n00:00:00,6"), ("vtt", "WEBVTT\n\n00:00:00.6")])
def test_subtitle_formats(client: openai.OpenAI, fmt: Literal["srt", "vtt"], marker: str) -> None:
    out = client.audio.transcriptions.create(
        file=("morning.mp3", (SAMPLES / "morning.mp3").read_bytes()),
        model="whisper-1",
        response_format=fmt,
    )
    assert str(out).startswith(marker)
    assert "Words spoken here." in str(out)


def test_gpt4o_transcribe_json_only(server: FakeOpenAI, client: openai.OpenAI) -> None:
    result = client.audio.transcriptions.create(file=fox(), model="gpt-4o-transcribe")
    assert result.text == "Words spoken here. Words spoken here."
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(
            file=fox(), model="gpt-4o-transcribe", response_format="verbose_json"
        )
    assert err.value.code == "unsupported_value"
    assert [u.status for u in server.uploads] == [200, 400]


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks the endpoint for shutdown
def test_translations(client: openai.OpenAI) -> None:
    german = ("german.m4a", (SAMPLES / "german.m4a").read_bytes())
    result = client.audio.translations.create(file=german, model="whisper-1", response_format="verbose_json")
    assert result.to_dict()["task"] == "translate" and result.language == "english"
    assert len(result.segments or []) >= 1
    with pytest.raises(openai.BadRequestError):
        client.audio.translations.create(file=german, model="gpt-4o-transcribe")


def test_oversized_body_gets_413(make_client: MakeClient) -> None:
    with FakeOpenAI(max_body_bytes=100_000) as small:
        client = make_client(small)
        with pytest.raises(openai.APIStatusError) as err:
            client.audio.transcriptions.create(file=fox(), model="whisper-1")
        assert err.value.status_code == 413
        assert "Maximum content size limit (100000) exceeded" in str(err.value)
        (upload,) = small.uploads
        assert upload.status == 413 and upload.body_bytes > FOX.stat().st_size
        # The body was drained, so the same keep-alive connection serves the next, small upload.
        ok = client.audio.transcriptions.create(
            file=("m.webm", (SAMPLES / "morning.webm").read_bytes()), model="whisper-1"
        )
        assert ok.text


def test_faults_are_consumed_in_order(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.inject(rate_limit(2), insufficient_quota(), drop_connection(), server_error(), unauthorized())
    upload = fox()
    with pytest.raises(openai.RateLimitError) as rl:
        client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert rl.value.code == "rate_limit_exceeded"
    assert rl.value.response.headers["retry-after"] == "2"
    assert rl.value.response.headers["retry-after-ms"] == "2000"
    with pytest.raises(openai.RateLimitError) as quota:
        client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert quota.value.code == "insufficient_quota"
    with pytest.raises(openai.APIConnectionError):
        client.audio.transcriptions.create(file=upload, model="whisper-1")
    with pytest.raises(openai.InternalServerError):
        client.audio.transcriptions.create(file=upload, model="whisper-1")
    with pytest.raises(openai.AuthenticationError):
        client.audio.transcriptions.create(file=upload, model="whisper-1")
    assert client.audio.transcriptions.create(file=upload, model="whisper-1").text
    assert [u.status for u in server.uploads] == [429, 429, 0, 500, 401, 200]
    assert server.count == 6 and len(server.successful) == 1
    assert all(u.filename == "fox.wav" for u in server.uploads)


def test_a_gateway_may_echo_the_key_in_its_error(server: FakeOpenAI, client: openai.OpenAI) -> None:
    """The fault a client must not pass on as it is: a 400 naming the Authorization header, key and all."""
    server.inject(echo_authorization())
    server.inject_chat(echo_authorization())
    with pytest.raises(openai.BadRequestError) as audio:
        client.audio.transcriptions.create(file=fox(), model="whisper-1")
    with pytest.raises(openai.BadRequestError) as chat:
        translate(client, payload(THREE))
    for err in (audio.value, chat.value):
        assert f"Authorization': Bearer {KEY}" in str(err) and err.code == "invalid_header"
    assert KEY not in repr(server.uploads) + repr(server.chats)


def test_delay_lets_the_client_time_out(server: FakeOpenAI, make_client: MakeClient) -> None:
    server.inject(delay(1.0))
    with pytest.raises(openai.APITimeoutError):
        make_client(server, timeout=0.3).audio.transcriptions.create(file=fox(), model="whisper-1")


def test_wrong_key_is_refused_and_never_recorded(make_client: MakeClient) -> None:
    with FakeOpenAI(api_key="sk-right") as strict:
        with pytest.raises(openai.AuthenticationError) as err:
            make_client(strict).audio.transcriptions.create(file=fox(), model="whisper-1")
        assert err.value.code == "invalid_api_key"
        assert KEY not in str(err.value)
        assert KEY not in repr(strict.uploads)
        assert strict.uploads[0].status == 401 and strict.uploads[0].authorization_present
        right = make_client(strict, key="sk-right")
        ok = right.audio.transcriptions.create(file=fox(), model="whisper-1")
        assert ok.text


@pytest.mark.parametrize("name", ["x.mp3", "x.opus", "x"])
def test_bad_files_are_refused(client: openai.OpenAI, name: str) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(file=(name, b"this is not audio at all\n" * 40), model="whisper-1")
    assert err.value.code == "invalid_value"
    if name != "x.mp3":
        assert "Invalid file format" in str(err.value)


def test_silence_has_no_segments_unless_hallucinating(
    tmp_path: Path, client: openai.OpenAI, make_client: MakeClient
) -> None:
    silent = write_silence(tmp_path / "silence.wav")
    result = client.audio.transcriptions.create(
        file=("silence.wav", silent.read_bytes()), model="whisper-1", response_format="verbose_json"
    )
    assert result.segments == [] and result.text == ""
    assert result.duration == pytest.approx(3.0, abs=0.01)
    with FakeOpenAI(hallucinate_on_silence=True) as liar:
        result = make_client(liar).audio.transcriptions.create(
            file=("silence.wav", silent.read_bytes()), model="whisper-1", response_format="verbose_json"
        )
    (segment,) = result.segments or []
    assert segment.text.strip() == "Thank you for watching."
    assert segment.no_speech_prob == 0.9 and segment.avg_logprob == -1.2
    assert (segment.start, segment.end) == (0.0, 3.0)


def test_standalone_instant_mode(make_client: MakeClient) -> None:
    """The benchmark entry point: READY line, serves, exits 0 on SIGTERM."""
    cmd = [sys.executable, "-m", "whisperbatch.testing", "--port", "0", "--instant"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready[0] == "READY" and ready[1].startswith("http://127.0.0.1:")
            client = make_client(ready[1])
            result = client.audio.transcriptions.create(
                file=fox(), model="whisper-1", response_format="verbose_json"
            )
            # One segment over the whole upload, its length read off the size as if a 64 kbps MP3.
            size = (SAMPLES / "fox.wav").stat().st_size
            assert [(s.start, s.end) for s in result.segments or []] == [(0.0, round(size * 8 / 64_000, 2))]
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


# --- the chat translator (/v1/chat/completions) ------------------------------------------------------------

SYSTEM = 'Translate each segment. Answer only a JSON object: {"segments": [{"id", "text"}]}.'
FRENCH = {
    12: "Bonjour à tous, merci d'être venus ce matin.",
    13: "Le train pour Paris part à huit heures.",
    14: "Nous parlerons du budget de la ville.",
    15: "La réunion se termine à midi.",
}
ENGLISH = {
    12: "Hello everyone, thank you for coming this morning.",
    13: "The train to Paris leaves at eight o'clock.",
    14: "We will talk about the city budget.",
    15: "The meeting ends at noon.",
}


def payload(texts: dict[int, str], target: str = "en", source: str | None = "fr") -> dict[str, Any]:
    return {
        "source_language": source,
        "target_language": target,
        "glossary": None,
        "before": ["Une phrase avant."],
        "segments": [{"id": i, "text": t} for i, t in texts.items()],
        "after": [],
    }


def translate(client: openai.OpenAI, body: dict[str, Any], model: str = "gpt-4.1-mini") -> Any:
    """The call the translator makes."""
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": json.dumps(body)}],
        response_format={"type": "json_object"},
    )


def answered(completion: Any) -> list[tuple[int, str]]:
    return [(s["id"], s["text"]) for s in json.loads(completion.choices[0].message.content)["segments"]]


def test_chat_translates_french_to_english(server: FakeOpenAI, client: openai.OpenAI) -> None:
    body = payload(FRENCH)
    completion = translate(client, body)
    assert answered(completion) == list(ENGLISH.items())
    assert completion.object == "chat.completion" and completion.model == "gpt-4.1-mini"
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    (choice,) = completion.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == math.ceil((len(SYSTEM) + len(json.dumps(body))) / 4)
    assert usage.completion_tokens == math.ceil(len(choice.message.content or "") / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (chat,) = server.chats
    assert (chat.model, chat.payload, chat.status, chat.authorization_present) == (
        "gpt-4.1-mini",
        body,
        200,
        True,
    )
    assert (chat.prompt_tokens, chat.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert server.uploads == [] and server.count == 0 and server.arrived == 0  # audio counters untouched


def test_chat_french_as_whisper_may_spell_it(client: openai.OpenAI) -> None:
    variants = {
        1: "bonjour a tous, merci detre venus ce matin",
        2: "Bonjour à tous, merci d’être venu ce matin.",
        3: "Le train pour Paris part à 8 heures.",
        4: "La reunion se termine a midi.",
    }
    assert [t for _, t in answered(translate(client, payload(variants)))] == [
        "hello everyone, thank you for coming this morning",
        "Hello everyone, thank you for coming this morning.",
        "The train to Paris leaves at 8 o'clock.",
        "The meeting ends at noon.",
    ]


def test_chat_translates_english_to_german_and_marks_other_targets(client: openai.OpenAI) -> None:
    english = {
        3: "Good morning everyone, the meeting starts at eight o'clock.",
        4: "The weather report said it will rain today.",
        5: "",
        6: "Zanzibar quux.",
    }
    assert answered(translate(client, payload(english, "de", "en"))) == [
        (3, "Guten Morgen alle, die Besprechung beginnt um acht Uhr."),
        (4, "Die Wetter Bericht sagte es werden Regen heute."),
        (5, ""),
        (6, "Zanzibar quux."),  # unknown words stay as they are
    ]
    assert answered(translate(client, payload(english, "ja", None))) == [
        (3, "[ja] Good morning everyone, the meeting starts at eight o'clock."),
        (4, "[ja] The weather report said it will rain today."),
        (5, ""),
        (6, "[ja] Zanzibar quux."),
    ]


THREE = {7: "Bonjour.", 8: "Le train.", 9: "La ville."}


@pytest.mark.parametrize(
    "fault, expected",
    [
        (drop_id(), [(7, "Hello."), (9, "The city.")]),
        (merge_two(), [(7, "Hello. The train."), (9, "The city.")]),
        (empty_text(), [(7, "Hello."), (8, ""), (9, "The city.")]),
    ],
)
def test_chat_misbehaviours(
    server: FakeOpenAI, client: openai.OpenAI, fault: ChatFault, expected: list[tuple[int, str]]
) -> None:
    server.inject_chat(fault)
    assert answered(translate(client, payload(THREE))) == expected
    assert answered(translate(client, payload(THREE))) == [(7, "Hello."), (8, "The train."), (9, "The city.")]
    assert [c.status for c in server.chats] == [200, 200]


def test_chat_not_json(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.inject_chat(not_json())
    content = translate(client, payload(THREE)).choices[0].message.content or ""
    with pytest.raises(ValueError):
        json.loads(content)
    assert "The train." in content
    assert answered(translate(client, payload(THREE)))[1] == (8, "The train.")


def test_chat_edit_hook(server: FakeOpenAI, client: openai.OpenAI) -> None:
    seen: list[dict[str, Any]] = []

    def reverse(body: dict[str, Any], segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen.append(body)
        return segments[::-1]

    server.chat_edit = reverse
    body = payload(THREE)
    assert [i for i, _ in answered(translate(client, body))] == [9, 8, 7]
    assert seen == [body]


def test_chat_faults_are_their_own_queue(server: FakeOpenAI, client: openai.OpenAI) -> None:
    """429 then success; audio requests neither consume chat faults nor are they given them."""
    server.inject_chat(rate_limit(1), server_error(503), drop_connection())
    server.inject(server_error(500))
    with pytest.raises(openai.RateLimitError) as rl:
        translate(client, payload(THREE))
    assert rl.value.code == "rate_limit_exceeded" and rl.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):  # the audio fault, not the chat one
        client.audio.transcriptions.create(file=fox(), model="whisper-1")
    assert client.audio.transcriptions.create(file=fox(), model="whisper-1").text
    with pytest.raises(openai.InternalServerError) as err:
        translate(client, payload(THREE))
    assert err.value.status_code == 503
    with pytest.raises(openai.APIConnectionError):
        translate(client, payload(THREE))
    assert answered(translate(client, payload(THREE)))[0] == (7, "Hello.")
    assert [c.status for c in server.chats] == [429, 503, 0, 200]
    assert [u.status for u in server.uploads] == [500, 200]
    assert all(c.payload == payload(THREE) for c in server.chats)


def test_missing_model_is_404_for_chat_and_audio(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.missing_models = {"gpt-9-translate", "gpt-transcribe"}
    with pytest.raises(openai.NotFoundError) as err:
        translate(client, payload(THREE), model="gpt-9-translate")
    assert err.value.code == "model_not_found"
    assert "The model 'gpt-9-translate' does not exist" in str(err.value)
    with pytest.raises(openai.NotFoundError) as audio:
        client.audio.transcriptions.create(file=fox(), model="gpt-transcribe")
    assert audio.value.code == "model_not_found"
    assert translate(client, payload(THREE), model="gpt-4.1-mini").choices[0].message.content
    assert [c.status for c in server.chats] == [404, 200] and server.uploads[0].status == 404


def test_chat_key_checked_never_recorded(make_client: MakeClient) -> None:
    with FakeOpenAI(api_key="sk-right") as strict:
        with pytest.raises(openai.AuthenticationError):
            translate(make_client(strict), payload(THREE))
        assert translate(make_client(strict, key="sk-right"), payload(THREE)).usage is not None
        assert [c.status for c in strict.chats] == [401, 200]
        assert KEY not in repr(strict.chats) and "sk-right" not in repr(strict.chats)


def test_chat_json_mode_needs_the_word_json(client: openai.OpenAI) -> None:
    """As the real API: response_format json_object is refused unless a message says "json"."""
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "system", "content": "Translate."}, {"role": "user", "content": "{}"}],
            response_format={"type": "json_object"},
        )
    assert err.value.param == "messages"


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_translations_endpoint_can_be_gone(server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.translations_endpoint = False
    with pytest.raises(openai.NotFoundError) as err:
        client.audio.translations.create(file=fox(), model="whisper-1")
    assert "Invalid URL (POST /v1/audio/translations)" in str(err.value)
    assert client.audio.transcriptions.create(file=fox(), model="whisper-1").text
    assert [(u.endpoint, u.status) for u in server.uploads] == [
        ("/v1/audio/translations", 404),
        ("/v1/audio/transcriptions", 200),
    ]


def test_gpt_transcribe_languages_and_keywords(server: FakeOpenAI, client: openai.OpenAI) -> None:
    result = client.audio.transcriptions.create(
        file=fox(), model="gpt-transcribe", languages=["fr", "en"], keywords=["Paris", "city budget"]
    )
    assert [lang.code for lang in result.languages or []] == ["fr"]
    assert result.to_dict()["usage"] == {"type": "duration", "seconds": 9}
    plain = client.audio.transcriptions.create(file=fox(), model="gpt-transcribe")
    assert [lang.code for lang in plain.languages or []] == ["en"]
    assert client.audio.transcriptions.create(file=fox(), model="whisper-1").languages is None
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(
            file=fox(), model="gpt-transcribe", language="fr", languages=["fr"]
        )
    assert err.value.param == "language" and "not both" in str(err.value)
    first, second, third, refused = server.uploads
    assert (first.languages, first.keywords) == (("fr", "en"), ("Paris", "city budget"))
    assert (second.languages, second.keywords, third.languages) == ((), (), ())
    assert refused.status == 400 and refused.language == "fr" and refused.languages == ("fr",)


# --- speech recordings built from the corpus (whisperbatch.testing.speechbuilder) ----------------------


def _pcm(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)


def _rms_dbfs(pcm: np.ndarray, start_s: float, end_s: float, rate: int = 16_000) -> float:
    part = pcm[round(start_s * rate) : round(end_s * rate)]
    return float(20 * np.log10(max(np.sqrt(np.mean(part**2)), 1e-3) / 32768))


def test_built_recording_places_sentences_markers_and_silences(tmp_path: Path, ffmpeg: str) -> None:
    layout: dict[str, Any] = {
        "duration_s": 120,
        "seed": 5,
        "markers_at_s": [40.0, 101.5],
        "long_silences": [(60.0, 15.0)],
        "quiet": [(80.0, 10.0)],
    }
    built = build_recording(tmp_path / "r.wav", ffmpeg=ffmpeg, **layout)
    pcm = _pcm(built.path)
    assert len(pcm) == 120 * 16_000 and built.duration_s == 120.0
    first, second = built.markers
    assert (first.start_s, second.start_s) == (40.0, 101.5)
    assert first.text != second.text and all(p.marker for p in built.markers)
    spans = [(p.start_s, p.end_s) for p in built.placed]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # in order, never overlapping
    for marker in built.markers:
        before = [p for p in built.placed if p.end_s <= marker.start_s]
        assert marker.start_s - before[-1].end_s >= 6.0
        assert _rms_dbfs(pcm, marker.start_s - 5.9, marker.start_s - 0.1) < -90  # digital silence
        assert _rms_dbfs(pcm, marker.start_s, marker.end_s) > -35  # speech, right where it was placed
        onset = _rms_dbfs(pcm, marker.start_s, marker.start_s + 0.3)
        assert _rms_dbfs(pcm, marker.start_s - 0.03, marker.start_s) < onset - 20  # and not before
    assert not any(p.end_s > 60.0 and p.start_s < 75.0 for p in built.placed)
    assert any(a <= 60.0 and b >= 75.0 for a, b in built.silences)
    quiet = [p for p in built.placed if 80.0 <= p.start_s < 90.0]
    assert quiet and all(p.gain_db == -18.0 for p in quiet)
    assert all(p.gain_db == 0.0 for p in built.placed if p not in quiet)
    loud = [p for p in built.placed if p.gain_db == 0.0 and not p.marker]
    soft, normal = quiet[0], loud[0]
    assert _rms_dbfs(pcm, soft.start_s, soft.end_s) < _rms_dbfs(pcm, normal.start_s, normal.end_s) - 12
    assert built.script == " ".join(p.text for p in built.placed)
    again = build_recording(tmp_path / "again.wav", ffmpeg=ffmpeg, **layout)
    assert again.placed == built.placed and again.path.read_bytes() == built.path.read_bytes()


def test_built_recording_noise_bed_and_other_rates(tmp_path: Path, ffmpeg: str) -> None:
    built = build_recording(
        tmp_path / "noisy.wav",
        duration_s=30,
        seed=1,
        ffmpeg=ffmpeg,
        long_silences=[(10.0, 10.0)],
        noise_dbfs=-50.0,
        hum_hz=50.0,
        rate=22_050,
    )
    with wave.open(str(built.path)) as w:
        shape = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes())
    assert shape == (22_050, 1, 2, 30 * 22_050)
    pcm = _pcm(built.path)
    # pink noise and hum at -50 dBFS each: about -47 dBFS together where nobody speaks
    assert -49.5 < _rms_dbfs(pcm, 11.0, 19.0, rate=22_050) < -45.0
    with pytest.raises(ValueError):
        build_recording(tmp_path / "x.wav", duration_s=30, seed=1, ffmpeg=ffmpeg, markers_at_s=[29.0])


# --- real transcription with faster-whisper (tiny.en) -----------------------------------------------------


@pytest.fixture(scope="module")
def three_sentences(tmp_path_factory: pytest.TempPathFactory, ffmpeg: str) -> Built:
    """~20 s: three corpus sentences with pauses of 1-1.5 s, then silence."""
    return build_recording(
        tmp_path_factory.mktemp("speech") / "three.wav",
        duration_s=20,
        seed=11,
        ffmpeg=ffmpeg,
        sentences=[0, 1, 2],
        max_sentences=3,
        pause_s=(1.0, 1.5),
    )


@pytest.fixture
def whisper_server() -> Iterator[FakeOpenAI]:
    """tiny.en behind the API; the model is loaded once per process and shared by these servers."""
    with FakeOpenAI(model="tiny.en", api_key=KEY) as srv:
        yield srv


def _upload(built: Built) -> tuple[str, bytes]:
    return (built.path.name, built.path.read_bytes())


def test_real_model_transcribes_the_script_with_times(
    whisper_server: FakeOpenAI, make_client: MakeClient, three_sentences: Built
) -> None:
    client = make_client(whisper_server)
    result = client.audio.transcriptions.create(
        file=_upload(three_sentences), model="whisper-1", response_format="verbose_json", language="en"
    )
    assert word_error_rate(three_sentences.script, result.text) < 0.25
    assert result.language == "english" and result.duration == pytest.approx(20.0)
    assert result.to_dict()["usage"] == {"type": "duration", "seconds": 20}
    segments = result.segments or []
    assert [s.id for s in segments] == list(range(len(segments)))
    # Without word timestamps Whisper's segments tile the audio (each ends where the next begins), so
    # check that each sentence's segment covers that sentence and no neighbour's speech.
    placed = three_sentences.placed
    for i, sentence in enumerate(placed):
        seg = min(segments, key=lambda s: word_error_rate(sentence.text, s.text))
        assert word_error_rate(sentence.text, seg.text) < 0.25
        assert seg.start <= sentence.start_s + 0.5 and seg.end >= sentence.end_s - 0.5
        assert seg.start >= (placed[i - 1].end_s - 0.5 if i else 0.0)
        assert seg.end <= (placed[i + 1].start_s + 0.5 if i + 1 < len(placed) else 20.0)
    assert all(s.avg_logprob > -1.0 and s.no_speech_prob < 0.6 for s in segments)
    assert result.words is None
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(file=_upload(three_sentences), model="whisper-1", language="xx")
    assert err.value.param == "language"
    upload, refused = whisper_server.uploads
    assert upload.status == 200 and upload.granularities == () and upload.language == "en"
    assert refused.status == 400


def test_real_model_word_timestamps_when_asked(
    whisper_server: FakeOpenAI, make_client: MakeClient, three_sentences: Built
) -> None:
    result = make_client(whisper_server).audio.transcriptions.create(
        file=_upload(three_sentences),
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    words = result.words or []
    assert word_error_rate(three_sentences.script, " ".join(w.word for w in words)) < 0.25
    assert all(w.word == w.word.strip() and w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    first = three_sentences.placed[0]
    assert abs(words[0].start - first.start_s) < 0.5
    # With words, segments are trimmed to them: their times follow the sentences to within a second.
    for sentence in three_sentences.placed:
        seg = min(result.segments or [], key=lambda s: word_error_rate(sentence.text, s.text))
        assert abs(seg.start - sentence.start_s) < 1.0 and abs(seg.end - sentence.end_s) < 1.0
    assert "segments" in result.to_dict() and "words" not in result.to_dict()["segments"][0]
    assert whisper_server.uploads[0].granularities == ("word", "segment")


@pytest.mark.parametrize("fmt", ["text", "srt"])
def test_real_model_text_formats(
    whisper_server: FakeOpenAI, make_client: MakeClient, three_sentences: Built, fmt: Literal["text", "srt"]
) -> None:
    out = str(
        make_client(whisper_server).audio.transcriptions.create(
            file=_upload(three_sentences), model="whisper-1", response_format=fmt
        )
    )
    if fmt == "srt":
        assert out.startswith("1\n00:00:0")
        out = " ".join(block.split("\n", 2)[2] for block in out.strip().split("\n\n"))
    assert word_error_rate(three_sentences.script, out) < 0.25


def test_real_model_json_only_model(
    whisper_server: FakeOpenAI, make_client: MakeClient, three_sentences: Built
) -> None:
    client = make_client(whisper_server)
    result = client.audio.transcriptions.create(file=_upload(three_sentences), model="gpt-4o-transcribe")
    assert word_error_rate(three_sentences.script, result.text) < 0.25
    body = result.to_dict()
    assert set(body) == {"text", "usage"} and body["usage"]["type"] == "tokens"
    assert body["usage"]["input_token_details"]["audio_tokens"] == 334  # 20 s at 1000 tokens a minute
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(
            file=_upload(three_sentences), model="gpt-4o-transcribe", response_format="verbose_json"
        )


def test_edit_hook_makes_the_model_lose_sentences(
    whisper_server: FakeOpenAI, make_client: MakeClient, three_sentences: Built
) -> None:
    """A deterministic stand-in for a model that stops early when it is given a prompt: every word after
    the first sentence goes. (tiny.en answers a prompted request with one segment for all three.)"""
    seen: list[Upload] = []
    first_end = three_sentences.placed[0].end_s

    def stop_after_first_sentence(upload: Upload, segments: list[dict]) -> list[dict]:
        seen.append(upload)
        if not upload.prompt:
            return segments
        kept = []
        for seg in segments:
            words = [w for w in seg["words"] if w["end"] <= first_end + 0.5]
            if words:
                text = "".join(" " + w["word"] for w in words)
                kept.append(dict(seg, words=words, text=text, end=words[-1]["end"]))
        return kept

    whisper_server.edit = stop_after_first_sentence
    client = make_client(whisper_server)
    full = client.audio.transcriptions.create(file=_upload(three_sentences), model="whisper-1")
    cut = client.audio.transcriptions.create(
        file=_upload(three_sentences),
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        prompt="Earlier text.",
    )
    later_words = sum(len(p.text.split()) for p in three_sentences.placed[1:])
    assert words_lost(three_sentences.script, full.text) <= 2
    assert words_lost(three_sentences.script, cut.text) >= later_words - 2
    assert word_error_rate(three_sentences.placed[0].text, cut.text) < 0.25
    assert cut.text == " ".join(w.word for w in cut.words or [])
    assert [s.id for s in cut.segments or []] == list(range(len(cut.segments or [])))
    assert [u.prompt for u in seen] == [None, "Earlier text."]


def test_real_model_finds_a_marker_after_silence(
    whisper_server: FakeOpenAI, make_client: MakeClient, tmp_path: Path, ffmpeg: str
) -> None:
    """Word timestamps place it; without them tiny.en starts its one segment at 0.0, after 8 s of silence."""
    built = build_recording(tmp_path / "m.wav", duration_s=14, seed=2, ffmpeg=ffmpeg, markers_at_s=[8.0])
    (marker,) = built.markers
    client = make_client(whisper_server)
    result = client.audio.transcriptions.create(
        file=_upload(built),
        model="whisper-1",
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    cue = find_marker([(s.start, s.end, s.text) for s in result.segments or []], marker)
    assert cue is not None and abs(cue[0] - 8.0) < 1.0 and abs(cue[1] - marker.end_s) < 1.0
    srt = client.audio.transcriptions.create(file=_upload(built), model="whisper-1", response_format="srt")
    assert find_marker(parse_srt(str(srt)), marker) is not None


def test_standalone_model_mode(make_client: MakeClient, three_sentences: Built) -> None:
    cmd = [sys.executable, "-m", "whisperbatch.testing", "--port", "0", "--model", "tiny.en"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready[0] == "READY"
            result = make_client(ready[1]).audio.transcriptions.create(
                file=_upload(three_sentences), model="whisper-1"
            )
            assert word_error_rate(three_sentences.script, result.text) < 0.25
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


def test_model_list_needs_the_key_and_lists_what_the_server_serves(
    make_client: MakeClient, server: FakeOpenAI
) -> None:
    server.api_key = KEY
    client = make_client(server)
    listed = [m.id for m in client.models.list().data]
    assert {"whisper-1", "gpt-transcribe", "gpt-5.4-mini"} <= set(listed)
    assert client.models.retrieve("gpt-transcribe").id == "gpt-transcribe"
    server.missing_models.add("gpt-transcribe")
    server.listed_models.append("my-whisper")
    assert "gpt-transcribe" not in [m.id for m in client.models.list().data]
    for name in ("gpt-transcribe", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as e:
            client.models.retrieve(name)
        assert e.value.code == "model_not_found"
    assert client.models.retrieve("my-whisper").id == "my-whisper"
    for call in (lambda c: c.models.list(), lambda c: c.models.retrieve("whisper-1")):
        with pytest.raises(openai.AuthenticationError):
            call(make_client(server, key="sk-wrong"))
    server.models_endpoint = False  # a compatible server without a model list
    with pytest.raises(openai.NotFoundError) as e:
        client.models.list()
    assert e.value.code is None
    assert server.count == 0  # nothing here is an upload


def test_a_remembering_server_decodes_an_upload_once_and_other_settings_again(
    make_client: MakeClient, three_sentences: Built
) -> None:
    """`remember=True` answers the same upload asked the same way from what the model said before (the
    accuracy tests' reruns and retries), and decodes it again when the prompt differs."""
    with FakeOpenAI(model="tiny.en", api_key=KEY, remember=True) as srv:
        client = make_client(srv)
        ask = {"file": _upload(three_sentences), "model": "whisper-1", "response_format": "verbose_json"}
        first = client.audio.transcriptions.create(**ask, language="en")
        assert srv.heard is not None and len(srv.heard) == 1
        again = client.audio.transcriptions.create(**ask, language="en")
        assert again.text == first.text and len(srv.heard) == 1
        client.audio.transcriptions.create(**ask, language="en", prompt="Subtitles.")
        assert len(srv.heard) == 2 and srv.count == 3
