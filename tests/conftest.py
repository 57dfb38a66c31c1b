"""Shared fixtures: an isolated home, real sample audio, long recordings assembled at test time, and a
CLI runner that runs the real `whisperbatch` entry point in a subprocess (so a traceback would show)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pgserver import create_database, running_server
from whisperbatch.audio import find_ffmpeg

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TODAY = "2026-11-23"
CANARY_KEY = "sk-test-canary-7fQ2xZ9pLm4Rt8Vw1Yb6Nc3Hd5Kj0Gs"
# The speech in samples/fox.wav starts this far in (espeak output padded with silence).
FOX_ONSET_S = 0.6


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the joined local model across the session (it is ~145 MB)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real PostgreSQL server for the session (started by the tests, stopped at the end)."""
    with running_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


_databases = itertools.count()


@pytest.fixture()
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the session's server."""
    return create_database(pg_server, f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture()
def env(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A clean environment: own state dir, no API settings from the machine, cwd without config.toml."""
    for var in list(os.environ):
        if var.startswith(("OPENAI_", "WHISPERBATCH_")):
            monkeypatch.delenv(var)
    home = tmp_path / "home"
    monkeypatch.setenv("WHISPERBATCH_HOME", str(home))
    monkeypatch.setenv("WHISPERBATCH_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("WHISPERBATCH_RETRY_BASE_S", "0.05")
    # The API line-up changes on 2027-02-26 (whisper-1 goes): tests stand on a fixed day before it, so
    # they measure the same path whenever they run; tests of the change set their own day.
    monkeypatch.setenv("WHISPERBATCH_TODAY", TODAY)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return dict(os.environ)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    args: Sequence[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 600
) -> Result:
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


def copy_sample(name: str, dest_dir: Path, new_name: str | None = None) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLES / name, dest_dir / (new_name or name)))


def reencode(source: str, dest: Path, ffmpeg: str) -> Path:
    """A sample re-encoded under another name (the extension picks the codec)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-i", str(SAMPLES / source), str(dest)], check=True)
    return dest


@contextlib.contextmanager
def small_disk(folder: Path, size_bytes: int) -> Iterator[Path]:
    """A filesystem of its own at `folder`, `size_bytes` big, that a test can fill (a tmpfs: it needs
    root, as CI has; skips the test where it cannot be mounted)."""
    folder.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def write_silence(
    path: Path, seconds: float, rate: int = 16000, amplitude: int = 0, freq_hz: int = 220
) -> Path:
    """Digital silence, or a quiet tone when `amplitude` > 0 (for hallucination tests)."""
    import math

    n = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        if amplitude:
            frames = b"".join(
                int(amplitude * math.sin(2 * math.pi * freq_hz * i / rate)).to_bytes(2, "little", signed=True)
                for i in range(n)
            )
        else:
            frames = b"\x00\x00" * n
        w.writeframes(frames)
    return path


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


@pytest.fixture()
def fake_openai() -> Iterator[object]:
    from fakeopenai import FakeOpenAI

    with FakeOpenAI(api_key=CANARY_KEY) as server:
        server.transcriber = distinct_words
        yield server


_said = itertools.count(1)


def distinct_words(upload: object, index: int, start_s: float, end_s: float) -> str:
    """Different words for every utterance, as real speech has (repeats would look like a loop), and
    no more of them than the utterance could hold (about two a second)."""
    n = next(_said)
    count = min(3 + n % 4, max(1, int(2 * (end_s - start_s))))
    words = [_WORDS[(n * 7 + k * 13) % len(_WORDS)] for k in range(count)]
    return f"Line {n}: {' '.join(words)}."


_WORDS = (
    "river",
    "morning",
    "budget",
    "quietly",
    "harbour",
    "seven",
    "lantern",
    "orange",
    "climb",
    "window",
    "thunder",
    "basket",
    "violet",
    "engine",
    "meadow",
    "copper",
    "whistle",
    "garden",
    "silver",
    "ladder",
)


@pytest.fixture()
def api_env(env: dict[str, str], fake_openai: object) -> dict[str, str]:
    """Environment for the openai engine against the loopback server."""
    return {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": fake_openai.base_url}  # type: ignore[attr-defined]


def read_pcm(path: Path, ffmpeg: str) -> np.ndarray:
    """A recording as Whisper hears it: 16 kHz mono int16."""
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(out, dtype=np.int16)
