"""Conversations between several synthetic voices, with who said what and when, built at test time.

Speaker labels can only be scored against recordings whose every turn is known: who speaks, from when
to when, saying what. Recorded meetings with such a reference are rare and cannot be shipped, so the
tests and the bench assemble them: each voice (an espeak-ng voice, variant, pitch and speed, chosen to
sound like different people and stay intelligible to Whisper) says corpus sentences and a few short
replies, recorded once into `samples/voices.ogg` (`samples/make_script.py --corpus voices`, the one
step that needs espeak-ng); turns of one voice (1 s to 20 s, one or more sentences) follow each other
after short pauses, optionally overlapping a little; a speaker can be kept silent for a stretch (ten
minutes, say) and then come back, which is what tests that labels hold across a recording.

The corpus is decoded once per process (about 10 MB) and the recording is written block by block with
`speechbuilder.write_plan`, so an hour costs no more memory than a minute. Deterministic for a given
seed and arguments.
"""

from __future__ import annotations

import functools
import json
import random
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import find_ffmpeg
from .recordings import SAMPLES
from .speechbuilder import MARGIN_S, Clip, Sentence, clip_of, corpus_pcm, write_plan

THRESHOLD = 33  # -60 dBFS on the sample amplitude: where a clip's audible span starts and ends
SHORT_TURN_S = 2.5  # a turn planned shorter than this is one short reply
LONG_TURN_S = 20.0
MIN_TURN_S = 1.0
INNER_PAUSE_S = (0.1, 0.3)  # between the sentences of one turn


@dataclass(frozen=True)
class Voice:
    """One synthetic person: `name` is the speaker label in the reference."""

    name: str
    espeak: str  # espeak-ng voice: language and variant
    pitch: int  # espeak-ng -p, 0 to 99
    wpm: int  # espeak-ng -s, words per minute


# Different variants (formants), pitches (median F0 about 210, 90, 140 and 300 Hz) and speeds; all read
# English that tiny.en transcribes well.
VOICES = (
    Voice("Ann", "en-us+f2", 55, 165),
    Voice("Bob", "en-us+m3", 32, 150),
    Voice("Cid", "en-gb-x-rp+m7", 80, 140),
    Voice("Dee", "en-us+f4", 95, 175),
)

# Turns of about a second: what people say between longer turns.
REPLIES = (
    "Yes, that sounds right.",
    "I agree with that.",
    "No, I do not think so.",
    "That is a good point.",
    "Really? I did not know that.",
    "Thank you very much.",
    "Okay, let us do that.",
    "Sorry, could you say that again?",
    "Good idea.",
    "I see what you mean.",
)


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech: from the first sentence's audible start to the last one's end."""

    start_s: float
    end_s: float
    speaker: str
    text: str


@dataclass(frozen=True)
class Absence:
    """A speaker who says nothing from `start_s` for `length_s` seconds, and speaks again after."""

    speaker: str
    start_s: float
    length_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


@dataclass(frozen=True)
class Conversation:
    """A written recording and its reference: every turn, in order of start."""

    path: Path
    duration_s: float
    turns: tuple[Turn, ...]
    absences: tuple[Absence, ...] = ()

    @property
    def speakers(self) -> tuple[str, ...]:
        """The speakers in order of first appearance."""
        return tuple(dict.fromkeys(t.speaker for t in self.turns))

    @property
    def script(self) -> str:
        """The reference text: the turns' texts in the order they start."""
        return " ".join(t.text for t in self.turns)

    @property
    def segments(self) -> tuple[tuple[float, float, str], ...]:
        """(start_s, end_s, speaker) per turn: the reference `scoring.der` takes."""
        return tuple((t.start_s, t.end_s, t.speaker) for t in self.turns)

    @property
    def words(self) -> tuple[tuple[str, str], ...]:
        """(word, speaker) in spoken order: the reference `scoring.word_attribution` takes."""
        return tuple((w, t.speaker) for t in self.turns for w in t.text.split())


@dataclass(frozen=True)
class _Voiced:
    """Every text said by every voice, cut one after another into one array, with where each lies."""

    pcm: np.ndarray[Any, np.dtype[np.int16]]
    clips: dict[str, tuple[Clip, ...]]  # voice name -> the corpus sentences said by that voice
    replies: dict[str, tuple[Clip, ...]]  # voice name -> the replies (MIN_TURN_S long or more)


