"""Long recordings made in a second from the repository's samples: 10-second units of speech
(samples/fox.wav) or silence, joined with ffmpeg's concat demuxer, so tests and benchmarks can ask for
an hour of audio with speech at known times without storing it.

The samples are read from a source checkout (`SAMPLES`, the repository's samples/ folder), which is
where whisperbatch's tests and benchmarks run.

Synthetic voices are not enough to trust speaker labels, and recorded conversations with a reference
cannot be shipped here, so `real_conversation` takes one from where it is published: the 30-second
two-person telephone call (with its RTTM and word transcript) inside the pyannote.audio wheel (MIT), read
from the wheel with zipfile into a cache folder; the wheel is looked for in $WHISPERBATCH_TEST_WHEELS,
then in the cache, then downloaded with pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
PYANNOTE_AUDIO = "pyannote.audio==4.0.7"
PYANNOTE_WHEEL = "pyannote_audio-4.0.7-py3-none-any.whl"
_SAMPLE = "pyannote/audio/sample/sample"  # .wav, .rttm, .stm inside the wheel
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


@dataclass(frozen=True)
class RealConversation:
    """A recorded conversation and its reference: turns (start_s, end_s, speaker) from its RTTM, and
    its STM lines (`file channel speaker start_s end_s words…`, one per utterance)."""

    wav: Path
    turns: tuple[tuple[float, float, str], ...]
    stm_lines: tuple[str, ...]

    @property
    def speakers(self) -> tuple[str, ...]:
        """The RTTM's speakers in order of first appearance."""
        return tuple(dict.fromkeys(speaker for _, _, speaker in self.turns))

    @property
    def words(self) -> tuple[tuple[str, str], ...]:
        """(word, speaker) in spoken order, from the STM (its own speaker names)."""
        lines = sorted((line.split(maxsplit=5) for line in self.stm_lines), key=lambda f: float(f[3]))
        return tuple((word, f[2]) for f in lines if len(f) == 6 for word in f[5].split())


def _pyannote_wheel(cache_dir: Path) -> Path:
    """The wheel from $WHISPERBATCH_TEST_WHEELS, else the cache, else downloaded into the cache by pip."""
    wheels = os.environ.get("WHISPERBATCH_TEST_WHEELS")
    for folder in ([Path(wheels)] if wheels else []) + [cache_dir]:
        if (folder / PYANNOTE_WHEEL).is_file():
            return folder / PYANNOTE_WHEEL
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", PYANNOTE_AUDIO]
    subprocess.run([*cmd, "-d", str(cache_dir)], check=True, capture_output=True)
    return cache_dir / PYANNOTE_WHEEL


def real_conversation(cache_dir: Path) -> RealConversation:
    """pyannote.audio's sample call: sample.wav (16 kHz mono, 30 s, two speakers), sample.rttm and
    sample.stm, taken from the wheel into `cache_dir` once and read from there after."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = {ext: cache_dir / f"sample.{ext}" for ext in ("wav", "rttm", "stm")}
    if not all(f.is_file() for f in files.values()):
        with zipfile.ZipFile(_pyannote_wheel(cache_dir)) as wheel:
            for ext, target in files.items():
                part = target.with_suffix(".part")
                part.write_bytes(wheel.read(f"{_SAMPLE}.{ext}"))
                part.replace(target)
    turns = []
    for line in files["rttm"].read_text().splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            turns.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    stm = tuple(line for line in files["stm"].read_text().splitlines() if line.strip())
    return RealConversation(files["wav"], tuple(turns), stm)
