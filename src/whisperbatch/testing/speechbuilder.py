"""Long speech recordings with known words at known offsets, assembled at test time from the corpus.

The corpus is `samples/script.ogg` + `samples/script.json` (espeak-ng sentences in five voices, made by
`samples/make_script.py`; nothing here needs espeak-ng), or `samples/repeat.*` (`corpus_name="repeat"`:
six sentences and four markers in one voice, for speech that says the same things again and again).
`build_recording` lays sentences out on a timeline (random pauses, long silences, marker sentences at
exact times, quiet passages, an optional noise bed) and writes a 16-bit mono WAV block by block, so an
hour costs a few MB of memory beyond the decoded corpus. The returned `Built` is the ground truth: every
sentence's text and audible span, to sample accuracy, and the script to score a transcript against
(with `whisperbatch.testing.scoring`).

The corpus is read from a source checkout's samples/ folder, where whisperbatch's tests and benchmarks run.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import subprocess
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .recordings import SAMPLES

MARGIN_S = 0.05  # audio kept around a sentence's audible span when it is cut from the corpus
MARKER_SILENCE_S = 6.0  # no speech for this long before each marker sentence
HUM_DEFAULT_DBFS = -45.0  # hum level when no noise level is given
BLOCK_S = 30  # seconds written per block
_PINK_LOOP = 1 << 20  # samples of pink noise generated once and looped (seamless: made in the FFT domain)


@dataclass(frozen=True)
class Sentence:
    """One corpus entry; `start_s`/`end_s` are its audible span in script.ogg."""

    id: int
    text: str
    start_s: float
    end_s: float
    marker: bool


@dataclass(frozen=True)
class Placed:
    """One sentence in a built recording: its audible span in seconds (exact to the sample)."""

    text: str
    start_s: float
    end_s: float
    marker: bool
    gain_db: float = 0.0  # quiet_db for sentences starting inside a `quiet` span


@dataclass(frozen=True)
class Built:
    """A written recording and its ground truth."""

    path: Path
    duration_s: float
    placed: tuple[Placed, ...]
    # Every speech-free stretch longer than the longest ordinary pause, (start_s, end_s), file edges included.
    silences: tuple[tuple[float, float], ...]

    @property
    def script(self) -> str:
        """The reference text: the sentences in the order they are spoken."""
        return " ".join(p.text for p in self.placed)

    @property
    def markers(self) -> tuple[Placed, ...]:
        return tuple(p for p in self.placed if p.marker)


@functools.cache
def corpus(name: str = "script") -> tuple[Sentence, ...]:
    entries: list[dict[str, Any]] = json.loads((SAMPLES / f"{name}.json").read_text())
    return tuple(
        Sentence(int(e["id"]), str(e["text"]), float(e["start_s"]), float(e["end_s"]), bool(e["marker"]))
        for e in entries
    )


@functools.cache
def corpus_pcm(ffmpeg: str, rate: int = 16_000, name: str = "script") -> np.ndarray[Any, np.dtype[np.int16]]:
    """script.ogg decoded once per process (per rate) to mono int16: ~8 MB at 16 kHz."""
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(SAMPLES / f"{name}.ogg")]
    cmd += ["-f", "s16le", "-ac", "1", "-ar", str(rate), "-"]
    pcm = np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, dtype=np.int16)
    pcm.flags.writeable = False
    return pcm


@dataclass(frozen=True)
class Clip:
    """Where a sentence is cut from a corpus's samples, and where its audible span lies in the cut."""

    sentence: Sentence
    first: int  # corpus sample where the cut starts (MARGIN_S before the audible span)
    lead: int  # samples from the cut to the audible start
    speech: int  # samples of the audible span
    length: int  # samples in the whole cut


def clip_of(sentence: Sentence, rate: int) -> Clip:
    first = round((sentence.start_s - MARGIN_S) * rate)
    start, end = round(sentence.start_s * rate), round(sentence.end_s * rate)
    last = round((sentence.end_s + MARGIN_S) * rate)
    return Clip(sentence, first, start - first, end - start, last - first)


def _pool(ids: Sequence[int], shuffle: bool, rng: random.Random) -> Iterator[int]:
    """The ids forever: in the given order, or reshuffled each pass (never the same one twice in a row)."""
    last: int | None = None
    while True:
        order = list(ids)
        if shuffle:
            rng.shuffle(order)
            if len(order) > 1 and order[0] == last:
                order.append(order.pop(0))
        yield from order
        last = order[-1]


