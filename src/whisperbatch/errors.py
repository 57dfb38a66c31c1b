"""One exception tree for everything whisperbatch raises on purpose.

The CLI catches `WhisperbatchError` and prints `str(e)` as one line; anything else is a bug and keeps
its traceback. Each error says which file (and chunk, command, ffmpeg message) it is about, and is
raised `from` the underlying exception so `--verbose` can show the chain.
"""

from __future__ import annotations

import threading
from pathlib import Path

MASK = "***"
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def keep_secret(*values: str | None) -> None:
    """Never let these (API keys) out of the process: every text that leaves it, through the console,
    the store, `status`, an error file or a log, goes through `mask`. Registered where a key enters
    (the settings, the SDK client), so a server that echoes the key in an error cannot get it written."""
    global _secrets
    with _secrets_lock:
        known = set(_secrets) | {v for v in values if v}
        _secrets = tuple(sorted(known, key=len, reverse=True))  # a key inside another: the longer first


def mask(text: str) -> str:
    """`text` with every secret kept by `keep_secret` replaced by `***`."""
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return text


class WhisperbatchError(Exception):
    """Base class. `str()` is a single line fit to show a user, with any secret masked from the start,
    so nothing downstream (store, status, error files, logs) can let the key out."""

    exit_code = 1

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask(a) if isinstance(a, str) else a for a in args))


def cause_chain(e: BaseException) -> tuple[str, ...]:
    """What lies under an error (`raise … from`), one `Type: message` line each, for `--verbose`;
    another library's message (the SDK's, with a server's answer in it) is masked here."""
    causes = []
    seen = {id(e)}
    cause = e.__cause__ or e.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        causes.append(mask(f"{type(cause).__name__}: {cause}".strip()))
        cause = cause.__cause__ or cause.__context__
    return tuple(causes)


class ConfigError(WhisperbatchError):
    """Bad flags, config file or environment: nothing was processed."""

    exit_code = 2


class AudioError(WhisperbatchError):
    """A recording could not be read or cut."""

    def __init__(self, path: Path | str, reason: str, *, stderr: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        self.stderr = stderr
        super().__init__(f"{self.path}: {reason}")


class SourceChanged(AudioError):
    """The recording is no longer the one the job was made for (replaced, or written to, while it was
    queued or transcribed): nothing is written from it, and what was stored for it is dropped."""


class FFmpegMissing(AudioError):
    """No ffmpeg on PATH and none bundled: nothing can be decoded."""

    exit_code = 2

    def __init__(self) -> None:
        super().__init__(
            "ffmpeg",
            "ffmpeg not found: install it (apt install ffmpeg / brew install ffmpeg) "
            "or reinstall whisperbatch so the imageio-ffmpeg wheel provides one",
        )


class DecodeError(AudioError):
    """ffmpeg could not decode the file: empty, not audio, truncated or corrupt."""


class EngineError(WhisperbatchError):
    """A transcription request failed."""

    def __init__(self, message: str, *, path: Path | None = None, chunk: int | None = None) -> None:
        self.path = path
        self.chunk = chunk
        where = ""
        if path is not None:
            where = f"{path}: " if chunk is None else f"{path} (chunk {chunk + 1}): "
        super().__init__(f"{where}{message}")


class RetryableEngineError(EngineError):
    """Rate limit, 5xx, timeout or dropped connection: worth another attempt."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        path: Path | None = None,
        chunk: int | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, path=path, chunk=chunk)


class UnreadableAnswer(RetryableEngineError):
    """The server answered 200, but the body could not be read (cut off, not JSON, not the expected
    shape). It was billed all the same, so it is counted as answered; asking again may well work."""


class RetriesExhausted(EngineError):
    """A retryable cause persisted through every attempt: the file may well succeed later."""


class RequestTooLarge(EngineError):
    """The server refused the upload as too big (HTTP 413): the chunk must be cut smaller."""


class FatalEngineError(EngineError):
    """Retrying cannot help, and neither can moving on to the next file: stop the run (exit 3)."""

    exit_code = 3


class QuotaExceeded(FatalEngineError):
    """The account has no quota left (`insufficient_quota`)."""


class AuthError(FatalEngineError):
    """The API key was rejected (HTTP 401/403)."""


class ModelNotFound(FatalEngineError):
    """The server has no such model (404 `model_not_found`, or a 400 naming it): every request would fail."""


class BudgetExceeded(WhisperbatchError):
    """Going on would spend more than `--budget` allows."""

    exit_code = 3


class OutputError(WhisperbatchError):
    """An output file could not be written."""


class UnwritableOutput(OutputError):
    """An output folder cannot be written: found before the run starts, so nothing was paid for."""

    exit_code = 2


class StoreError(WhisperbatchError):
    """The job store could not be read or written: its disk is full, its file is damaged, its server is
    gone. Whatever is stored stays; a run stops sending, since no further answer could be kept."""

    exit_code = 2


class Stopped(WhisperbatchError):
    """The run was told to stop (fatal error elsewhere, or a signal); the file is left unfinished."""


class Cancelled(Stopped):
    """The recording's job was cancelled while it ran: it stops before its next request (those in
    flight are answered, and every paid answer stays stored and billed) and ends failed, never
    requeued. Other jobs of the process go on."""
