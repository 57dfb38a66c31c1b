"""One recording from audio to written outputs: probe → reserve → chunks → engine calls → stitch →
[translate] → write.

Every run is jobs (`jobs.py`), and the job runner hands each job's recording to `Pipeline.process_file`,
so one-off runs, the watcher and workers behave alike. Library code never prints: progress goes to an
`on_event` callback that the CLI renders.

Concurrency: the runner's workers take `concurrency` files at once, and at most `concurrency` engine
requests are in flight in all. Each file's chunks are decoded, cut and encoded in a thread of their own,
ahead of its requests (`ahead`), so a request never waits on preparation.
By default no earlier text is carried (measured: a model given the previous chunk's words as its prompt
continues them and skips new speech), so a server is sent a file's chunks in parallel, each about
`parallel_chunk_s` long; with `condition_on_previous = true` they go one after another, each prompted
with the previous one's tail. A recording's language is detected once, on its first chunk, and given to
the rest (which wait for it).

Nothing spoken is silently dropped: every answer is checked against the speech detected in its chunk
(`_checked_result`), speech left without text is asked about again, and what stays without text is
reported as the transcript's `gaps`.

Translating with a chat model (`translate_to`) is a stage after the transcript: the source's subtitle
cues are translated (`translate.py`) and written as `<stem>.<lang>.<ext>` beside the source-language
outputs, each translated cue at its source cue's times. A transcript already in the store (the
recording was transcribed before) is translated without uploading anything, and a translation already
in the store is not paid for again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from . import audio, cost, speech, stitch, writers
from .catalog import ModelInfo, api_equivalent_usd_per_min
from .config import Settings
from .cues import Cue, build_cues
from .engines.base import Engine
from .errors import (
    AudioError,
    EngineError,
    FatalEngineError,
    RequestTooLarge,
    RetriesExhausted,
    RetryableEngineError,
    Stopped,
    StoreError,
    UnreadableAnswer,
)
from .inputs import namesakes
from .models import (
    NO_USAGE,
    Chunk,
    CostLine,
    EngineResult,
    FileResult,
    Segment,
    Span,
    Spend,
    Task,
    Transcript,
    Usage,
)
from .policy import Budget, RetryPolicy
from .store import JobStore, ResultStore
from .translate import BadReply, Reply, Translator

COSTS_CSV = "costs.csv"


def chunk_params(
    s: Settings, info: ModelInfo, *, max_bytes: int | None, suffix: str = ".mp3", parallel: bool = True
) -> audio.ChunkParams:
    """How a recording is cut for `info`'s model: the one rule, for a run and for its estimate.

    Chunks a server answers side by side (`parallel`, and no context carried from one to the next) aim
    at `parallel_chunk_s`, so a long recording's requests share the `concurrency` slots evenly; the
    length does not depend on `concurrency`, so a run resumed with another `-j` finds its chunks.
    """
    target = s.chunk_target_s
    if parallel and not s.condition_on_previous:
        target = min(target, s.parallel_chunk_s)
    longest = target * 1.5
    if not info.timestamps:
        # Untimed text is laid over the chunk's utterances, so chunks stay short: never longer than
        # `utterance_max_s`, which also keeps each inside one 30-s window of a Whisper server.
        longest = min(s.utterance_max_s, target)
        target = longest * 2 / 3
    return audio.ChunkParams(
        target_s=min(target, info.max_duration_s * 0.8),
        max_s=min(longest, info.max_duration_s),
        min_silence_s=s.min_silence_s,
        skip_silence_s=s.skip_silence_s,
        vad_threshold=s.vad_threshold,
        energy_dbfs=s.silence_threshold_dbfs,
        max_bytes=max_bytes,
        suffix=suffix,
    )


def upload_forecast_s(path: Path, params: audio.ChunkParams, *, ffmpeg: str) -> float:
    """Seconds a run would upload for `path`: the same decoding, speech detection and cuts, nothing
    encoded or sent (far faster than real time)."""
    chunker = audio.Chunker(path, ffmpeg=ffmpeg, workdir=Path(tempfile.gettempdir()), params=params)
    return sum(span.duration_s for span in chunker.plan())


def new_run_id() -> str:
    """A run's name in the ledger: when it started, and a random tail."""
    return time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class FileStarted:
    path: Path
    duration_s: float


@dataclass(frozen=True)
class ChunkDone:
    path: Path
    index: int
    end_s: float  # how far into the recording this chunk reaches
    duration_s: float
    uploaded: bool  # False when the result came from the chunk cache


@dataclass(frozen=True)
class FileFinished:
    result: FileResult


@dataclass(frozen=True)
class Notice:
    message: str


Event = FileStarted | ChunkDone | FileFinished | Notice


@dataclass(frozen=True)
class ChunkOutcome:
    """One chunk's checked result, its segments on the recording's timeline, and what it cost."""

    result: EngineResult
    placed: tuple[Segment, ...]
    uploaded: bool  # False when the result came from the chunk cache
    gaps: tuple[Span, ...]  # speech that stayed without text, on the recording's timeline


@dataclass(frozen=True)
class ChunksDone:
    """Every chunk of one recording, transcribed and checked."""

    placed: tuple[tuple[Segment, ...], ...]
    chunks: tuple[Chunk, ...]
    uploaded: int
    language: str | None
    gaps: tuple[Span, ...]
    decoded_s: float  # audio ffmpeg could decode


_T = TypeVar("_T")
GAP_PAD_S = 0.5  # a stretch asked about alone keeps this much audio either side of the lost speech


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}"


def gaps_message(path: Path, gaps: tuple[Span, ...]) -> str:
    """One line naming the times of speech that no text covers, for the log and the terminal."""
    shown = ", ".join(f"{_clock(g.start_s)}-{_clock(g.end_s)}" for g in gaps[:5])
    more = f" and {len(gaps) - 5} more" if len(gaps) > 5 else ""
    return f"{path}: warning: speech without text after asking again, {len(gaps)}x: {shown}{more}"


