"""Typed results passed between stages.

Every stage hands the next one a frozen dataclass rather than a dict, so a misspelt field fails at
type-check time and units live in the names (`start_s`, `size_bytes`), never in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path


class Task(StrEnum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


class JobState(StrEnum):
    """A job's place in the queue."""

    QUEUED = "queued"
    RUNNING = "running"  # claimed by a worker that holds a lease on it
    DONE = "done"
    FAILED = "failed"


class Spend(StrEnum):
    """Where a file's spend in one run stands, as the ledger records it."""

    RUNNING = "running"  # requests answered so far; a run killed outright leaves it so
    DONE = "done"
    FAILED = "failed"  # spent on a file that then failed
    UNFINISHED = "unfinished"  # the run was stopped; requests abandoned in flight are included


@dataclass(frozen=True)
class Word:
    """One timed word, as Whisper's word timestamps give it. `text` keeps Whisper's leading space."""

    start_s: float
    end_s: float
    text: str
    probability: float | None = None
    speaker: str | None = None  # who said it, when speaker labels were made

    def shifted(self, offset_s: float) -> Word:
        return replace(self, start_s=self.start_s + offset_s, end_s=self.end_s + offset_s)


@dataclass(frozen=True)
class Segment:
    """One timed stretch of text. Times are seconds from the start of the whole recording."""

    start_s: float
    end_s: float
    text: str
    # Decoder confidence, when the engine reports it (whisper-1 verbose_json, faster-whisper).
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    # Word timestamps, when the engine gives them (empty otherwise); same timeline as the segment.
    words: tuple[Word, ...] = ()
    speaker: str | None = None  # who said it, when speaker labels were made (one voice per segment)

    def shifted(self, offset_s: float) -> Segment:
        return replace(
            self,
            start_s=self.start_s + offset_s,
            end_s=self.end_s + offset_s,
            words=tuple(w.shifted(offset_s) for w in self.words),
        )


@dataclass(frozen=True)
class AudioInfo:
    """What ffmpeg tells us about an input before decoding it."""

    path: Path
    duration_s: float
    size_bytes: int
    sample_rate_hz: int | None = None
    channels: int | None = None
    codec: str | None = None


@dataclass(frozen=True)
class Span:
    """A stretch of the recording in seconds, e.g. one utterance found at silences."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Chunk:
    """One piece of a recording, encoded to a file an engine accepts.

    `offset_s` is the exact position of the chunk's first sample in the recording: every segment an
    engine returns for this chunk is shifted by it. `speech` lists the utterances inside the chunk
    (relative to the chunk) so models that return no timestamps still get subtitle cues.
    """

    index: int
    offset_s: float
    duration_s: float
    path: Path
    size_bytes: int
    speech: tuple[Span, ...] = ()


@dataclass(frozen=True)
class Usage:
    """What one answer says was billed: audio seconds (per-minute models) or tokens (token-billed
    transcription models, chat models). Zero where the server reported nothing of that kind."""

    seconds: float | None = None
    audio_tokens: int = 0
    text_tokens: int = 0  # input text: a transcription prompt, or a chat request
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        seconds = (
            None
            if self.seconds is None and other.seconds is None
            else ((self.seconds or 0.0) + (other.seconds or 0.0))
        )
        return Usage(
            seconds,
            self.audio_tokens + other.audio_tokens,
            self.text_tokens + other.text_tokens,
            self.output_tokens + other.output_tokens,
        )


NO_USAGE = Usage()


@dataclass(frozen=True)
class EngineResult:
    """What an engine returns for one chunk, with times relative to the chunk."""

    text: str
    segments: tuple[Segment, ...]
    language: str | None = None
    usage: Usage | None = None  # as the server reported it, when it did


@dataclass(frozen=True)
class SpeakerTurn:
    """One stretch of one voice, as diarization found it: `speaker` is the label shown ("Speaker 1",
    numbered by first appearance, or a registered voice's name)."""

    start_s: float
    end_s: float
    speaker: str


@dataclass(frozen=True)
class Transcript:
    """The stitched result for one recording."""

    segments: tuple[Segment, ...]
    language: str | None
    duration_s: float
    engine: str
    model: str
    task: Task
    # Detected speech that no text covers, even after asking again: never dropped silently.
    gaps: tuple[Span, ...] = ()
    # Seconds ffmpeg could decode, set only when far fewer than `duration_s` declares (truncated file).
    decoded_s: float | None = None
    # A translation: each segment is one subtitle cue of the source, keeping its times exactly.
    cued: bool = False
    # Who spoke when (the turns the labels came from), when speaker labels were made.
    speakers: tuple[SpeakerTurn, ...] = ()
    # Why labels that were asked for are missing (a corrupt model file, too little speech).
    unlabelled: str | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a reader of this transcript should know: it is done, but not all of it may be there."""
        notes = []
        if self.decoded_s is not None:
            notes.append(f"decoded {self.decoded_s:.1f} s of {self.duration_s:.1f} s (truncated or damaged?)")
        if self.gaps:
            notes.append(f"{len(self.gaps)} stretch(es) of speech without text")
        if self.unlabelled is not None:
            notes.append(f"no speaker labels: {self.unlabelled}")
        return tuple(notes)


@dataclass(frozen=True)
class CostLine:
    """One file's cost row: transcription and translation apart, priced from the usage the servers
    reported (audio seconds or tokens), and their sum in `usd`. A price that is not known (a compatible
    server's own transcription model, a chat model without `[models."NAME"]`) makes its amounts None,
    and the sum with them: shown as unknown (an empty cell), never guessed as zero."""

    file: str
    audio_s: float
    billed_min: float
    engine: str
    model: str
    usd_per_min: float | None
    usd: float | None
    # For local runs `transcribe_usd` is 0 and this says what the API would have cost for the same minutes.
    api_equivalent_usd: float | None = 0.0
    task: Task = Task.TRANSCRIBE
    transcribe_usd: float | None = 0.0
    transcribe_tokens: int = 0  # token-billed transcription models: input (audio and text) + output
    translate_model: str = ""
    translate_to: str = ""
    translate_input_tokens: int = 0
    translate_output_tokens: int = 0
    translate_usd: float | None = 0.0
    # A file whose outputs came from another name's stored transcript (the same content): that
    # recording, and nothing was sent for this one. Its row costs $0, so every file has one.
    same_as: str = ""


@dataclass(frozen=True)
class FileResult:
    """The outcome of one input file in a run."""

    source: Path
    outputs: tuple[Path, ...] = ()
    cost: CostLine | None = None
    transcript: Transcript | None = None  # as written: with speaker labels, when they were made
    heard: Transcript | None = None  # as transcribed, before labels: what the store keeps for the job
    translation: Transcript | None = None  # a chat model's translation of `transcript`, when one was made
    error: str | None = None
    causes: tuple[str, ...] = ()  # what lies under `error`, shown with --verbose
    chunks_total: int = 0
    chunks_uploaded: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RunSummary:
    """Everything the CLI needs to render the end of a run and choose the exit code."""

    results: tuple[FileResult, ...] = ()
    stopped_reason: str | None = None  # set when budget, quota or auth stopped the run early
    engine: str = ""
    model: str = ""

    @property
    def failed(self) -> tuple[FileResult, ...]:
        return tuple(r for r in self.results if not r.ok)
