"""Long recordings made in a second from the repository's samples: 10-second units of speech
(samples/fox.wav) or silence, joined with ffmpeg's concat demuxer, so tests and benchmarks can ask for
an hour of audio with speech at known times without storing it.

The samples are read from a source checkout (`SAMPLES`, the repository's samples/ folder), which is
where whisperbatch's tests and benchmarks run.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
# The speech in samples/fox.wav starts this far in (espeak output padded with silence).
FOX_ONSET_S = 0.6


def assemble(
    path: Path,
    pattern: Sequence[bool],
    ffmpeg: str,
    *,
    unit_s: float = 10.0,
    rate: int = 16000,
    channels: int = 1,
) -> list[float]:
    """A long recording from 10-second units, speech (samples/fox.wav) where `pattern` is True.

    Returns the true onsets of speech in seconds. Units are joined with the concat demuxer, so an
    hour is written in about a second without holding it in memory.
    """
    work = path.parent / f".{path.stem}-units"
    work.mkdir(exist_ok=True)
    speech, silence = work / "speech.wav", work / "silence.wav"
    fmt = ["-ar", str(rate), "-ac", str(channels), "-c:a", "pcm_s16le"]
    layout = "mono" if channels == 1 else "stereo"
    listing = work / "list.txt"

    def ff(*args: str) -> None:
        subprocess.run([ffmpeg, "-y", "-v", "error", *args], check=True)

    ff("-i", str(SAMPLES / "fox.wav"), "-af", f"apad=whole_dur={unit_s}", *fmt, str(speech))
    ff("-f", "lavfi", "-t", str(unit_s), "-i", f"anullsrc=r={rate}:cl={layout}", *fmt, str(silence))
    listing.write_text("".join(f"file '{speech if s else silence}'\n" for s in pattern))
    ff("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path))
    shutil.rmtree(work)
    return [i * unit_s + FOX_ONSET_S for i, s in enumerate(pattern) if s]


def two_sentence_recordings(folder: Path, count: int, ffmpeg: str) -> list[Path]:
    """`count` different recordings of two sentences each (two chunks): units of slightly different
    lengths, so no two have the same content."""
    folder.mkdir(parents=True)
    made = []
    for i in range(count):
        path = folder / f"rec{i:02d}.wav"
        assemble(path, [True, False, True], ffmpeg, unit_s=6.0 + 0.05 * i)
        made.append(path)
    return made