def _short(decoded_s: float, declared_s: float) -> bool:
    """Whether a recording decoded to much less than its header declares (truncated, damaged)."""
    return decoded_s < 0.9 * declared_s and declared_s - decoded_s > 0.5


def _total_s(spans: Iterable[Span]) -> float:
    return sum(s.duration_s for s in spans)


def _inside(gap: Span, start_s: float, end_s: float) -> bool:
    return gap.start_s <= (start_s + end_s) / 2 <= gap.end_s


def _split_around(seg: Segment, gap: Span) -> list[Segment]:
    """A segment whose words skip `gap` becomes the part before it and the part after it."""
    if not seg.words or not (seg.start_s < gap.start_s and seg.end_s > gap.end_s):
        return [seg]
    before = tuple(w for w in seg.words if (w.start_s + w.end_s) / 2 < gap.start_s)
    after = tuple(w for w in seg.words if (w.start_s + w.end_s) / 2 > gap.end_s)
    if not before or not after or len(before) + len(after) != len(seg.words):
        return [seg]
    return [
        dataclasses.replace(seg, end_s=before[-1].end_s, text=stitch.words_text(before), words=before),
        dataclasses.replace(seg, start_s=after[0].start_s, text=stitch.words_text(after), words=after),
    ]


def _fill(result: EngineResult, answer: EngineResult, offset_s: float, gap: Span) -> EngineResult:
    """`result` with what `answer` (about a stretch starting at `offset_s`, a little wider than `gap`)
    heard inside `gap`, in time order. Only words whose middle lies in the gap are taken, so the
    neighbours' words that the stretch's edges reach are not said twice."""
    found: list[Segment] = []
    for seg in answer.segments:
        if seg.words:
            words = tuple(w.shifted(offset_s) for w in seg.words)
            heard = stitch.with_words(seg, [w for w in words if _inside(gap, w.start_s, w.end_s)])
            if heard is not None:
                found.append(heard)
        elif seg.text.strip() and _inside(gap, offset_s + seg.start_s, offset_s + seg.end_s):
            found.append(seg.shifted(offset_s))
    if not found:
        return result
    kept = [part for seg in result.segments for part in _split_around(seg, gap)]
    segments = tuple(sorted((*kept, *found), key=lambda seg: seg.start_s))
    return dataclasses.replace(
        result, segments=segments, text=" ".join(seg.text.strip() for seg in segments if seg.text.strip())
    )


def _joined(answers: Sequence[EngineResult], pieces: Sequence[Chunk]) -> EngineResult:
    """The answers for consecutive pieces of one chunk (`offset_s` relative to it) as one answer."""
    usages = [a.usage for a in answers if a.usage is not None]
    return EngineResult(
        text=" ".join(a.text.strip() for a in answers if a.text.strip()),
        segments=tuple(
            seg.shifted(piece.offset_s)
            for a, piece in zip(answers, pieces, strict=True)
            for seg in a.segments
        ),
        language=next((a.language for a in answers if a.language), None),
        usage=sum(usages[1:], usages[0]) if usages else None,
    )


@dataclass
class _Bill:
    """What one recording has cost in this run so far: requests answered and requests in flight."""

    path: Path
    task: Task
    audio_s: float
    job_key: str
    answered_s: float = 0.0
    usage: Usage = NO_USAGE  # transcription tokens reported (token-billed models)
    translate_usage: Usage = NO_USAGE  # chat tokens reported
    in_flight: dict[object, float] = field(default_factory=dict)  # request -> audio seconds
    row: int | None = None  # its ledger row, once written
    abandoned: bool = False


@dataclass
class _Ticket:
    """One transcription request: what its answer said was billed."""

    usage: Usage | None = None


def ahead(
    items: Iterator[_T], n: int, gate: AbstractContextManager[object] | None = None
) -> Generator[_T, None, None]:
    """`items`, produced in a thread of their own up to `n` ahead of the consumer. An error raised while
    producing is raised to the consumer at that point; a consumer that stops early closes `items`
    (a generator's `finally` runs) and what was produced but not taken is dropped. With a `gate`,
    each item is produced inside it (a semaphore shared by several producers bounds how many work at
    once; waiting to hand an item over is outside it).

    Written here because neither the standard library nor a dependency reads a generator ahead in a
    bounded queue and hands its errors and its closing across the thread."""
    slots: queue.Queue[tuple[_T | None, BaseException | None, bool]] = queue.Queue(maxsize=n)
    quit = threading.Event()
    end = object()

    def put(entry: tuple[_T | None, BaseException | None, bool]) -> bool:
        while not quit.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            while True:
                with gate or nullcontext():
                    item = next(items, end)
                if item is end:
                    break
                if not put((cast(_T, item), None, False)):
                    return
            put((None, None, True))
        except BaseException as e:  # handed over to the consumer, raised there
            put((None, e, True))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="wb-prepare", daemon=True)
    worker.start()
    try:
        while True:
            item, error, last = slots.get()
            if error is not None:
                raise error
            if last:
                return
            yield cast(_T, item)
    finally:
        quit.set()
        worker.join()


