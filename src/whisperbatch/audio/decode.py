"""ffmpeg decoding straight to 16 kHz mono s16le (what Whisper uses anyway), read through a pipe.

pydub decodes a whole file into memory (an hour of 44.1 kHz stereo is ~635 MB of samples);
reading blocks from a pipe holds only the window being planned (about one chunk), so memory does not
grow with the recording's length.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tempfile
from pathlib import Path
from typing import cast

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from ..errors import DecodeError, FFmpegMissing
from ..speech import SAMPLE_RATE
from .ffmpeg import ffmpeg_reason

READ_BLOCK_S = 30


def _widen_pipe(fd: int) -> None:
    """Let ffmpeg decode a whole read block ahead while the last one is scored: a Linux pipe holds
    64 KiB (2 s of 16 kHz PCM) unless asked for more, up to /proc/sys/fs/pipe-max-size (1 MiB by
    default, 32 s). Elsewhere, or where the system refuses, the pipe keeps its size."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, setpipe, READ_BLOCK_S * SAMPLE_RATE * 2 + 4096)


class PcmReader:
    """ffmpeg decoding one file to 16 kHz mono s16le, read block by block through a pipe."""

    def __init__(self, path: Path, ffmpeg: str) -> None:
        self.path = path
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE)]
        cmd += ["-f", "s16le", "-"]
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise FFmpegMissing() from e
        _widen_pipe(cast(io.BufferedReader, self._proc.stdout).fileno())

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` (int16) from the pipe without allocating; returns samples read (fewer at the end)."""
        stdout = cast(io.BufferedReader, self._proc.stdout)
        view = memoryview(cast(bytearray, out)).cast("B")
        got = 0
        while got < len(view):
            k = stdout.readinto(view[got:])
            if not k:
                break
            got += k
        return got // 2

    def close(self, *, check: bool = True) -> None:
        """Wait for ffmpeg; a failed decode (corrupt, truncated) becomes a DecodeError naming the file."""
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if not check:
            self._proc.kill()
        code = self._proc.wait()
        self._stderr.seek(0)
        err = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        if check and code != 0:
            raise DecodeError(self.path, f"cannot decode audio ({ffmpeg_reason(err)})", stderr=err)
