"""The real `whisperbatch` entry point run in a subprocess, as a user runs it: what a test or benchmark sees
is what a user would see, tracebacks included, and a run that hangs or leaks memory cannot take the
caller with it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    """How a run ended: its exit code and what it printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    args: Sequence[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 600
) -> Result:
    """`whisperbatch ARGS...` with this interpreter, in `env` (and `cwd`), to the end."""
    proc = subprocess.run(
        [sys.executable, "-m", "whisperbatch", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
