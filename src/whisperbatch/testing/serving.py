"""`whisperbatch serve` run as a process, as a user runs it, on a free loopback port: tests and benchmarks
talk to it over real HTTP, kill it and start it again, and read what it logged."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_LISTENING = re.compile(r"serving on (http://\S+) ")


class Served:
    """A running `whisperbatch serve ARGS…` (`--port 0` unless ARGS name one); `url` is where it listens,
    `log` what it printed so far. Closing it stops it with SIGTERM (SIGKILL after `grace_s`)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        startup_s: float = 60.0,
        grace_s: float = 15.0,
    ) -> None:
        args = list(args)
        if "--port" not in args:
            args += ["--port", "0"]
        self.grace_s = grace_s
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "whisperbatch", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=cwd,
        )
        self._lines: list[str] = []
        self._found = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + startup_s
        while not self._found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"whisperbatch serve did not start:\n{self.log}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)
            found = _LISTENING.search(line)
            if found and not self.url:
                self.url = found.group(1)
                self._found.set()

    @property
    def log(self) -> str:
        return "".join(self._lines)

    def kill(self) -> None:
        """Kill it outright (SIGKILL), as a crash or `kill -9` would."""
        self.proc.kill()
        self.proc.wait()

    def close(self) -> int:
        """Stop it as a service manager does (SIGTERM, then SIGKILL); its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def __enter__(self) -> Served:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """`env` for a server process: output unbuffered, so its lines are read as they are printed."""
    return {**env, "PYTHONUNBUFFERED": "1", **extra}
