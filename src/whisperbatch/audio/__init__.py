"""Probe, decode, find speech, and cut recordings into chunks an engine accepts.

Decoding streams 16 kHz mono PCM from ffmpeg through a pipe (decode.py), so memory does not grow with
a recording's length; cuts are planned in pauses found by speech detection (plan.py); chunks are
encoded while the next ones are decoded and scored (encode.py, chunker.py). What the rest of
whisperbatch uses is named here.
"""

from ..speech import SAMPLE_RATE
from .chunker import Chunker
from .encode import UPLOAD_OVERHEAD_BYTES, cut_chunk, halve
from .ffmpeg import find_ffmpeg, usable_cores
from .plan import ChunkParams
from .probe import AUDIO_SUFFIXES, check_readable, probe

__all__ = [
    "AUDIO_SUFFIXES",
    "SAMPLE_RATE",
    "UPLOAD_OVERHEAD_BYTES",
    "ChunkParams",
    "Chunker",
    "check_readable",
    "cut_chunk",
    "find_ffmpeg",
    "halve",
    "probe",
    "usable_cores",
]