def build_recording(
    path: Path,
    *,
    duration_s: float,
    seed: int,
    ffmpeg: str,
    markers_at_s: Sequence[float] = (),
    long_silences: Sequence[tuple[float, float]] = (),
    pause_s: tuple[float, float] = (0.3, 1.5),
    noise_dbfs: float | None = None,
    hum_hz: float | None = None,
    quiet: Sequence[tuple[float, float]] = (),
    quiet_db: float = -18.0,
    rate: int = 16_000,
    sentences: Sequence[int] | None = None,
    max_sentences: int | None = None,
    corpus_name: str = "script",
) -> Built:
    """Write `path` (16-bit mono WAV at `rate`) and return where every sentence is.

    - Filler speech: non-marker corpus sentences (or the corpus ids in `sentences`, in that order),
      repeated as needed and separated by pauses drawn from `pause_s` (between audible spans); without
      `sentences` the order is shuffled by `seed`, pass after pass. `max_sentences` caps their number
      (the rest of the recording is then silent).
    - `long_silences`: (start_s, length_s) stretches with no speech at all; speech resumes at their end.
    - `markers_at_s`: the marker sentences, cycled, each starting to be audible exactly at its time
      (to the sample) after at least MARKER_SILENCE_S of silence.
    - `quiet`: (start_s, length_s) spans; sentences starting inside them are attenuated by `quiet_db`.
    - `noise_dbfs`: pink noise at that RMS level over the whole file. `hum_hz`: mains hum (the
      fundamental plus two harmonics) at the same RMS level (HUM_DEFAULT_DBFS without `noise_dbfs`).
    Deterministic for a given seed and arguments.
    """
    rng = random.Random(seed)
    sents = corpus(corpus_name)
    by_id = {s.id: s for s in sents}
    if sentences is not None and (not sentences or any(i not in by_id for i in sentences)):
        raise ValueError(f"sentences must be corpus ids (0..{len(sents) - 1})")
    clips = {s.id: clip_of(s, rate) for s in sents}
    markers = [clips[s.id] for s in sents if s.marker]
    total = round(duration_s * rate)
    lo, hi = pause_s

    def pause() -> int:
        return round(rng.uniform(lo, hi) * rate)

    plan, blocked = _markers_planned(markers, markers_at_s, long_silences, rate, total, duration_s)
    pool = (
        [clips[i] for i in sentences]
        if sentences is not None
        else [clips[s.id] for s in sents if not s.marker]
    )
    plan += _fillers(pool, sentences is None, blocked, total, max_sentences, rng, pause)
    plan.sort(key=lambda p: p[0])

    quiet_spans = [(round(s * rate), round((s + n) * rate)) for s, n in quiet]
    placed: list[Placed] = []
    gains: list[float] = []
    for start, clip in plan:
        gain_db = quiet_db if any(a <= start < b for a, b in quiet_spans) else 0.0
        gains.append(10 ** (gain_db / 20))
        text, marker = clip.sentence.text, clip.sentence.marker
        placed.append(Placed(text, start / rate, (start + clip.speech) / rate, marker, gain_db))

    edges = [0] + [v for start, clip in plan for v in (start, start + clip.speech)] + [total]
    longest_pause = round(hi * rate)
    silences = tuple(
        (a / rate, b / rate) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a > longest_pause
    )

    write_plan(path, total, rate, plan, gains, corpus_pcm(ffmpeg, rate, corpus_name), rng, noise_dbfs, hum_hz)
    return Built(path, total / rate, tuple(placed), silences)


# A stretch no filler may enter, in samples: (start, end, whether a pause follows it). A pause follows a
# marker; speech resumes at once after a long silence.
_Blocked = tuple[int, int, bool]


def _markers_planned(
    markers: Sequence[Clip],
    markers_at_s: Sequence[float],
    long_silences: Sequence[tuple[float, float]],
    rate: int,
    total: int,
    duration_s: float,
) -> tuple[list[tuple[int, Clip]], list[_Blocked]]:
    """The marker sentences placed at their times (cycled), and the stretches fillers must keep out of:
    the long silences, and each marker with its silence before."""
    blocked: list[_Blocked] = [(round(s * rate), round((s + n) * rate), False) for s, n in long_silences]
    plan: list[tuple[int, Clip]] = []  # (sample where the audible span starts, clip)
    for k, at in enumerate(sorted(markers_at_s)):
        clip = markers[k % len(markers)]
        start = round(at * rate)
        if start - clip.lead < 0 or start - clip.lead + clip.length > total:
            raise ValueError(f"marker at {at} s does not fit in {duration_s} s")
        plan.append((start, clip))
        blocked.append((max(0, start - round(MARKER_SILENCE_S * rate)), start + clip.speech, True))
    blocked.sort()
    for (_, a_end, _), (b_start, _, _) in itertools.pairwise(blocked):
        if b_start < a_end:
            raise ValueError("long silences and markers (with their silence before) overlap")
    if blocked and (blocked[0][0] < 0 or blocked[-1][1] > total):
        raise ValueError("long silences and markers must lie within the recording")
    return plan, blocked


