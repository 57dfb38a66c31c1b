"""What crosses the test server's socket: a request as the server records it, the hooks a test sets to
shape answers, and the small codecs (multipart bodies in, JSON replies out) built on the stdlib alone, so
the server needs no web framework (and no `cgi`, gone in 3.13).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any


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
    # gpt-transcribe's list fields, sent as repeated `languages[]` / `keywords[]` fields.
    languages: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    received_s: float = 0.0  # time.monotonic() when its body had been read
    answer_s: float = 0.0  # from then to the reply sent


def blank_upload(path: str) -> Upload:
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


@dataclass(frozen=True)
class Reply:
    """An answer as it goes back: status, body and the headers beyond Content-Type and Content-Length."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, obj: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """`obj` as a JSON answer."""
    return Reply(status, json.dumps(obj).encode(), "application/json", headers)


def json_object(body: bytes | None) -> dict[str, Any]:
    """A JSON request body as a dict; {} when it is missing or not a JSON object."""
    try:
        obj = json.loads(body or b"")
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def str_field(obj: dict[str, Any], key: str) -> str:
    """A string field of a JSON object; "" when it is missing or not a string."""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


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