def files_preparing() -> int:
    """Files whose chunks are prepared at once: each keeps about two cores busy (speech detection,
    decoder and encoders), and the first file's chunks are better ready early than all files' first
    chunks late: with more files than cores, the first requests wait on the fewest."""
    return max(1, audio.usable_cores() // 2)


class _Turns:
    """Files' turns to send requests: at most `n` files at once, each from its first request until its
    outputs are written. A file waiting with a chunk ready takes a free turn unless as many files as
    there are free turns wait before it in the queue: at `-j 1` files go strictly in queue order, and
    at `-j N` the first N files in progress go as each is ready, as when only N files were started.

    Written here because a semaphore serves whichever waiter wakes first."""

    def __init__(self, n: int) -> None:
        self._cond = threading.Condition()
        self._free = n
        self._waiting: set[int] = set()  # places in the queue of files in line for a turn

    @contextmanager
    def queue(self, order: int) -> Iterator[Callable[[threading.Event], None]]:
        """A file's place in line: yields `take(stop)`, which waits for its turn. Leaving gives up the
        place, or the turn."""
        took = False

        def take(stop: threading.Event) -> None:
            nonlocal took
            with self._cond:
                while self._free == 0 or sum(o < order for o in self._waiting) >= self._free:
                    if stop.is_set():
                        raise Stopped("the run was stopped")
                    self._cond.wait(0.2)
                self._waiting.discard(order)
                self._free -= 1
                took = True

        with self._cond:
            self._waiting.add(order)
        try:
            yield take
        finally:
            with self._cond:
                if took:
                    self._free += 1
                else:
                    self._waiting.discard(order)
                self._cond.notify_all()


class ChunkCache:
    """A job's checked chunk results and every answer they were made from, kept in the store the moment
    each arrives (before anything else can fail, re-asks included), so a resumed job sends only what is
    missing and no answer is paid for twice."""

    def __init__(self, store: ResultStore | None, key: str) -> None:
        self.store, self.key = store, key
        self.sent: set[int] = set()  # chunks a request was sent for in this run

    def get(self, chunk: Chunk) -> EngineResult | None:
        if self.store is None:
            return None
        return self.store.chunk_result(self.key, chunk.index, chunk.offset_s, chunk.duration_s)

    def put(self, chunk: Chunk, result: EngineResult) -> None:
        if self.store is not None:
            self.store.save_chunk_result(self.key, chunk.index, chunk.offset_s, chunk.duration_s, result)

    @staticmethod
    def _request(chunk: Chunk, name: str) -> str:
        return f"{chunk.index}@{chunk.offset_s:.3f}+{chunk.duration_s:.3f} {name}"

    def answer(self, chunk: Chunk, name: str) -> EngineResult | None:
        """The answer to request `name` about `chunk` ("first", "again", a stretch), if one arrived."""
        if self.store is None:
            return None
        return self.store.answer(self.key, self._request(chunk, name))

    def save_answer(self, chunk: Chunk, name: str, result: EngineResult) -> None:
        self.sent.add(chunk.index)
        if self.store is not None:
            self.store.save_answer(self.key, self._request(chunk, name), result)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        ffmpeg: str,
        store: JobStore | None = None,
        on_event: Callable[[Event], None] = lambda e: None,
        run_id: str | None = None,
        stop: threading.Event | None = None,
        budget: Budget | None = None,
        policy: RetryPolicy | None = None,
        translator: Translator | None = None,
        halted: Callable[[], bool] = lambda: False,
        on_fatal: Callable[[FatalEngineError | StoreError], None] = lambda e: None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.translator = translator  # set: translate the transcript into settings.translate_to
        self.ffmpeg = ffmpeg
        self.store = store
        self.on_event = on_event
        self.run_id = run_id or new_run_id()
        self.stop = stop or threading.Event()
        self.budget = budget
        self.policy = policy or settings.retry_policy()
        # A fatal answer (key, quota, model) is told at once (`on_fatal`), and no request starts while
        # `halted` says so: the files in progress would only be refused the same way. So is a store
        # that cannot keep an answer: every answer after it would be paid for and lost.
        self.halted, self.on_fatal = halted, on_fatal
        self._sent: set[str] = set()  # jobs with a request sent (`sent`)
        self._requests = threading.BoundedSemaphore(settings.concurrency)
        # Files sending requests at once. The runner may have more files in progress (their chunks
        # prepared while every slot is busy: `JobRunner.files_at_once`); they send in turn, once their
        # first chunk is ready, so files still finish one after another rather than all late together.
        self._turns = _Turns(settings.concurrency)
        self._preparing = threading.Semaphore(files_preparing())
        self._chunk_pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="wb-chunk")
        self.style = settings.cue_style
        self._formats = writers.parse_formats(settings.format)
        self._bill_lock = threading.Lock()
        self._bills: dict[Path, _Bill] = {}  # files in progress
        # The language each recording in progress was heard in: detected once, on the first chunk
        # answered, then given to its later requests (as Whisper does for a whole file).
        self._heard: dict[Path, str] = {}
        self._plan_lock = threading.Lock()
        self._bases: dict[Path, Path] = {}  # each recording's output path without its format
        self._clashes_told: set[frozenset[Path]] = set()

    # ---- where outputs go --------------------------------------------------------------------------

    def plan_outputs(self, sources: Sequence[Path], neighbours: Sequence[Path] = ()) -> None:
        """Fix where these recordings' outputs go before any work, so none overwrites another's; each
        group of recordings that had to be named apart is said once."""
        around = [n for source in sources for n in namesakes(source)]
        owners: list[Path] = []  # recordings whose outputs are where these would go
        while True:
            plan = writers.plan_outputs(sources, self.settings.out_dir, [*neighbours, *around, *owners])
            fresh_owners = [o for o in self._owners(plan.bases) if o not in owners]
            if not fresh_owners:
                break
            owners += fresh_owners
        with self._plan_lock:
            self._bases.update(plan.bases)
            fresh = [c for c in plan.clashes if frozenset(c) not in self._clashes_told]
            self._clashes_told.update(frozenset(c) for c in fresh)
        folder = self.settings.out_dir
        for clash in fresh:
            named = ", ".join(
                f"{plan.bases[p].relative_to(folder.absolute()) if folder else plan.bases[p].name}.*"
                for p in clash
                if p in plan.bases
            )
            kept = "".join(f"; {p}'s stay where they were written" for p in clash if p.absolute() in owners)
            self.on_event(
                Notice(f"{', '.join(map(str, clash))} share a name: their outputs are named {named}{kept}")
            )

    def _owners(self, bases: dict[Path, Path]) -> list[Path]:
        """Other recordings whose outputs (as the store knows) lie where `bases` would put these ones':
        a later run's `talk.m4a` from another folder is named apart from them instead of overwriting
        them, or taking them for its own."""
        if self.store is None or not bases:
            return []
        wanted = {path: src.absolute() for src, base in bases.items() for path in self._all_outputs(base)}
        records = self.store.outputs(list(wanted))
        return sorted({r.source for path, r in records.items() if r.source != wanted[path]})

    def _all_outputs(self, base: Path) -> list[Path]:
        """Every format's output at `base`, English and this pipeline's translation's too: outputs there
        are another recording's even when this run asks for other formats."""
        languages = {None, "en", self.settings.translate_to if self.translator is not None else None}
        return [p for lang in languages for p in writers.output_paths(base, writers.FORMATS, lang).values()]

    def _targets(self, source: Path, task: Task) -> tuple[dict[str, Path], dict[str, Path]]:
        """The transcript's outputs and the translation's: `talk.srt` and `talk.de.srt`. Whisper's own
        translation (task translate) is English text to begin with: `talk.en.srt` only."""
        with self._plan_lock:
            base = self._bases.get(source)
        if base is None:
            self.plan_outputs([source])
            base = self._bases[source]
        if task is Task.TRANSLATE:
            return writers.output_paths(base, self._formats, "en"), {}
        translated = {}
        if self.translator is not None:
            translated = writers.output_paths(base, self._formats, self.settings.translate_to)
        return writers.output_paths(base, self._formats), translated

    def output_paths(self, source: Path, task: Task) -> dict[Path, str]:
        """Every output of `source`, and its format."""
        own, translated = self._targets(source, task)
        return {path: fmt for paths in (own, translated) for fmt, path in paths.items()}

    def check_writable(self, sources: Sequence[Path], task: Task) -> None:
        """Raises UnwritableOutput, before anything is paid for, when an output folder cannot be written."""
        for folder in sorted({next(iter(self.output_paths(f, task))).parent for f in sources}):
            writers.check_writable(folder)

    def check_names(self, source: Path, task: Task) -> None:
        """Raises OutputError, before anything is paid for, when an output's name would be too long."""
        writers.check_names(source, self.output_paths(source, task))

    def up_to_date(self, source: Path, task: Task, key: str) -> bool:
        """Every output exists and was written from job `key` (this recording's content, with these
        options): a re-run has nothing to do. Modification times cannot tell: another recording's
        outputs, or this one's from before it changed, may well be newer than it."""
        paths = list(self.output_paths(source, task))
        if self.store is None or not all(p.exists() for p in paths):
            return False
        records = self.store.outputs(paths)
        return all(p in records and records[p].job_key == key for p in paths)

    def _write(
        self,
        source: Path,
        task: Task,
        key: str,
        transcript: Transcript,
        translated: Transcript | None,
        line: CostLine | None,
    ) -> tuple[Path, ...]:
        """Every output of `source`, translation included, written all or none, and recorded as job
        `key`'s."""
        own, others = self._targets(source, task)
        texts = writers.render_outputs(transcript, own, self.style, line)
        if translated is not None:
            texts.update(writers.render_outputs(translated, others, self.style, line))
        outputs = writers.write_files(texts)
        if self.store is not None:
            self.store.record_outputs(outputs, source.absolute(), key)
        return outputs

    def write_stored(
        self, source: Path, task: Task, key: str, transcript: Transcript, *, same_as: Path
    ) -> FileResult | None:
        """Outputs for `source` from what is in the store (the transcript of `same_as`, the recording
        with its content): nothing is sent or billed, and its cost row, at $0, says which recording
        it matched. None, and nothing written, when the translation this pipeline makes is not stored
        yet."""
        translated = None
        if self.translator is not None:
            cues, _, texts = self._stored_translation(key, transcript)
            if texts is None:
                return None
            translated = self._translated(transcript, cues, texts)
        line = cost.cost_line(
            str(source),
            audio_s=transcript.duration_s,
            billed_s=0.0,
            engine=self.engine.name,
            info=self.engine.info,
            task=task,
            api_usd_per_min=api_equivalent_usd_per_min(),
        )
        line = dataclasses.replace(line, same_as=str(same_as))
        outputs = self._write(source, task, key, transcript, translated, line)
        self._append_costs(outputs, line)
        if self.store is not None:
            self.store.record_cost(self.run_id, line, Spend.DONE, job_key=key)
        return FileResult(source=source, outputs=outputs, cost=line, transcript=transcript)

    def _append_costs(self, outputs: tuple[Path, ...], line: CostLine) -> None:
        cost.append_costs_csv((self.settings.out_dir or outputs[0].parent) / COSTS_CSV, [line])

    # ---- one file ----------------------------------------------------------------------------------

    def process_file(
        self,
        path: Path,
        task: Task,
        key: str,
        *,
        order: int = 0,
        unchanged: Callable[[], object] = lambda: None,
    ) -> FileResult:
        """Transcribe or translate job `key`'s recording and write its outputs. Raises WhisperbatchError.
        `order` is the job's place in the queue, for its turn to send (`_Turns`); `unchanged` raises
        SourceChanged when the recording is no longer what was transcribed, before anything is written.

        The stages: probe, reserve the budget, transcribe the chunks (each stored as it arrives), stitch
        them into a transcript, write the outputs, and record the spend."""
        with self._turns.queue(order) as take_turn:
            return self._process(path, task, key, take_turn, unchanged)

    def _process(
        self,
        path: Path,
        task: Task,
        key: str,
        take_turn: Callable[[threading.Event], None],
        unchanged: Callable[[], object],
    ) -> FileResult:
        info = audio.probe(path, self.ffmpeg)
        if self.budget is not None:
            self.budget.reserve(key, path, self.worst_case_usd(info.duration_s))
        bill = self._open_bill(path, task, info.duration_s, key)
        state = Spend.FAILED
        chunks_total = uploaded = 0
        try:
            self.on_event(FileStarted(path, info.duration_s))
            transcript = self._stored_transcript(key)
            if transcript is None:
                with tempfile.TemporaryDirectory(prefix="whisperbatch-") as tmp:
                    done = self._transcribe_chunks(
                        path, info.duration_s, task, Path(tmp), ChunkCache(self.store, key), take_turn
                    )
                transcript = self._transcript(path, task, info.duration_s, done)
                chunks_total, uploaded = len(done.chunks), done.uploaded
            translated = None if self.translator is None else self._translation(path, key, transcript, bill)
            line = self._cost_line(bill)
            if self.stop.is_set():
                raise Stopped(f"{path}: stopped before writing outputs")
            unchanged()
            outputs = self._write(path, task, key, transcript, translated, line)
            state = Spend.DONE
            self._append_costs(outputs, line)
        except Stopped:
            state = Spend.UNFINISHED
            raise
        finally:
            self._heard.pop(path, None)
            self._close_bill(bill, state)
            if self.budget is not None:
                self.budget.release(key)
        return FileResult(
            source=path,
            outputs=outputs,
            cost=line,
            transcript=transcript,
            chunks_total=chunks_total,
            chunks_uploaded=uploaded,
        )

    def _stored_transcript(self, key: str) -> Transcript | None:
        """The transcript of a job done before and queued again for another translation."""
        job = None if self.store is None or self.translator is None else self.store.job(key)
        return None if job is None else job.transcript

    # ---- translation -------------------------------------------------------------------------------

    def _stored_translation(
        self, key: str, transcript: Transcript
    ) -> tuple[list[Cue], str, list[str] | None]:
        """The source's cues, the key of their translation (job, language, model and the cues themselves:
        another cue shape is another translation), and that translation's lines if the store has them."""
        assert self.translator is not None
        cues = build_cues(transcript.segments, self.style, end_s=transcript.duration_s or None)
        identity: list[object] = [key, self.settings.translate_to, self.translator.model]
        identity += [[c.start_ms, c.end_ms, " ".join(c.lines)] for c in cues]
        tkey = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        return cues, tkey, None if self.store is None else self.store.translation(tkey)

    def _translated(self, transcript: Transcript, cues: list[Cue], texts: Sequence[str]) -> Transcript:
        return dataclasses.replace(
            transcript,
            segments=tuple(
                Segment(c.start_ms / 1000, c.end_ms / 1000, text) for c, text in zip(cues, texts, strict=True)
            ),
            language=self.settings.translate_to,
            task=Task.TRANSLATE,
            cued=True,
        )

    def _translation(self, path: Path, key: str, transcript: Transcript, bill: _Bill) -> Transcript:
        """The transcript's cues in `translate_to`, from the store or from the chat model (stored)."""
        assert self.translator is not None
        cues, tkey, stored = self._stored_translation(key, transcript)
        if stored is not None:
            return self._translated(transcript, cues, stored)
        glossary = ", ".join(x for x in (self.settings.prompt, self.settings.keywords) if x) or None
        try:
            result = self.translator.translate(
                [" ".join(c.lines) for c in cues],
                source=transcript.language,
                target=self.settings.translate_to,
                glossary=glossary,
                call=lambda ask: self._chat(path, bill, ask),
                on_retry=lambda message: self.on_event(Notice(f"{path}: translation {message}")),
            )
        except BadReply as e:  # a line no reply would translate: the file fails, no cue is dropped
            raise EngineError(str(e), path=path) from e
        if self.store is not None:
            self.store.save_translation(
                tkey, key, self.settings.translate_to, self.translator.model, result.texts
            )
        return self._translated(transcript, cues, result.texts)

    def _chat(self, path: Path, bill: _Bill, ask: Callable[[], Reply]) -> Reply:
        """One chat request under the retry policy; its tokens go on the bill as soon as it is answered."""

        def request() -> Reply:
            with self._requests:
                content, usage = ask()
            with self._bill_lock:
                bill.translate_usage += usage
            self._record(bill, Spend.RUNNING)
            return content, usage

        return self._with_retries(path, None, request)

    def _transcript(self, path: Path, task: Task, duration_s: float, done: ChunksDone) -> Transcript:
        """The chunks stitched into one timeline, with what could not be heard said aloud."""
        transcript = Transcript(
            segments=stitch.stitch(done.placed),
            language="en" if task is Task.TRANSLATE else (done.language or self.settings.language),
            duration_s=duration_s,
            engine=self.engine.name,
            model=self.engine.model,
            task=task,
            gaps=done.gaps,
            decoded_s=done.decoded_s if _short(done.decoded_s, duration_s) else None,
        )
        if done.gaps:
            self.on_event(Notice(gaps_message(path, done.gaps)))
        elif not transcript.segments:  # the outputs are written all the same: the recording is done
            self.on_event(Notice(f"{path}: no speech found; its outputs are empty"))
        if transcript.decoded_s is not None:
            self.on_event(Notice(f"{path}: warning: {transcript.warnings[0]}"))
        return transcript

    # ---- what each file has cost in this run, in the ledger as it grows -----------------------------

    def _open_bill(self, path: Path, task: Task, audio_s: float, key: str) -> _Bill:
        bill = _Bill(path, task, audio_s, key)
        with self._bill_lock:
            self._bills[path] = bill
        return bill

    def _cost_line(self, bill: _Bill) -> CostLine:
        return cost.cost_line(
            str(bill.path),
            audio_s=bill.audio_s,
            billed_s=bill.answered_s,
            engine=self.engine.name,
            info=self.engine.info,
            task=bill.task,
            api_usd_per_min=api_equivalent_usd_per_min(),
            usage=bill.usage,
            translator=None if self.translator is None else self.translator.info,
            translate_to=self.settings.translate_to,
            translate_usage=bill.translate_usage,
        )

    def _record(self, bill: _Bill, state: Spend) -> CostLine:
        """Write the bill to the ledger: a file done, or anything that was sent (so `report` matches
        what the provider bills even when no output was written)."""
        line = self._cost_line(bill)
        if self.store is not None and (state is Spend.DONE or bill.answered_s > 0):
            bill.row = self.store.record_cost(self.run_id, line, state, job_key=bill.job_key, row=bill.row)
        return line

    @contextmanager
    def _billed(self, path: Path, seconds: float) -> Iterator[_Ticket]:
        """One request in flight: billed once answered (a failed request is not billed), by the usage
        its answer reports (`_Ticket`), else by the seconds sent. An answer that could not be read was
        billed all the same: it is counted by the seconds sent before it is asked again."""
        key = object()
        ticket = _Ticket()
        with self._bill_lock:
            bill = self._bills.get(path)
            if bill is not None:
                bill.in_flight[key] = seconds
        if bill is None:
            yield ticket
            return
        try:
            yield ticket
        except UnreadableAnswer:
            self._count(bill, key, seconds, NO_USAGE)
            raise
        except BaseException:
            with self._bill_lock:
                bill.in_flight.pop(key, None)
            raise
        self._count(bill, key, seconds, ticket.usage or NO_USAGE)

    def _count(self, bill: _Bill, key: object, seconds: float, usage: Usage) -> None:
        """An answered request on its file's bill, and the bill in the ledger."""
        with self._bill_lock:
            counted = bill.in_flight.pop(key, None) is not None  # not if abandoned meanwhile
            if counted:
                bill.answered_s += seconds if usage.seconds is None else usage.seconds
                bill.usage += dataclasses.replace(usage, seconds=None)
        if counted:
            self._record(bill, Spend.RUNNING)

    def _close_bill(self, bill: _Bill, state: Spend) -> CostLine:
        with self._bill_lock:
            self._bills.pop(bill.path, None)
            if bill.abandoned:  # already recorded, in-flight requests included
                return self._cost_line(bill)
        return self._record(bill, state)

    def in_flight(self) -> dict[Path, int]:
        """Files in progress and how many requests each has in flight."""
        with self._bill_lock:
            return {b.path: len(b.in_flight) for b in self._bills.values()}

    def sent(self) -> set[str]:
        """Jobs this pipeline has sent a request for: a file only prepared is not started."""
        with self._bill_lock:
            return set(self._sent)

    def abandon(self) -> list[Path]:
        """Stop without waiting for requests in flight: each file still in progress goes to the ledger
        as unfinished with what it cost so far, the abandoned requests included (the provider bills
        them whether or not the answer is read). Returns those that sent a request."""
        self.stop.set()
        with self._bill_lock:
            bills = list(self._bills.values())
            for bill in bills:
                bill.answered_s += sum(bill.in_flight.values())
                bill.in_flight.clear()
                bill.abandoned = True
        for bill in bills:
            self._record(bill, Spend.UNFINISHED)
        return [bill.path for bill in bills if bill.job_key in self._sent]

    def _chunk_params(self) -> audio.ChunkParams:
        return chunk_params(
            self.settings,
            self.engine.info,
            max_bytes=self.engine.max_upload_bytes,
            suffix=self.engine.chunk_suffix,
            parallel=self.engine.parallel_chunks,
        )

    def _transcribe_chunks(
        self,
        path: Path,
        duration_s: float,
        task: Task,
        workdir: Path,
        cache: ChunkCache,
        take_turn: Callable[[threading.Event], None],
    ) -> ChunksDone:
        """Every chunk's outcome. Chunks are decoded, cut and encoded in a thread of their own, ahead of
        the requests: one chunk ahead when each request waits for the previous answer (context
        carried), `concurrency` ahead when they go out side by side, so a free slot never waits. The
        first request waits for the file's turn (`_Turns`)."""
        chunker = audio.Chunker(path, ffmpeg=self.ffmpeg, workdir=workdir, params=self._chunk_params())
        chunks: list[Chunk] = []
        pending: list[Future[ChunkOutcome] | ChunkOutcome] = []
        sequential = self.settings.condition_on_previous
        previous_text = ""
        # Bounds chunk files waiting on disk when chunks are sent in parallel.
        window = threading.BoundedSemaphore(self.settings.concurrency * 2)
        prepared = ahead(chunker.chunks(), 1 if sequential else self.settings.concurrency, self._preparing)
        with closing(prepared):  # an early exit stops the decoder at once
            for chunk in prepared:
                if not chunks:  # prepared ahead of this file's turn to send
                    take_turn(self.stop)
                if self.stop.is_set():
                    raise Stopped("the run was stopped")
                chunks.append(chunk)
                if sequential:
                    prompt = stitch.prompt_for(
                        self.settings.prompt, previous_text, self.engine.info.prompt_max_tokens
                    )
                    outcome = self._chunk_outcome(path, chunk, task, prompt, cache)
                    previous_text = " ".join(s.text for s in outcome.placed) or previous_text
                    pending.append(outcome)
                    end_s = chunk.offset_s + chunk.duration_s
                    self.on_event(ChunkDone(path, chunk.index, end_s, duration_s, outcome.uploaded))
                else:
                    if len(pending) == 1 and self._asks_in_first_language():
                        self._await_first(path, cast(Future[ChunkOutcome], pending[0]))
                    window.acquire()
                    fut = self._chunk_pool.submit(
                        self._chunk_outcome, path, chunk, task, self.settings.prompt, cache
                    )
                    fut.add_done_callback(self._chunk_callback(window, path, chunk, duration_s))
                    pending.append(fut)
        outcomes = [p.result() if isinstance(p, Future) else p for p in pending]
        return ChunksDone(
            placed=tuple(tuple(o.placed) for o in outcomes),
            chunks=tuple(chunks),
            uploaded=sum(1 for o in outcomes if o.uploaded),
            language=next((o.result.language for o in outcomes if o.result.language), None),
            gaps=tuple(g for o in outcomes for g in o.gaps),
            decoded_s=chunker.decoded_s,
        )

    def _asks_in_first_language(self) -> bool:
        """Whether a recording's later chunks are asked in the language its first chunk was heard in
        (`_heard`): unless the user gave one, or the model never says what it heard (json-only)."""
        info = self.engine.info
        return not self.settings.language and (info.timestamps or info.languages_param)

    def _await_first(self, path: Path, first: Future[ChunkOutcome]) -> None:
        """Hold a recording's later chunks until its first is answered: asked without the language,
        a short chunk can be heard in another one, and `-j 2` would read a recording unlike `-j 1`.
        Only this file's own thread waits; its chunks are still prepared ahead meanwhile."""
        while path not in self._heard and not first.done():
            if self.stop.is_set():
                raise Stopped("the run was stopped")
            wait([first], timeout=0.2)

    def _chunk_callback(
        self, window: threading.BoundedSemaphore, path: Path, chunk: Chunk, duration_s: float
    ) -> Callable[[Future[ChunkOutcome]], None]:
        def done(fut: Future[ChunkOutcome]) -> None:
            window.release()
            if not fut.cancelled() and isinstance(fut.exception(), StoreError):
                self.on_fatal(cast(StoreError, fut.exception()))  # before the chunks still to go are sent
            if not fut.cancelled() and fut.exception() is None:
                end_s = chunk.offset_s + chunk.duration_s
                self.on_event(ChunkDone(path, chunk.index, end_s, duration_s, fut.result().uploaded))

        return done

    def _chunk_outcome(
        self, path: Path, chunk: Chunk, task: Task, prompt: str | None, cache: ChunkCache
    ) -> ChunkOutcome:
        """One chunk's checked result: stored by an earlier run, or asked (and asked again where speech
        was lost), each answer stored as it arrives."""
        hit = cache.get(chunk)
        if hit is None:
            try:
                result = self._checked_result(path, chunk, task, prompt, cache)
            finally:
                chunk.path.unlink(missing_ok=True)  # keep at most the in-flight chunks on disk
            cache.put(chunk, result)
        else:
            chunk.path.unlink(missing_ok=True)
            result = hit
        self._hear(path, result)
        return self._outcome(chunk, result, uploaded=chunk.index in cache.sent)

    def _outcome(self, chunk: Chunk, result: EngineResult, *, uploaded: bool) -> ChunkOutcome:
        gaps = self._uncovered(chunk, result)
        return ChunkOutcome(
            result=result,
            placed=tuple(stitch.place(chunk, result)),
            uploaded=uploaded,
            gaps=tuple(Span(g.start_s + chunk.offset_s, g.end_s + chunk.offset_s) for g in gaps),
        )

    def _uncovered(self, chunk: Chunk, result: EngineResult) -> list[Span]:
        """Detected speech in the chunk that the answer's (kept) text does not cover."""
        kept = stitch.filter_segments(result.segments)
        if not self.engine.info.timestamps:  # text laid over our own utterances: only emptiness tells
            return list(chunk.speech) if not kept else []
        return speech.uncovered(chunk.speech, kept)

    def _checked_result(
        self, path: Path, chunk: Chunk, task: Task, prompt: str | None, cache: ChunkCache
    ) -> EngineResult:
        """Ask for a chunk, then make sure its text covers its speech.

        A model given earlier text as context can continue that text instead of hearing new words.
        So an answer that leaves speech uncovered, runs a segment far past the speech under it, or
        repeats the context is asked again without any (the user's own prompt is always sent). Speech
        still uncovered is then asked about alone, stretch by stretch; what stays uncovered becomes
        the transcript's `gaps`. Text its seconds cannot hold is taken out before coverage is judged
        (`stitch.filter_segments`), so the speech under it is asked about again; an untimed answer
        with more text than the chunk's speech holds is asked again whole.
        """
        where = f"{path} (chunk {chunk.index + 1})"
        carried = self.settings.condition_on_previous
        result = self._asked(path, chunk, task, prompt, cache, "first", condition=carried)
        gaps = self._uncovered(chunk, result)
        if carried and self._suspect(chunk, result, prompt, gaps):
            self.on_event(Notice(f"{where}: text may be missing; asked again without context"))
            again = self._asked(path, chunk, task, self.settings.prompt, cache, "again")
            again_gaps = self._uncovered(chunk, again)
            if _total_s(again_gaps) <= _total_s(gaps):
                result, gaps = again, again_gaps
        if not self.engine.info.timestamps:  # untimed text cannot say which stretch it missed
            gaps = []
            speech_s = _total_s(chunk.speech or (Span(0.0, chunk.duration_s),))
            if stitch.overfull(result.text, speech_s):
                self.on_event(Notice(f"{where}: more text than its speech can hold; asked again"))
                again = self._asked(path, chunk, task, self.settings.prompt, cache, "again")
                result = again if len(again.text) < len(result.text) else result
                if stitch.overfull(result.text, speech_s):  # it came back: none of it is laid over speech
                    result = dataclasses.replace(result, text="", segments=())
        for gap in gaps:
            stretch = Span(max(0.0, gap.start_s - GAP_PAD_S), min(chunk.duration_s, gap.end_s + GAP_PAD_S))
            try:
                answer = self._asked(path, chunk, task, self.settings.prompt, cache, stretch)
            except FatalEngineError:
                raise
            except (EngineError, AudioError) as e:  # the first answer stands; the gap stays reported
                self.on_event(Notice(f"{where}: could not ask again ({e})"))
                continue
            result = _fill(result, answer, stretch.start_s, gap)
        return result

    def _asked(
        self,
        path: Path,
        chunk: Chunk,
        task: Task,
        prompt: str | None,
        cache: ChunkCache,
        request: str | Span,
        *,
        condition: bool = False,
    ) -> EngineResult:
        """The answer to one request about `chunk`: the whole chunk ("first", or "again" without context),
        or a stretch of it alone. Stored by an earlier run, or asked now and stored the moment it
        arrives."""
        name = request if isinstance(request, str) else f"stretch {request.start_s:.3f}-{request.end_s:.3f}"
        stored = cache.answer(chunk, name)
        if stored is not None:
            self._hear(path, stored)
            return stored
        if isinstance(request, str):
            result = self._call_with_retries(path, chunk, task, prompt, condition=condition)
        else:
            piece = audio.cut_chunk(chunk, request, ffmpeg=self.ffmpeg)
            try:
                result = self._call_with_retries(path, piece, task, prompt)
            finally:
                piece.path.unlink(missing_ok=True)
        cache.save_answer(chunk, name, result)
        self._hear(path, result)
        return result

    def _hear(self, path: Path, result: EngineResult) -> None:
        """The language a recording is heard in: its first answer that says one, given to the rest."""
        if result.language:
            self._heard.setdefault(path, result.language)

    def _suspect(self, chunk: Chunk, result: EngineResult, prompt: str | None, gaps: list[Span]) -> bool:
        if gaps:
            return True
        kept = stitch.filter_segments(result.segments)
        if self.engine.info.timestamps and speech.overlong(chunk.speech, kept):
            return True
        carried = prompt[len(self.settings.prompt or "") :] if prompt else ""
        return stitch.repeats_context(kept, carried)

    def _call_with_retries(
        self, path: Path, chunk: Chunk, task: Task, prompt: str | None, *, condition: bool = False
    ) -> EngineResult:
        """Ask for one chunk, retrying as the run's `RetryPolicy` says. A chunk that the server refuses
        as too large (HTTP 413: a server whose cap is lower than the API's) is asked for in two halves,
        each halved again while it is refused, and their answers are joined."""

        def request() -> EngineResult:
            with self._requests, self._billed(path, chunk.duration_s) as ticket, self._waiting(path, chunk):
                result = self.engine.transcribe(
                    chunk,
                    task=task,
                    language=self.settings.language or self._heard.get(path),
                    prompt=prompt,
                    condition_on_previous_text=condition,
                )
                ticket.usage = result.usage
                return result

        try:
            return self._with_retries(path, chunk.index, request)
        except RequestTooLarge as e:
            try:
                halves = audio.halve(chunk, ffmpeg=self.ffmpeg)
            except AudioError as cut:
                raise EngineError(f"{e}, and it cannot be cut smaller ({cut.reason})") from e
            self.on_event(Notice(f"{e}; sending it in two halves"))
            try:
                answers = [
                    self._call_with_retries(path, h, task, prompt, condition=condition) for h in halves
                ]
            finally:
                for half in halves:
                    half.path.unlink(missing_ok=True)
            return _joined(answers, halves)

    @contextmanager
    def _waiting(self, path: Path, chunk: Chunk) -> Iterator[None]:
        """While a server has not answered a chunk, say so after `wait_notice_s`, and again each time
        the wait doubles: minutes of silence look like a hang. (The local engine's work shows as its
        own progress.)"""
        if not self.engine.parallel_chunks:
            yield
            return
        answered = threading.Event()
        every_s = self.settings.wait_notice_s

        def tell() -> None:
            waited_s = 0.0
            while not answered.wait(max(every_s, waited_s)) and not self.stop.is_set():
                waited_s += max(every_s, waited_s)
                self.on_event(
                    Notice(f"{path}: still waiting for chunk {chunk.index + 1} after {waited_s:.0f} s")
                )

        threading.Thread(target=tell, name="wb-waiting", daemon=True).start()
        try:
            yield
        finally:
            answered.set()

    def _with_retries(self, path: Path, chunk: int | None, request: Callable[[], _T]) -> _T:
        """One request (a chunk's transcription, or a translation batch), retried as the run's
        `RetryPolicy` says: the one retry loop for every request a run makes."""
        policy = self.policy
        where = f"{path}" if chunk is None else f"{path} (chunk {chunk + 1})"
        for attempt in range(1, policy.max_attempts + 1):
            if self.stop.is_set() or self.halted():
                raise Stopped("the run was stopped")
            with self._bill_lock:
                if (bill := self._bills.get(path)) is not None:
                    self._sent.add(bill.job_key)
            try:
                return request()
            except RetryableEngineError as e:
                if attempt == policy.max_attempts:
                    raise RetriesExhausted(
                        f"gave up after {attempt} attempts: {e}", path=path, chunk=chunk
                    ) from e
                delay = policy.request_delay_s(attempt, e.retry_after_s)
                self.on_event(Notice(f"{where}: {e}; retrying in {delay:.1f} s"))
                self._wait(delay)
            except (FatalEngineError, StoreError) as e:  # a store error: the answer could not be billed
                self.on_fatal(e)
                raise
            except EngineError as e:
                kind = RequestTooLarge if isinstance(e, RequestTooLarge) else EngineError  # a chunk is halved
                raise kind(str(e), path=path, chunk=chunk) from e
        raise AssertionError("unreachable")

    def _wait(self, seconds: float) -> None:
        """Back off, but wake at once when the run is stopped."""
        if self.stop.wait(seconds):
            raise Stopped("the run was stopped")

    def worst_case_usd(self, duration_s: float) -> float:
        """What a recording costs at most: every second billed (silences skipped cost less), and its
        translation at twice the usual tokens for that much speech."""
        minutes = duration_s / 60.0
        usd = minutes * self.engine.info.usd_per_min
        if self.translator is not None:
            usd += 2 * (self.translator.info.usd(cost.translation_forecast(minutes)) or 0.0)
        return usd

    def close(self) -> None:
        self._chunk_pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
        if self.translator is not None:
            self.translator.close()
