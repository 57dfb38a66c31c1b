"""What a recording is before anything is decoded: readable at all, how long, which audio stream."""

from __future__ import annotations

import errno
import os
import re
import subprocess
from pathlib import Path

from ..errors import AudioError, DecodeError
from ..models import AudioInfo
from .ffmpeg import ffmpeg_reason

AUDIO_SUFFIXES = frozenset(
    {".m4a", ".mp3", ".wav", ".webm", ".mp4", ".mpeg", ".mpga", ".ogg", ".oga", ".flac", ".aac", ".opus"}
)


def check_readable(path: Path) -> int:
    """The file's size, or AudioError saying in a word why it cannot be read."""
    if path.is_symlink() and not path.exists():
        try:
            path.stat()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise AudioError(path, f"symbolic link loop (to {os.readlink(path)})") from e
        raise AudioError(path, f"broken link (to {os.readlink(path)})")
    if not path.exists():
        raise AudioError(path, "no such file")
    if not path.is_file():
        raise AudioError(path, "not a file")
    try:
        with path.open("rb"):
            pass
    except OSError as e:
        raise AudioError(
            path, "permission denied" if isinstance(e, PermissionError) else str(e.strerror)
        ) from e
    return path.stat().st_size


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)[^\n]*?(\d+) Hz(?:, ([\w.() ]+))?")
_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")


def _hms(m: re.Match[str]) -> float:
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def probe(path: Path, ffmpeg: str) -> AudioInfo:
    """Duration and stream facts from `ffmpeg -i`; a file with no audio stream is a DecodeError."""
    size = check_readable(path)
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    audio = _AUDIO.search(proc.stderr)
    if audio is None:
        if "Stream #" in proc.stderr:
            raise DecodeError(path, "no audio stream in file", stderr=proc.stderr)
        reason = ffmpeg_reason(proc.stderr)
        if not reason.startswith(("truncated", "not a readable")):
            reason = f"not a readable audio file ({reason})"
        raise DecodeError(path, reason, stderr=proc.stderr)
    channels = {"mono": 1, "stereo": 2}.get((audio.group(3) or "").strip().split(" ")[0])
    dur = _DURATION.search(proc.stderr)
    duration_s = _hms(dur) if dur else _measure_duration(path, ffmpeg)
    return AudioInfo(
        path=path,
        duration_s=duration_s,
        size_bytes=size,
        sample_rate_hz=int(audio.group(2)),
        channels=channels,
        codec=audio.group(1),
    )


def _measure_duration(path: Path, ffmpeg: str) -> float:
    """For streams that carry no duration (recorder WebM): decode to nowhere and read the clock."""
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-vn", "-f", "null", "-"],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    times = list(_TIME.finditer(proc.stderr))
    if proc.returncode != 0 or not times:
        raise DecodeError(path, f"cannot measure duration ({ffmpeg_reason(proc.stderr)})", stderr=proc.stderr)
    return _hms(times[-1])
