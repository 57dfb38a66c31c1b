"""Speaker labels for a whole recording: segment windows, embed each local speaker, cluster, rebuild.

The pyannote recipe, on onnxruntime and numpy: every window's local speakers are embedded from their
clean speech, all embeddings of the recording are clustered together (so a voice keeps its label after
an absence of any length), each window's local speakers are matched to the clusters one-to-one, and
the windows' frames are laid back onto the recording's timeline, each frame given as many speakers
as the segmentation heard there. Audio is decoded as it goes and only embeddings and frame labels are
kept, so memory does not grow with the recording's audio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import Stopped
from ..models import SpeakerTurn
from .cluster import Bounds, assign, centroids, cluster
from .embed import Excerpt, embed, excerpts, runs
from .fbank import SAMPLE_RATE_HZ
from .recheck import recheck
from .runtime import SegmentationSpec, SpeakerError, segmentation_spec
from .segment import Window, segmented

STEP_S = 5.0  # windows of 10 s, half overlapping
EXCERPT_MIN_S, EXCERPT_MAX_S = 0.5, 3.0
CLUSTER_MIN_S = 1.5
PENDING = 16  # excerpts held before they are embedded
MERGE_GAP_S = 0.2  # one speaker's turns closer than this are one turn
VOICEPRINT_S = 60.0


@dataclass(frozen=True)
class SpeakerOptions:
    """How many speakers to look for (pyannote's names), and where the models are (None: bundled)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    models: str | None = None

    def bounds(self) -> Bounds:
        return Bounds(self.num_speakers, self.min_speakers or 1, self.max_speakers)


@dataclass(frozen=True)
class Diarization:
    """Who spoke when, and each label's voice (a unit embedding), to put names to voices."""

    turns: tuple[SpeakerTurn, ...] = ()
    voiceprints: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass
class _Heard:
    """What the windows left: their places, local activity, and their local speakers' embeddings."""

    starts: list[int] = field(default_factory=list)
    activity: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    confidence: list[npt.NDArray[np.float16]] = field(default_factory=list)
    owners: list[tuple[int, int]] = field(default_factory=list)  # (window, local) of each embedding
    embeddings: list[npt.NDArray[np.float32]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # of speech behind each embedding


def diarize(
    path: Path, options: SpeakerOptions, *, ffmpeg: str, stop: threading.Event | None = None
) -> Diarization:
    """The recording's speaker turns. Raises SpeakerError (models), DecodeError (audio), Stopped when
    `stop` is set (checked between windows)."""
    spec = segmentation_spec()
    stop = stop or threading.Event()
    heard = _listen(path, ffmpeg, spec, options.models, stop)
    if not heard.embeddings:
        return Diarization()
    embeddings = np.concatenate(heard.embeddings)
    labels, voices = _voices(embeddings, np.array(heard.seconds), options.bounds())
    mapping = _match_windows(heard, embeddings, labels, voices)
    turns = recheck(path, ffmpeg, _rebuild(heard, mapping, len(voices), spec), voices, options.models, stop)
    return _named_in_order(_merged(sorted(turns)), voices)


def _voices(
    embeddings: npt.NDArray[np.float32], seconds: npt.NDArray[np.float64], bounds: Bounds
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each embedding's voice, and each voice's centroid. The voices are found among the embeddings of
    CLUSTER_MIN_S of speech or more: shorter excerpts give embeddings that stray enough to pass for
    voices of their own; they join the voice they are nearest."""
    long = seconds >= CLUSTER_MIN_S
    if long.sum() < 2:
        long[:] = True
    found = cluster(embeddings[long], bounds)
    voices = centroids(embeddings[long], found)
    labels = np.argmax(embeddings @ voices.T, axis=1)
    labels[long] = found
    return labels, voices


def _listen(
    path: Path, ffmpeg: str, spec: SegmentationSpec, models: str | None, stop: threading.Event
) -> _Heard:
    heard = _Heard()
    pending: list[Excerpt] = []

    def flush() -> None:
        if pending:
            heard.embeddings.append(embed([e.samples for e in pending], models))
            heard.owners.extend((e.window, e.local) for e in pending)
            heard.seconds.extend(len(e.samples) / SAMPLE_RATE_HZ for e in pending)
            pending.clear()

    frame = spec.frame_step_s * SAMPLE_RATE_HZ
    owned_until = 0  # sample where the last window's own stretch ended

    def take(index: int, window: Window, last: bool) -> int:
        """Embed the speech of the stretch `window` owns: from where the window before's ended to
        three quarters in (the last window: to its end). Windows overlap, and each second of speech is
        embedded once, from the window that hears it nearest its middle."""
        end = window.start_sample + (len(window.samples) if last else len(window.samples) * 3 // 4)
        owned = slice(
            max(0, round((owned_until - window.start_sample) / frame)),
            round((end - window.start_sample) / frame),
        )
        pending.extend(excerpts(index, window, spec, EXCERPT_MIN_S, EXCERPT_MAX_S, owned))
        if len(pending) >= PENDING:
            flush()
        return end

    step = int(STEP_S * SAMPLE_RATE_HZ)
    previous: tuple[int, Window] | None = None
    for index, window in enumerate(segmented(path, ffmpeg, spec, step, models)):
        if stop.is_set():
            raise Stopped(f"{path}: stopped while labelling speakers")
        heard.starts.append(window.start_sample)
        heard.activity.append(window.activity)
        heard.confidence.append(window.confidence)
        if previous is not None:
            owned_until = take(*previous, last=False)
        previous = (index, window)
    if previous is not None:
        take(*previous, last=True)
    flush()
    return heard


def _match_windows(
    heard: _Heard,
    embeddings: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64],
    voices: npt.NDArray[np.float32],
) -> dict[tuple[int, int], int]:
    """Each embedded local speaker's voice: its cluster's, unless two local speakers of one window fell
    in one cluster; then that window's speakers go to the voices they are most alike, one each."""
    by_window: dict[int, list[int]] = {}
    for row, (window, _) in enumerate(heard.owners):
        by_window.setdefault(window, []).append(row)
    mapping = {}
    for rows in by_window.values():
        if len(set(labels[rows].tolist())) == len(rows):
            pairs = {r: int(labels[row]) for r, row in enumerate(rows)}
        else:
            pairs = assign(embeddings[rows] @ voices.T)
        for r, c in pairs.items():
            mapping[heard.owners[rows[r]]] = c
    return mapping


def _frames(heard: _Heard, spec: SegmentationSpec) -> Iterator[tuple[int, int, npt.NDArray[np.uint8]]]:
    for index, (start, activity) in enumerate(zip(heard.starts, heard.activity, strict=True)):
        yield index, round(start / SAMPLE_RATE_HZ / spec.frame_step_s), activity


def _rebuild(
    heard: _Heard, mapping: dict[tuple[int, int], int], voices: int, spec: SegmentationSpec
) -> list[tuple[float, float, int]]:
    """(start_s, end_s, voice) turns: each frame gets the voices the windows covering it are surest of,
    as many as the segmentation counted there."""
    total = max(offset for _, offset, _ in _frames(heard, spec)) + spec.frames
    score = np.zeros((total, voices), dtype=np.float32)
    cover = np.zeros(total, dtype=np.float32)
    count = np.zeros(total, dtype=np.float32)
    # A window hears its middle best: frames near its edges have less context either side.
    weight = (np.hanning(spec.frames + 2)[1:-1]).astype(np.float32)
    for index, offset, activity in _frames(heard, spec):
        span = slice(offset, offset + len(activity))
        cover[span] += weight
        count[span] += activity.sum(axis=1) * weight
        for local in range(activity.shape[1]):
            voice = mapping.get((index, local))
            if voice is not None:
                score[span, voice] += heard.confidence[index][:, local] * weight
    speakers = np.minimum(np.rint(count / np.maximum(cover, 1e-6)), 2).astype(np.int64)
    rank = np.argsort(-score, axis=1)
    chosen = np.zeros_like(score, dtype=bool)
    for k in range(min(2, voices)):
        rows = np.flatnonzero(speakers > k)
        best = rank[rows, k]
        chosen[rows, best] = score[rows, best] > 0
    turns = []
    half = spec.frame_step_s / 2
    centre = spec.frame_duration_s / 2
    for voice in range(voices):
        for first, last in runs(chosen[:, voice]):
            start = first * spec.frame_step_s + centre - half
            turns.append((max(0.0, start), (last - 1) * spec.frame_step_s + centre + half, voice))
    return _merged(sorted(turns))


def _merged(turns: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    last_of: dict[int, int] = {}
    out: list[tuple[float, float, int]] = []
    for start, end, voice in turns:
        i = last_of.get(voice)
        if i is not None and start - out[i][1] < MERGE_GAP_S:
            out[i] = (out[i][0], max(end, out[i][1]), voice)
            continue
        last_of[voice] = len(out)
        out.append((start, end, voice))
    return sorted(out)


def _named_in_order(turns: list[tuple[float, float, int]], voices: npt.NDArray[np.float32]) -> Diarization:
    """Labels "Speaker 1", "Speaker 2"… in the order the voices are first heard."""
    names: dict[int, str] = {}
    for _, _, voice in turns:
        names.setdefault(voice, f"Speaker {len(names) + 1}")
    return Diarization(
        tuple(SpeakerTurn(round(a, 3), round(b, 3), names[v]) for a, b, v in turns),
        {names[v]: tuple(float(x) for x in voices[v]) for v in names},
    )


def voiceprint(
    path: Path, *, ffmpeg: str, models: str | None = None, min_speech_s: float = 2.0
) -> tuple[float, ...]:
    """One voice's embedding from a clip of that person alone: the mean of its excerpts' embeddings
    (from its first minute of clear speech: more says no more). Raises SpeakerError when the clip has
    less than `min_speech_s` of clear speech."""
    spec = segmentation_spec()
    step = spec.window_samples
    found: list[Excerpt] = []
    for index, window in enumerate(segmented(path, ffmpeg, spec, step, models)):
        found += excerpts(index, window, spec, EXCERPT_MIN_S, EXCERPT_MAX_S)
        if sum(len(e.samples) for e in found) >= VOICEPRINT_S * SAMPLE_RATE_HZ:
            break
    speech_s = sum(len(e.samples) for e in found) / SAMPLE_RATE_HZ
    if speech_s < min_speech_s:
        raise SpeakerError(
            f"{path}: too little speech for a voice ({speech_s:.1f} s; at least {min_speech_s:.0f} s)"
        )
    mean = embed([e.samples for e in found], models).mean(axis=0)
    return tuple(float(x) for x in mean / max(float(np.linalg.norm(mean)), 1e-12))