def _fillers(
    pool: Sequence[Clip],
    shuffle: bool,
    blocked: Sequence[_Blocked],
    total: int,
    max_sentences: int | None,
    rng: random.Random,
    pause: Callable[[], int],
) -> list[tuple[int, Clip]]:
    """Filler sentences from `pool` (in order, or shuffled pass after pass) laid out around the blocked
    stretches, each where its audible span starts; one too long for the room left gives way to any
    shorter one from the pool, and where none fits the room stays silent."""
    by_id = {c.sentence.id: c for c in pool}
    pool_ids = [c.sentence.id for c in pool]
    order = _pool(pool_ids, shuffle, rng)
    upcoming = next(order)
    cursor = pause()
    plan: list[tuple[int, Clip]] = []
    while max_sentences is None or len(plan) < max_sentences:
        ahead = next((b for b in blocked if b[1] > cursor), None)
        if ahead is not None and ahead[0] <= cursor:  # inside a blocked stretch: jump past it
            cursor = ahead[1] + (pause() if ahead[2] else 0)
            continue
        limit = ahead[0] if ahead is not None else total

        def fits(c: Clip, at: int = cursor, limit: int = limit) -> bool:
            return at - c.lead >= 0 and at + c.speech <= limit and at + c.length - c.lead <= total

        chosen: Clip | None = by_id[upcoming] if fits(by_id[upcoming]) else None
        if chosen is not None:
            upcoming = next(order)
        else:  # the next in line is too long for the room left: any shorter one from the pool
            fitting = sorted({i for i in pool_ids if fits(by_id[i])})
            chosen = by_id[rng.choice(fitting)] if fitting else None
        if chosen is None:
            if ahead is None:
                break
            cursor = ahead[0]  # leave the rest of the room silent; the loop then jumps past the block
            continue
        plan.append((cursor, chosen))
        cursor += chosen.speech + pause()
    return plan


def _pink_loop(rms: float, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Pink (1/f power) noise shaped in the FFT domain, so it loops without a seam; scaled to `rms`."""
    gen = np.random.default_rng(seed)
    spectrum = np.fft.rfft(gen.standard_normal(_PINK_LOOP))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    spectrum /= np.sqrt(freqs)
    spectrum[:4] = 0  # no DC, nothing below a few Hz
    pink = np.fft.irfft(spectrum, _PINK_LOOP)
    pink *= rms / np.sqrt(np.mean(pink**2))
    scaled: np.ndarray[Any, np.dtype[np.float32]] = pink.astype(np.float32)
    return scaled


def write_plan(
    path: Path,
    total: int,
    rate: int,
    plan: list[tuple[int, Clip]],
    gains: list[float],
    pcm: np.ndarray[Any, np.dtype[np.int16]],
    rng: random.Random,
    noise_dbfs: float | None,
    hum_hz: float | None,
) -> None:
    """Write `plan` ((sample where a clip's audible span starts, clip), sorted by start) cut from `pcm`,
    each clip scaled by its gain, block by block: memory stays a block's worth whatever the length."""
    level = 32768 * 10 ** ((noise_dbfs if noise_dbfs is not None else HUM_DEFAULT_DBFS) / 20)
    pink = _pink_loop(level, rng.randrange(2**32)) if noise_dbfs is not None else None
    pink_offset = rng.randrange(_PINK_LOOP)
    harmonics = ((1, 1.0), (2, 0.5), (3, 0.25))
    hum_scale = level / math.sqrt(sum(a * a for _, a in harmonics) / 2)
    block = BLOCK_S * rate
    first = 0  # plan entries before this one end before the current block
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for b0 in range(0, total, block):
            b1 = min(total, b0 + block)
            out = np.zeros(b1 - b0, dtype=np.float32)
            while first < len(plan) and plan[first][0] - plan[first][1].lead + plan[first][1].length <= b0:
                first += 1
            for (start, clip), gain in zip(plan[first:], gains[first:], strict=True):
                c0 = start - clip.lead  # where the cut begins in the output
                if c0 >= b1:
                    break
                lo, hi = max(b0, c0), min(b1, c0 + clip.length)
                if lo < hi:
                    piece = pcm[clip.first + lo - c0 : clip.first + hi - c0].astype(np.float32)
                    out[lo - b0 : hi - b0] += piece * gain
            if pink is not None:
                idx = (np.arange(b0, b1) + pink_offset) % _PINK_LOOP
                out += pink[idx]
            if hum_hz is not None:
                t = np.arange(b0, b1, dtype=np.float64) / rate
                for h, a in harmonics:
                    out += (a * hum_scale * np.sin(2 * np.pi * hum_hz * h * t)).astype(np.float32)
            w.writeframes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())