def _entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((SAMPLES / "voices.json").read_text())
    return entries


def sentences() -> tuple[str, ...]:
    """The sentences every voice says (replies apart), each once."""
    return tuple(dict.fromkeys(e["text"] for e in _entries() if not e["reply"]))


@functools.cache
def _voiced(voices: tuple[Voice, ...], rate: int) -> _Voiced:
    """The voices' takes in the committed corpus (`samples/voices.*`), decoded once per process."""
    clips: dict[str, list[Clip]] = {v.name: [] for v in voices}
    replies: dict[str, list[Clip]] = {v.name: [] for v in voices}
    for e in _entries():
        if e["speaker"] not in clips:
            continue
        clip = clip_of(
            Sentence(int(e["id"]), str(e["text"]), float(e["start_s"]), float(e["end_s"]), False), rate
        )
        if not e["reply"]:
            clips[e["speaker"]].append(clip)
        elif clip.speech >= MIN_TURN_S * rate:
            replies[e["speaker"]].append(clip)
    missing = [name for name, found in clips.items() if not found]
    if missing:
        raise ValueError(
            f"no recorded speech for {', '.join(missing)}: samples/make_script.py --corpus voices"
        )
    pcm = corpus_pcm(find_ffmpeg(), rate, "voices")
    return _Voiced(pcm, {k: tuple(v) for k, v in clips.items()}, {k: tuple(v) for k, v in replies.items()})


def monologue(path: Path, voice: Voice, *, sentences: int = 4, rate: int = 16_000) -> Path:
    """A WAV of `voice` alone saying its first `sentences` sentences, 0.5 s apart: a clip to register."""
    voiced = _voiced((voice,), rate)
    gap = np.zeros(rate // 2, dtype=np.int16)
    parts = [part for clip in voiced.clips[voice.name][:sentences] for part in (_cut(voiced.pcm, clip), gap)]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(parts).tobytes())
    return path


def _cut(pcm: np.ndarray[Any, np.dtype[np.int16]], clip: Clip) -> np.ndarray[Any, np.dtype[np.int16]]:
    return pcm[clip.first + clip.lead : clip.first + clip.lead + clip.speech]


def _cycle(clips: Sequence[Clip], rng: random.Random) -> Iterator[Clip]:
    """The clips forever, reshuffled each pass."""
    while True:
        order = list(clips)
        rng.shuffle(order)
        yield from order


@dataclass
class _Planner:
    """Makes turns of the voices' clips; a turn's clips are (sample where the audible span starts, clip)."""

    voiced: _Voiced
    rate: int
    rng: random.Random
    pools: dict[str, Iterator[Clip]]

    def _reply(self, speaker: str, target_s: float) -> Clip:
        """A short reply no longer than `target_s` (the shortest one if none is)."""
        replies = self.voiced.replies[speaker]
        fitting = [c for c in replies if c.speech <= target_s * self.rate]
        return self.rng.choice(fitting) if fitting else min(replies, key=lambda c: c.speech)

    def turn(self, speaker: str, start: int, target_s: float) -> tuple[Turn, list[tuple[int, Clip]]]:
        """One turn of `speaker` starting at sample `start`, about `target_s` long at most: one short
        reply, or as many sentences as fit."""
        rate, rng = self.rate, self.rng
        said: list[Clip] = []
        if target_s >= SHORT_TURN_S:
            room = round(target_s * rate)
            while (clip := next(self.pools[speaker])).speech <= room:
                said.append(clip)
                room -= clip.speech + round(rng.uniform(*INNER_PAUSE_S) * rate)
        if not said:
            said = [self._reply(speaker, target_s)]
        placed: list[tuple[int, Clip]] = []
        at = start
        for k, clip in enumerate(said):
            if k:
                at += round(rng.uniform(*INNER_PAUSE_S) * rate)
            placed.append((at, clip))
            at += clip.speech
        return Turn(start / rate, at / rate, speaker, " ".join(c.sentence.text for c in said)), placed


def _target_s(rng: random.Random) -> float:
    """A turn's planned length: often short, mostly a few sentences, sometimes a long stretch."""
    kind = rng.random()
    if kind < 0.3:
        return rng.uniform(MIN_TURN_S, SHORT_TURN_S)
    if kind < 0.75:
        return rng.uniform(SHORT_TURN_S, 10.0)
    return rng.uniform(10.0, LONG_TURN_S)


