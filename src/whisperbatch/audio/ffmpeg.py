"""The ffmpeg this process runs, what its complaints mean in plain words, and the cores it may use.

Nothing here needs ffprobe: `ffmpeg -i` reports duration and streams on stderr, and one ffmpeg (the
system's, else imageio-ffmpeg's) decodes, encodes and probes.
"""

from __future__ import annotations

import os
import re
import shutil

from ..errors import FFmpegMissing


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def find_ffmpeg(explicit: str | None = None) -> str:
    """A system ffmpeg when present (usually newer, more codecs), else the imageio-ffmpeg one."""
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe: str = imageio_ffmpeg.get_ffmpeg_exe()
        return exe
    except (ImportError, RuntimeError) as e:
        raise FFmpegMissing() from e


_KNOWN_REASONS = (
    ("moov atom not found", "truncated or still being copied (moov atom not found)"),
    ("invalid data found", "not a readable audio file (invalid data)"),
    ("end of file", "truncated (unexpected end of file)"),
)


def ffmpeg_reason(stderr: str) -> str:
    """ffmpeg's most telling complaint in plain words, without its `[in#0 @ 0x…]` prefixes or our path."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    for needle, plain in _KNOWN_REASONS:
        if any(needle in ln.lower() for ln in lines):
            return plain
    last = lines[-1] if lines else "ffmpeg failed"
    return last.split(": ", 1)[-1] if last.startswith("/") else last
