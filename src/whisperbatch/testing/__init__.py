"""Test doubles shipped beside the code, for whisperbatch's own tests and benchmarks and for anyone who
builds on it: a loopback OpenAI-compatible server with a fault vocabulary (`FakeOpenAI`), a stub engine
that answers from a script (`StubEngine`), a throwaway PostgreSQL server (`pgserver`), recordings with
known words at known times and the scores of a transcript against them (`speechbuilder`, `recordings`,
`scoring`: they read the corpus in a source checkout's samples/), conversations between synthetic voices
with who spoke when (`conversations`, with espeak-ng), and the CLI run as a process (`process`, and
`serving` for `serve`).

They live in the package, not in tests/, so tests and bench/ import them like any other module.
"""

from .chat import ChatRequest
from .engine import StubCall, StubEngine
from .faults import (
    DECODE_FAILED,
    ChatFault,
    Fault,
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
    truncated,
    unauthorized,
)
from .server import FakeOpenAI
from .wire import Upload

__all__ = [
    "DECODE_FAILED",
    "ChatFault",
    "ChatRequest",
    "FakeOpenAI",
    "Fault",
    "StubCall",
    "StubEngine",
    "Upload",
    "delay",
    "drop_connection",
    "drop_id",
    "echo_authorization",
    "empty_text",
    "insufficient_quota",
    "merge_two",
    "not_json",
    "rate_limit",
    "server_error",
    "truncated",
    "unauthorized",
]
