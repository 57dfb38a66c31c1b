"""Bad requests at the door of a running `whisperbatch serve`: each is refused with a 4xx naming what is
wrong, and leaves nothing queued and nothing written (no upload kept, nothing left half-received).
The server only serves (`--no-work`), with a small upload cap and a queue of three, so a full queue
answers 429 with Retry-After; a queued job cancelled makes room again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SAMPLES, write_silence
from e2e.serve_support import module_env
from whisperbatch.testing.serving import Served

CAP_BYTES = 50_000  # --max-upload-mb 0.05
QUEUE_MAX = 3
SOUND = (SAMPLES / "fox.wav").read_bytes()[:20_000]  # under the cap


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def root(folder: Path) -> Path:
    made = folder / "root"
    made.mkdir()
    write_silence(made / "inside.wav", 0.5)
    (made / "outside.wav").symlink_to(SAMPLES / "fox.wav")
    return made


@pytest.fixture(scope="module")
def client(folder: Path, root: Path, model_cache: Path) -> Iterator[httpx.Client]:
    args = ["--no-work", "--root", str(root), "--max-upload-mb", "0.05", "--queue-max", str(QUEUE_MAX)]
    with (
        Served(args, module_env(folder, model_cache), cwd=folder) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
    ):
        yield http


@pytest.fixture()
def untouched(client: httpx.Client, folder: Path) -> Iterator[None]:
    """The test leaves the queue and the server's uploads as they were."""
    uploads = folder / "home" / "uploads"

    def kept() -> set[Path]:
        return {p for p in uploads.rglob("*") if p.name != ".incoming"} if uploads.exists() else set()

    jobs, files = client.get("/api/v1/jobs").json()["jobs"], kept()
    yield
    assert client.get("/api/v1/jobs").json()["jobs"] == jobs
    assert kept() == files
    incoming = uploads / ".incoming"
    assert not incoming.exists() or not os.listdir(incoming)