def _next_speaker(
    names: Sequence[str],
    turns: Sequence[Turn],
    start_s: float,
    absences: Sequence[Absence],
    rng: random.Random,
) -> str:
    """Anyone but the current speaker who is not absent in the next LONG_TURN_S; a speaker whose
    absence is over and who has not spoken since comes back first."""
    current = turns[-1].speaker if turns else None
    window = (start_s, start_s + LONG_TURN_S + 1.0)
    free = [
        n
        for n in names
        if n != current
        and not any(a.speaker == n and a.start_s < window[1] and a.end_s > window[0] for a in absences)
    ]
    if not free:
        raise ValueError(f"no speaker free to talk at {start_s:.1f} s: absences leave fewer than two")
    back = [
        a.speaker
        for a in absences
        if a.speaker in free
        and a.end_s <= start_s
        and not any(t.speaker == a.speaker and t.start_s >= a.end_s for t in turns)
    ]
    return back[0] if back else rng.choice(free)


def build_conversation(
    path: Path,
    *,
    duration_s: float,
    seed: int,
    speakers: int = 3,
    absences: Sequence[Absence] = (),
    pause_s: tuple[float, float] = (0.2, 1.0),
    overlap_share: float = 0.0,
    overlap_s: tuple[float, float] = (0.2, 0.5),
    noise_dbfs: float | None = None,
    voices: Sequence[Voice] = VOICES,
    rate: int = 16_000,
) -> Conversation:
    """Write `path` (16-bit mono WAV at `rate`, `duration_s` long) and return its reference.

    - The first `speakers` of `voices` take turns of 1 s to 20 s (never two turns in a row by one
      speaker), separated by pauses drawn from `pause_s`; the last turn ends before `duration_s`.
    - `overlap_share`: the share of changes of speaker where the next turn starts before the previous
      one ends, by a length drawn from `overlap_s` (at most 0.5 s, so two voices at most at a time).
    - `absences`: a speaker says nothing in that stretch and is the first to speak after it.
    - `noise_dbfs`: pink noise at that RMS level under the whole recording.
    """
    if not 2 <= speakers <= len(voices):
        raise ValueError(f"speakers must be 2 to {len(voices)}")
    if overlap_s[1] > MIN_TURN_S / 2:
        raise ValueError(f"overlaps must be at most {MIN_TURN_S / 2} s")
    cast = tuple(voices[:speakers])
    names = [v.name for v in cast]
    if any(a.speaker not in names for a in absences):
        raise ValueError(f"absences name speakers not in the conversation ({', '.join(names)})")
    rng = random.Random(seed)
    voiced = _voiced(cast, rate)
    planner = _Planner(voiced, rate, rng, {n: _cycle(voiced.clips[n], rng) for n in names})
    total = round(duration_s * rate)
    margin = round(MARGIN_S * rate)
    turns: list[Turn] = []
    plan: list[tuple[int, Clip]] = []
    cursor = round(rng.uniform(*pause_s) * rate)
    while True:
        speaker = _next_speaker(names, turns, cursor / rate, absences, rng)
        turn, placed = planner.turn(speaker, cursor, _target_s(rng))
        end = round(turn.end_s * rate)
        if end + margin > total:
            break
        turns.append(turn)
        plan += placed
        if rng.random() < overlap_share:
            cursor = end - round(rng.uniform(*overlap_s) * rate)
        else:
            cursor = end + round(rng.uniform(*pause_s) * rate)
    plan.sort(key=lambda p: p[0])
    write_plan(path, total, rate, plan, [1.0] * len(plan), voiced.pcm, rng, noise_dbfs, None)
    return Conversation(path, total / rate, tuple(turns), tuple(absences))


def long_conversation(
    path: Path, *, seed: int, duration_s: float = 3600.0, speakers: int = 3
) -> Conversation:
    """The acceptance's long recording: `speakers` voices for `duration_s`, the last of them silent for
    ten minutes from a third of the way in, then back."""
    absent = Absence(VOICES[speakers - 1].name, round(duration_s / 3), 600.0)
    return build_conversation(path, duration_s=duration_s, seed=seed, speakers=speakers, absences=(absent,))
