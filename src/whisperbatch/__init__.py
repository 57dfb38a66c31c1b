"""whisperbatch: turn recordings into text and subtitles, one-off or from a watched folder.

onnxruntime, which runs Silero VAD, collects telemetry on Linux: it writes a device id and an event
store under ~/.cache/Microsoft and a session file in the temp folder, and uploads events when it can.
Offline means offline, so it is switched off here, before any module of ours can load onnxruntime,
unless the user has set `ORT_DISABLE_TELEMETRY` themselves.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
