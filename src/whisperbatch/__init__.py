"""whisperbatch: turn recordings into text and subtitles, one-off or from a watched folder.

`whisperbatch.transcribe(path)` is the library call under the CLI (see `whisperbatch.library`); it is
imported on first use, so the command line does not pay for it at start.

onnxruntime, which runs Silero VAD, collects telemetry on Linux: it writes a device id and an event
store under ~/.cache/Microsoft and a session file in the temp folder, and uploads events when it can.
Offline means offline, so it is switched off here, before any module of ours can load onnxruntime,
unless the user has set `ORT_DISABLE_TELEMETRY` themselves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .errors import WhisperbatchError
    from .library import transcribe
    from .models import Segment, Transcript, Word

__all__ = ["Segment", "Transcript", "WhisperbatchError", "Word", "__version__", "transcribe"]

_LAZY = {
    "transcribe": "library",
    "Transcript": "models",
    "Segment": "models",
    "Word": "models",
    "WhisperbatchError": "errors",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
