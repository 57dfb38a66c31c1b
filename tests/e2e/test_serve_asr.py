"""`whisperbatch serve` as a whisper-asr-webservice: Bazarr's sequence over real HTTP (its own decode to
raw 16 kHz mono s16le, `/detect-language?encode=false`, then `/asr?...&output=srt&encode=false`), and
an encoded upload's other outputs. The upstream runs a real model (tiny.en), so the language and the
subtitles' words and times are what the sample says."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.serve_support import module_env
from e2e.test_serve_openai import FOX, said_fox
from e2e.test_serve_openai import upstream as upstream  # tiny.en behind the API
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.scoring import parse_srt
from whisperbatch.testing.serving import Served


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, upstream: FakeOpenAI
) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("serve")
    with (
        Served([], module_env(folder, model_cache, upstream), cwd=folder) as served,
        httpx.Client(base_url=served.url, timeout=120) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def pcm(ffmpeg: str) -> bytes:
    """fox.wav as Bazarr sends audio: decoded by ffmpeg to raw 16 kHz mono s16le."""
    cmd = [ffmpeg, "-v", "error", "-i", str(FOX), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def test_bazarr_detects_the_language_then_gets_subtitles(
    client: httpx.Client, upstream: FakeOpenAI, pcm: bytes
) -> None:
    # Bazarr posts the bytes with no file name of its own (requests names the part after its field).
    detected = client.post(
        "/detect-language", params={"encode": "false"}, files={"audio_file": ("audio_file", pcm)}
    )
    assert detected.status_code == 200, detected.text
    assert detected.json() == {"detected_language": "english", "language_code": "en"}

    params = {"task": "transcribe", "language": "en", "output": "srt", "encode": "false"}
    sent = upstream.count
    answer = client.post("/asr", params=params, files={"audio_file": ("audio_file", pcm)})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-subrip")
    cues = parse_srt(answer.text)
    assert cues and said_fox(" ".join(text for _, _, text in cues)), answer.text
    assert 0.0 <= cues[0][0] <= 1.5 and cues[-1][1] <= 9.0, cues  # speech from 0.6 s to before 9 s
    assert all(start < end for start, end, _ in cues)
    assert [start for start, _, _ in cues] == sorted(start for start, _, _ in cues)
    uploads = upstream.count - sent
    assert uploads >= 1

    # Asked again (a timeout on Bazarr's side): the stored job's subtitles, nothing sent upstream.
    again = client.post("/asr", params=params, files={"audio_file": ("audio_file", pcm)})
    assert again.text == answer.text and upstream.count - sent == uploads


def test_an_encoded_upload_in_tsv_and_json(client: httpx.Client) -> None:
    with FOX.open("rb") as f:
        tsv = client.post("/asr", params={"output": "tsv"}, files={"audio_file": ("fox.wav", f)})
    assert tsv.status_code == 200, tsv.text
    header, *rows = tsv.text.splitlines()
    assert header == "start\tend\ttext" and rows
    starts = [int(row.split("\t")[0]) for row in rows]
    assert 0 <= starts[0] <= 1500 and said_fox(tsv.text)
    with FOX.open("rb") as f:
        doc = client.post(
            "/asr", params={"output": "json", "word_timestamps": "true"}, files={"audio_file": ("fox.wav", f)}
        ).json()
    assert doc["language"] == "en" and said_fox(doc["text"])
    assert said_fox(" ".join(w["word"] for s in doc["segments"] for w in s["words"]))


def test_bad_requests_name_the_problem(client: httpx.Client, upstream: FakeOpenAI, pcm: bytes) -> None:
    sent = upstream.count
    bad_output = client.post("/asr", params={"output": "docx"}, files={"audio_file": ("a.wav", pcm)})
    assert bad_output.status_code == 400 and bad_output.json()["field"] == "output"
    odd = client.post("/asr", params={"encode": "false"}, files={"audio_file": ("audio_file", pcm[:-1])})
    assert odd.status_code == 400 and odd.json()["field"] == "audio_file"
    unnamed = client.post("/asr", files={"audio_file": ("audio_file", pcm)})  # encoded, but no audio name
    assert unnamed.status_code == 400 and unnamed.json()["field"] == "audio_file"
    assert upstream.count == sent
