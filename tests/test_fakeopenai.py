"""The fake OpenAI server, exercised through the real SDK: if these pass, tests built on it mean something."""

from __future__ import annotations

import itertools
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import openai
import pytest

from fakeopenai import (
    FakeOpenAI,
    Upload,
    delay,
    drop_connection,
    insufficient_quota,
    rate_limit,
    server_error,
    unauthorized,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
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
    script = Path(__file__).resolve().parent / "fakeopenai.py"
    cmd = [sys.executable, str(script), "--port", "0", "--instant"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline().split()
            assert ready[0] == "READY" and ready[1].startswith("http://127.0.0.1:")
            client = make_client(ready[1])
            result = client.audio.transcriptions.create(
                file=fox(), model="whisper-1", response_format="verbose_json"
            )
            assert [(s.start, s.end) for s in result.segments or []] == [(0.0, 1.0)]
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
