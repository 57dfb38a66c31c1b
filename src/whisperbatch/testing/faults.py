"""The fault vocabulary of the test server: error bodies shaped as the OpenAI API shapes them, and the
faults a test queues to make the next request fail (or a chat answer misbehave) in a known way.

Faults are data, built by small named functions, so a test reads as the situation it stages
(`server.inject(rate_limit(2), insufficient_quota())`) and the server needs no knowledge of tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An error answer as the API writes it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


UNAUTHORIZED = error_body("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")


def model_not_found(model: str) -> dict[str, Any]:
    msg = f"The model '{model}' does not exist or you do not have access to it."
    return error_body(msg, "invalid_request_error", None, "model_not_found")


def invalid_url(path: str) -> dict[str, Any]:
    return error_body(f"Invalid URL (POST {path})", "invalid_request_error")


DECODE_FAILED = error_body(
    "The audio file could not be decoded or its format is not supported.",
    "invalid_request_error",
    "file",
    "invalid_value",
)


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of (or before) normal handling; build with the functions below."""

    kind: Literal["respond", "drop", "delay", "truncate"]
    status: int = 0
    error: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    echo_authorization: bool = False  # the error's message ends with the request's Authorization header

    def body(self, authorization: str) -> dict[str, Any] | None:
        """The error answered to a request that sent `authorization`."""
        if not self.echo_authorization or self.error is None:
            return self.error
        inner = self.error["error"]
        return {"error": {**inner, "message": f"{inner['message']}: {authorization}"}}


def rate_limit(retry_after_s: float | None = 1) -> Fault:
    """429 the SDK maps to RateLimitError; a client should wait Retry-After and try again."""
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after_s is not None:
        secs = str(int(retry_after_s)) if float(retry_after_s).is_integer() else str(retry_after_s)
        headers = (("Retry-After", secs), ("retry-after-ms", str(int(retry_after_s * 1000))))
    msg = "Rate limit reached for requests per min (RPM): Limit 50, Used 50, Requested 1."
    return Fault("respond", 429, error_body(msg, "requests", None, "rate_limit_exceeded"), headers)


def insufficient_quota() -> Fault:
    """429 too, but retrying never helps: clients must stop and say so."""
    msg = "You exceeded your current quota, please check your plan and billing details."
    return Fault("respond", 429, error_body(msg, "insufficient_quota", None, "insufficient_quota"))


def server_error(status: int = 500) -> Fault:
    msg = "The server had an error while processing your request. Sorry about that!"
    return Fault("respond", status, error_body(msg, "server_error"))


def unauthorized() -> Fault:
    return Fault("respond", 401, UNAUTHORIZED)


def echo_authorization() -> Fault:
    """A 400 that names the Authorization header with its value, as some proxies and gateways answer:
    whatever a client does with a server's message must not let the key out."""
    msg = "Invalid header value for 'Authorization'"
    return Fault(
        "respond",
        400,
        error_body(msg, "invalid_request_error", None, "invalid_header"),
        echo_authorization=True,
    )


def drop_connection() -> Fault:
    """Close the socket after reading the request: the SDK raises APIConnectionError."""
    return Fault("drop")


def delay(seconds: float) -> Fault:
    """Answer normally, but late: for client timeouts."""
    return Fault("delay", seconds=seconds)


def truncated() -> Fault:
    """A 200 whose JSON stops halfway (a proxy or server that failed mid-answer); recorded as answered,
    since the real API bills such a request all the same."""
    return Fault("truncate")


# --- chat answers that come back wrong ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChatFault:
    """A misbehaving translation (the answer is 200, its content is wrong); build with the functions below."""

    kind: Literal["drop_id", "merge_two", "empty_text", "not_json"]


def drop_id() -> ChatFault:
    """The middle segment of the batch is left out of the answer."""
    return ChatFault("drop_id")


def merge_two() -> ChatFault:
    """The first two segments come back as one: the first id carries both texts, the second id is missing."""
    return ChatFault("merge_two")


def empty_text() -> ChatFault:
    """The middle segment's text comes back as ""."""
    return ChatFault("empty_text")


def not_json() -> ChatFault:
    """The content is prose around the translations, not JSON."""
    return ChatFault("not_json")
