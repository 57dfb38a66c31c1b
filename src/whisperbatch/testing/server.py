"""A fake of the OpenAI audio API on 127.0.0.1, for tests and benchmarks.

Why a real HTTP server: SDK 3.x talks through `httpx2`, which respx/pytest-httpx do not intercept, and a
real socket also exercises the SDK's multipart upload, its error mapping and its retry headers. The HTTP
side uses only the stdlib and numpy, so `python -m whisperbatch.testing --port 0` works as a standalone
server for `bench/` scripts.

The audio endpoints (`transcriptions`) answer in one of two ways (`asr`):
- energy (default): speech regions become segments whose timestamps are real and whose text comes from
  `server.transcriber`, so chunking and offset arithmetic can be asserted against the samples;
- a real Whisper model (`FakeOpenAI(model="tiny.en")`, `--model tiny.en`), so lost words and drifting
  times show in the answers. `server.edit` can then make it misbehave deterministically.
`server.inject(...)` queues faults (`faults`) that the next audio requests consume, in order.

A translator answers at `POST /v1/chat/completions` (`chat`). `server.inject_chat(...)` queues faults and
misbehaviours (`drop_id()`, `merge_two()`, `empty_text()`, `not_json()`) that only chat requests consume;
they are recorded in `server.chats`, never in `uploads`. `server.missing_models` answers 404
model_not_found for the models in it, and `server.translations_endpoint = False` makes
`/v1/audio/translations` a removed endpoint (404). `GET /v1/models` lists `server.listed_models`
(`model_list`); `server.models_endpoint = False` makes it a server without a model list.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import select
import socket
import threading
import time
from collections import deque
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from .asr import Heard, Whisper, load_whisper, resolve_model
from .chat import ChatEdit, ChatRequest, answer_chat, translator_payload
from .faults import ChatFault, Fault, error_body
from .model_list import SERVED_MODELS, answer_models
from .transcriptions import answer_transcription
from .wire import (
    Edit,
    Reply,
    Transcriber,
    Upload,
    blank_upload,
    default_transcriber,
    json_object,
    json_reply,
    parse_multipart,
    str_field,
)

CHAT_ENDPOINT = "/v1/chat/completions"


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

    def do_GET(self) -> None:
        fake = cast(_Server, self.server).fake
        authorized = fake._authorized(self.headers.get("Authorization", ""))
        self._send(answer_models(fake, self.path.split("?")[0], authorized))

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
        received = time.monotonic()
        if self.path.split("?")[0] == CHAT_ENDPOINT:
            self._handle_chat(fake, body, body_bytes)
            return
        with fake._lock:
            fake.arrived += 1
            hold = fake.hold_after is not None and fake.arrived > fake.hold_after
            fake.held += hold
        if hold and (not fake._released.wait(600) or self._client_gone()):
            fake._record(replace(blank_upload(self.path), status=0))  # never answered: never billed
            self.close_connection = True
            return
        fault = fake._next_fault()
        fields = parse_multipart(body, self.headers.get("Content-Type", "")) if body is not None else {}

        def text(name: str) -> str | None:
            values = fields.get(name)
            return values[0][1].decode("utf-8", "replace") if values else None

        file_part = fields.get("file", [(None, b"")])[0]

        def listed(name: str) -> tuple[str, ...]:
            """A list field: the SDK repeats `name[]` once per item."""
            return tuple(
                v.decode("utf-8", "replace") for key in (f"{name}[]", name) for _, v in fields.get(key, [])
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
            granularities=listed("timestamp_granularities"),
            sha256=hashlib.sha256(file_part[1]).hexdigest(),
            languages=listed("languages"),
            keywords=listed("keywords"),
        )
        if fault is not None and fault.kind == "drop":
            fake._record(upload)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "delay":
            fake._stopping.wait(fault.seconds)
        if fault is not None and fault.kind == "respond":
            reply = json_reply(fault.status, fault.body(self.headers.get("Authorization", "")), fault.headers)
        elif body is None:
            msg = f"Maximum content size limit ({fake.max_body_bytes}) exceeded ({body_bytes} bytes read)"
            reply = json_reply(413, error_body(msg, "server_error"))
        else:
            authorized = fake._authorized(self.headers.get("Authorization", ""))
            reply, upload = answer_transcription(fake, upload, authorized, fields)
            if reply.status == 200 and fake.s_per_audio_min:  # a server as slow as its audio is long
                pace = (upload.duration_s or 0.0) / 60 * fake.s_per_audio_min
                fake._stopping.wait(max(0.0, received + pace - time.monotonic()))
        if fault is not None and fault.kind == "truncate":
            reply = replace(reply, body=reply.body[: len(reply.body) // 2])
        answered = time.monotonic() - received
        fake._record(replace(upload, status=reply.status, received_s=received, answer_s=answered))
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in reply.headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _handle_chat(self, fake: FakeOpenAI, body: bytes | None, body_bytes: int) -> None:
        """`/v1/chat/completions`: its own fault queue and record (`chats`); audio counters untouched."""
        fault = fake._next_chat_fault()
        present = "Authorization" in self.headers
        request = json_object(body)
        model = str_field(request, "model")
        messages = request.get("messages")
        messages = messages if isinstance(messages, list) else []
        record = ChatRequest(model, translator_payload(messages)[0] or {}, 0, present)
        if isinstance(fault, Fault) and fault.kind == "drop":
            fake._record_chat(record)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(fault, Fault) and fault.kind == "delay":
            fake._stopping.wait(fault.seconds)
        if isinstance(fault, Fault) and fault.kind == "respond":
            reply = json_reply(fault.status, fault.body(self.headers.get("Authorization", "")), fault.headers)
        elif body is None:
            msg = f"Maximum content size limit ({fake.max_body_bytes}) exceeded ({body_bytes} bytes read)"
            reply = json_reply(413, error_body(msg, "server_error"))
        else:
            chat_fault = fault if isinstance(fault, ChatFault) else None
            reply, tokens = answer_chat(
                request,
                chat_fault,
                authorized=fake._authorized(self.headers.get("Authorization", "")),
                missing_models=fake.missing_models,
                chat_edit=fake.chat_edit,
                next_id=fake._next_chat_id,
            )
            record = replace(record, prompt_tokens=tokens[0], completion_tokens=tokens[1])
        fake._record_chat(replace(record, status=reply.status))
        self._send(reply)


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
        s_per_audio_min: float = 0.0,
        remember: bool = False,
    ) -> None:
        """`model` ("tiny.en", "base" or a CTranslate2 folder) switches from energy regions to real
        transcription; it is loaded here (once per process), before the server accepts requests.
        `s_per_audio_min` > 0 answers each transcription that long after its upload arrived, per minute of
        audio in it (as a real service takes time in proportion to the audio). `remember` answers an
        upload the model has already heard (the same file, task, language, prompt and word timing) with
        that first answer, decoded once: for tests that send the same chunks again (a rerun, a retry)."""
        if model is not None and not asr:
            raise ValueError("a model needs the audio decoded: asr=False (instant) cannot take one")
        self.whisper: Whisper | None = load_whisper(resolve_model(model)) if model is not None else None
        self.heard: Heard | None = {} if remember else None
        self.edit: Edit | None = None
        self.chat_edit: ChatEdit | None = None
        # Models that answer 404 model_not_found (chat and audio alike), and whether the translations
        # endpoint exists at all (False: 404 as for an unknown URL, as once it is removed).
        self.missing_models: set[str] = set()
        self.translations_endpoint = True
        # The models `GET /v1/models` lists, and whether that endpoint exists at all.
        self.listed_models: list[str] = list(SERVED_MODELS)
        self.models_endpoint = True
        self.api_key = api_key
        self.s_per_audio_min = s_per_audio_min
        self.max_body_bytes = max_body_bytes
        self.asr = asr
        self.speech_threshold_dbfs = speech_threshold_dbfs
        self.hallucinate_on_silence = hallucinate_on_silence
        self.transcriber: Transcriber = default_transcriber
        self._lock = threading.Lock()
        self._uploads: list[Upload] = []
        self._chats: list[ChatRequest] = []
        self._chat_faults: deque[Fault | ChatFault] = deque()
        self._chat_ids = 0
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

    def inject_chat(self, *faults: Fault | ChatFault) -> None:
        """Queue faults (`rate_limit()`, `server_error()`, ...) or misbehaviours (`drop_id()`,
        `merge_two()`, `empty_text()`, `not_json()`) for chat requests; each consumes one, in order. Audio
        requests never do."""
        with self._lock:
            self._chat_faults.extend(faults)

    @property
    def chats(self) -> list[ChatRequest]:
        with self._lock:
            return list(self._chats)

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

    def _next_chat_fault(self) -> Fault | ChatFault | None:
        with self._lock:
            return self._chat_faults.popleft() if self._chat_faults else None

    def _record_chat(self, chat: ChatRequest) -> None:
        with self._lock:
            self._chats.append(chat)

    def _record(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.append(upload)

    def _track(self, conn: socket.socket, active: bool) -> None:
        with self._lock:
            (self._open.add if active else self._open.discard)(conn)

    def _authorized(self, authorization: str) -> bool:
        return self.api_key is None or hmac.compare_digest(
            authorization.encode(), f"Bearer {self.api_key}".encode()
        )

    def _next_chat_id(self) -> str:
        with self._lock:
            self._chat_ids += 1
            return f"chatcmpl-fake{self._chat_ids:08d}"
