"""Speaker labels: who said what, offline, on onnxruntime (no torch, no token).

`diarize` finds a recording's speakers, `voiceprint` makes a registered voice from a clip,
`name_speakers` puts registered names to a recording's speakers, and `assign` lays the speakers onto a
transcript's words and cues.
"""

from .diarize import Diarization, SpeakerOptions, diarize, voiceprint
from .names import NamedVoice, name_speakers
from .runtime import SpeakerError

__all__ = [
    "Diarization",
    "NamedVoice",
    "SpeakerError",
    "SpeakerOptions",
    "diarize",
    "name_speakers",
    "voiceprint",
]
