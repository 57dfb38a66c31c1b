"""Where a recording's outputs go, fixed before any work so none overwrites another's.

The runner owns one `OutputBook` (the names fixed so far, the clashes already told); admission,
`enqueue`, the watcher and each job's stages ask it through an `Outputs` view for their job's own
output options, so a recording's path is planned once and asked about everywhere alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import cost, writers
from ..cues import CueStyle
from ..inputs import namesakes
from ..models import CostLine, Task, Transcript
from ..speakers import SpeakerOptions
from ..store import JobStore
from .events import Event, Notice

COSTS_CSV = "costs.csv"


@dataclass(frozen=True)
class OutputOptions:
    """What a job's outputs are: where, in which formats, cut into which cues, the language a chat
    model translates into (None: no translation), and whether they carry speaker labels (None: not)."""

    out_dir: Path | None
    formats: tuple[str, ...]
    style: CueStyle
    translate_to: str | None
    speakers: SpeakerOptions | None = None

    def written_from(self, key: str) -> str:
        """What outputs of job `key` are recorded as written from: the job, and the speaker counts when
        labelled, so a run with labels rewrites outputs made without them, and the other way round."""
        s = self.speakers
        return key if s is None else f"{key}:speakers:{s.num_speakers}:{s.min_speakers}:{s.max_speakers}"


class OutputBook:
    """The names fixed for every recording this process has planned, by output folder, and the groups
    of recordings already told as named apart."""

    def __init__(self, store: JobStore | None, on_event: Callable[[Event], None] = lambda e: None) -> None:
        self.store, self.on_event = store, on_event
        self._lock = threading.Lock()
        self._bases: dict[tuple[Path | None, Path], Path] = {}  # (out_dir, recording) -> base
        self._clashes_told: set[frozenset[Path]] = set()

    def outputs(self, options: OutputOptions) -> Outputs:
        return Outputs(self, options)


class Outputs:
    """The book, seen with one job's output options."""

    def __init__(self, book: OutputBook, options: OutputOptions) -> None:
        self.book, self.options = book, options

    def plan(self, sources: Sequence[Path], neighbours: Sequence[Path] = ()) -> None:
        """Fix where these recordings' outputs go before any work, so none overwrites another's; each
        group of recordings that had to be named apart is said once."""
        book, folder = self.book, self.options.out_dir
        around = [n for source in sources for n in namesakes(source)]
        owners: list[Path] = []  # recordings whose outputs are where these would go
        while True:
            plan = writers.plan_outputs(sources, folder, [*neighbours, *around, *owners])
            fresh_owners = [o for o in self._owners(plan.bases) if o not in owners]
            if not fresh_owners:
                break
            owners += fresh_owners
        with book._lock:
            book._bases.update({(folder, source): base for source, base in plan.bases.items()})
            fresh = [c for c in plan.clashes if frozenset(c) not in book._clashes_told]
            book._clashes_told.update(frozenset(c) for c in fresh)
        for clash in fresh:
            named = ", ".join(
                f"{plan.bases[p].relative_to(folder.absolute()) if folder else plan.bases[p].name}.*"
                for p in clash
                if p in plan.bases
            )
            kept = "".join(f"; {p}'s stay where they were written" for p in clash if p.absolute() in owners)
            book.on_event(
                Notice(f"{', '.join(map(str, clash))} share a name: their outputs are named {named}{kept}")
            )

    def _owners(self, bases: dict[Path, Path]) -> list[Path]:
        """Other recordings whose outputs (as the store knows) lie where `bases` would put these ones':
        a later run's `talk.m4a` from another folder is named apart from them instead of overwriting
        them, or taking them for its own."""
        store = self.book.store
        if store is None or not bases:
            return []
        wanted = {path: src.absolute() for src, base in bases.items() for path in self._all_outputs(base)}
        records = store.outputs(list(wanted))
        return sorted({r.source for path, r in records.items() if r.source != wanted[path]})

    def _all_outputs(self, base: Path) -> list[Path]:
        """Every format's output at `base`, English and this job's translation's too: outputs there are
        another recording's even when this run asks for other formats."""
        languages = {None, "en", self.options.translate_to}
        formats = (*writers.FORMATS, *writers.SPEAKER_FORMATS)
        return [p for lang in languages for p in writers.output_paths(base, formats, lang).values()]

    def targets(self, source: Path, task: Task) -> tuple[dict[str, Path], dict[str, Path]]:
        """The transcript's outputs and the translation's: `talk.srt` and `talk.de.srt`. Whisper's own
        translation (task translate) is English text to begin with: `talk.en.srt` only."""
        book, options = self.book, self.options
        with book._lock:
            base = book._bases.get((options.out_dir, source))
        if base is None:
            self.plan([source])
            with book._lock:
                base = book._bases[(options.out_dir, source)]
        if task is Task.TRANSLATE:
            return writers.output_paths(base, options.formats, "en"), {}
        translated = {}
        if options.translate_to is not None:
            translated = writers.output_paths(base, options.formats, options.translate_to)
        return writers.output_paths(base, options.formats), translated

    def output_paths(self, source: Path, task: Task) -> dict[Path, str]:
        """Every output of `source`, and its format."""
        own, translated = self.targets(source, task)
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
        store = self.book.store
        if store is None or not all(p.exists() for p in paths):
            return False
        records = store.outputs(paths)
        written_from = self.options.written_from(key)
        return all(p in records and records[p].job_key == written_from for p in paths)

    def write(
        self,
        source: Path,
        task: Task,
        key: str,
        transcript: Transcript,
        translated: Transcript | None,
        line: CostLine | None,
    ) -> tuple[Path, ...]:
        """Every output of `source`, translation included, written all or none, and recorded as job
        `key`'s (with its speaker options when labelled)."""
        own, others = self.targets(source, task)
        texts = writers.render_outputs(transcript, own, self.options.style, line, source=source)
        if translated is not None:
            texts.update(writers.render_outputs(translated, others, self.options.style, line, source=source))
        outputs = writers.write_files(texts)
        if self.book.store is not None:
            # Labels that could not be made: recorded as written without them, so a run asking for
            # labels again makes them (once their cause, a damaged model say, is mended).
            written_from = key if transcript.unlabelled is not None else self.options.written_from(key)
            self.book.store.record_outputs(outputs, source.absolute(), written_from)
        return outputs

    def append_costs(self, outputs: tuple[Path, ...], line: CostLine) -> None:
        """The recording's cost row, in `costs.csv` beside its outputs."""
        cost.append_costs_csv((self.options.out_dir or outputs[0].parent) / COSTS_CSV, [line])