def refused(response: httpx.Response, status: int, field: str | None, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field, body
    for word in words:
        assert word in body["detail"], body


def small_wav(tmp_path: Path, name: str = "small.wav", seconds: float = 0.5) -> Path:
    return write_silence(tmp_path / name, seconds)


def post_file(client: httpx.Client, name: str, data: bytes, **fields: str | list[str]) -> httpx.Response:
    return client.post("/api/v1/jobs", files={"file": (name, data)}, data=fields)


@pytest.mark.usefixtures("untouched")
def test_an_upload_over_the_cap(client: httpx.Client) -> None:
    big = b"\0" * (3 * CAP_BYTES)
    refused(post_file(client, "big.wav", big), 413, "file", "over")
    refused(post_file(client, "near.wav", big[: CAP_BYTES + 1000]), 413, "file", f"over {CAP_BYTES} bytes")

    request = httpx.Request("POST", "http://x", files={"file": ("big.wav", big)})
    body, kind = request.read(), request.headers["content-type"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the cap holds as the body streams in
        for at in range(0, len(body), 8192):
            yield body[at : at + 8192]

    streamed = client.post("/api/v1/jobs", content=chunked(), headers={"content-type": kind})
    assert "content-length" not in streamed.request.headers
    refused(streamed, 413, "file", "over")


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("name", ["../evil.wav", "a/b.wav", "..\\evil.wav", "", ".hidden.wav", "notes.txt"])
def test_a_name_that_is_not_a_plain_audio_file_name(client: httpx.Client, name: str) -> None:
    response = post_file(client, name, SOUND)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "file", response.json()


@pytest.mark.usefixtures("untouched")
def test_a_name_with_a_control_character(client: httpx.Client) -> None:
    raw = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\tb.wav"\r\n\r\nRIFF\r\n--b--\r\n'
    tab = client.post(
        "/api/v1/jobs", content=raw, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    refused(tab, 400, "file", "plain file name")  # a control character: not a name to show or send


@pytest.mark.usefixtures("untouched")
def test_a_path_outside_the_roots(client: httpx.Client, root: Path) -> None:
    refused(client.post("/api/v1/jobs", json={"path": str(SAMPLES / "fox.wav")}), 403, "path", "roots")
    refused(client.post("/api/v1/jobs", json={"path": str(root / "outside.wav")}), 403, "path", "roots")
    escaped = f"{root}/../{root.name}/../../etc/passwd"
    refused(client.post("/api/v1/jobs", json={"path": escaped}), 403, "path", "roots")
    refused(client.post("/api/v1/jobs", json={"path": "inside.wav"}), 400, "path", "absolute")
    refused(client.post("/api/v1/jobs", json={"path": str(root / "missing.wav")}), 403, "path")
    refused(client.post("/api/v1/jobs", json={"path": 7}), 400, "path")
    refused(client.post("/api/v1/jobs", json={"path": f"{root}/inside.wav\0.txt"}), 403, "path")


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize(
    ("field", "value"),
    [("language", "xx"), ("format", "pdf"), ("diarize", "maybe"), ("num_speakers", "0"), ("colour", "red")],
)
def test_a_bad_option_names_its_field(client: httpx.Client, root: Path, field: str, value: str) -> None:
    refused(post_file(client, "ok.wav", SOUND, **{field: value}), 400, field, field)
    by_path = client.post("/api/v1/jobs", json={"path": str(root / "inside.wav"), field: value})
    refused(by_path, 400, field, field)


@pytest.mark.usefixtures("untouched")
def test_a_value_of_the_wrong_shape(client: httpx.Client, root: Path) -> None:
    inside = str(root / "inside.wav")
    refused(client.post("/api/v1/jobs", json={"path": inside, "prompt": {"a": 1}}), 400, "prompt", "string")
    refused(client.post("/api/v1/jobs", json={"path": inside, "format": ["srt"]}), 400, "format")
    refused(client.post("/api/v1/jobs", json={"path": inside, "task": "summarise"}), 400, "task")
    twice = post_file(client, "ok.wav", SOUND, format=["srt", "txt"])
    refused(twice, 400, "format", "more than once")
    refused(post_file(client, "ok.wav", b""), 400, "file", "empty")


@pytest.mark.usefixtures("untouched")
def test_a_malformed_body(client: httpx.Client) -> None:
    broken = b'--wrong\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
    response = client.post(
        "/api/v1/jobs", content=broken, headers={"content-type": "multipart/form-data; boundary=right"}
    )
    assert response.status_code == 400, response.text
    assert "multipart" in response.json()["detail"]
    not_json = client.post(
        "/api/v1/jobs", content=b"{path: nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    listed = client.post("/api/v1/jobs", json=["path"])
    assert listed.status_code == 400 and "object" in listed.json()["detail"]
    other = client.post("/api/v1/jobs", content=b"path=x", headers={"content-type": "text/plain"})
    assert other.status_code == 415


def test_a_full_queue_answers_429_and_a_cancel_makes_room(client: httpx.Client, tmp_path: Path) -> None:
    assert client.get("/api/v1/jobs").json()["jobs"] == []
    made = [
        post_file(client, f"r{i}.wav", small_wav(tmp_path, f"r{i}.wav", 0.3 + 0.01 * i).read_bytes())
        for i in range(5)
    ]
    assert [r.status_code for r in made] == [201, 201, 201, 429, 429], [r.text for r in made]
    assert int(made[3].headers["retry-after"]) > 0 and "queue is full" in made[3].json()["detail"]
    jobs = client.get("/api/v1/jobs", params={"state": "queued"}).json()["jobs"]
    assert len(jobs) == QUEUE_MAX and len(client.get("/api/v1/jobs").json()["jobs"]) == QUEUE_MAX
    again = post_file(client, "r0.wav", small_wav(tmp_path, "r0.wav", 0.3).read_bytes())
    assert again.status_code == 200 and again.json()["id"] == made[0].json()["id"]  # known: not refused

    cancelled = client.post(f"/api/v1/jobs/{made[1].json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "failed" and cancelled.json()["error"] == "cancelled"
    assert client.post(f"/api/v1/jobs/{made[1].json()['id']}/cancel").status_code == 409
    room = post_file(client, "r3.wav", small_wav(tmp_path, "r3.wav", 0.33).read_bytes())
    assert room.status_code == 201, room.text
    assert len(client.get("/api/v1/jobs", params={"state": "queued"}).json()["jobs"]) == QUEUE_MAX
