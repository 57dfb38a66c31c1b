"""The command line: parse, call the pipeline, render with rich. The only module that prints or exits.

Exit codes: 0 all done; 1 some file failed (the rest still processed); 2 usage or configuration
error; 3 stopped early by budget, exhausted quota or a rejected API key; 130 Ctrl-C, 143 SIGTERM.
Everything printed goes through `Output`, which masks the API key (`errors.mask`) should any text ever
contain it.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperArgument, TyperCommand

from . import __version__, audio, cost, scratch
from .config import Settings, load_settings
from .engines import select_engine
from .engines.base import Engine, current_date, default_api_model, lineup_notice, model_info
from .errors import ConfigError, StoreError, WhisperbatchError, cause_chain, mask
from .inputs import collect_inputs
from .jobs import ONE_OFF, SERVICE, Interruption, JobOptions, JobRunner, RunMode, Service, run_files, serve
from .models import CostLine, JobState, RunSummary, Spend, Task
from .pipeline import ChunkDone, Event, FileFinished, FileStarted, Notice, chunk_params, upload_forecast_s
from .policy import require_prices
from .store import Job, JobStore, LedgerRow, open_store
from .translate import chat_model_info, translation_target

app = typer.Typer(
    name="whisperbatch",
    help="Transcribe and translate recordings into text and subtitles, with a cost report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_FAILED, EXIT_STOPPED = 1, 3


class Output:
    """Console output with secrets masked (the settings keep them as they load); progress bars on a
    terminal, plain lines otherwise."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, log: bool = False) -> None:
        # Pipes and CI logs get a wide table instead of rich's 80-column default.
        self.out = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet, self.verbose = quiet, verbose
        self.log = log  # the service: timestamped lines, one per event, chunks included
        self.live = self.err.is_terminal and not quiet
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[Path, TaskID] = {}
        self._files_task: TaskID | None = None

    def mask(self, text: str) -> str:
        return mask(text)

    def _stamp(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S ") if self.log else ""

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(self._stamp() + self.mask(text), markup=False)

    def error(self, text: str) -> None:
        self.err.print(self._stamp() + "error: " + self.mask(text), markup=False, style="red")

    def __enter__(self) -> Output:
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[chunks]}"),
                TimeRemainingColumn(),
                console=self.err,
                transient=True,
            )
            self._progress.start()
        return self

    def expect_files(self, count: int) -> None:
        """An overall bar (files done of total) above the per-file ones."""
        if self._progress is not None and count > 1:
            self._files_task = self._progress.add_task("files", total=count, chunks=f"0/{count}")

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: Event) -> None:
        with self._lock:
            self._event(event)

    def _event(self, event: Event) -> None:
        p = self._progress
        if isinstance(event, FileStarted):
            if p is not None:
                self._tasks[event.path] = p.add_task(
                    self.mask(event.path.name), total=max(event.duration_s, 0.001), chunks="0 chunks"
                )
            elif self.verbose:
                self.info(f"{event.path}: started ({event.duration_s:.1f} s of audio)")
        elif isinstance(event, ChunkDone):
            if p is not None and event.path in self._tasks:
                p.update(self._tasks[event.path], completed=event.end_s, chunks=f"{event.index + 1} chunks")
            if self.verbose or self.log:
                how = "" if event.uploaded else " (from before a restart)"
                self.info(f"{event.path}: chunk {event.index + 1} done{how}, {event.end_s:.0f} s in")
        elif isinstance(event, FileFinished):
            r = event.result
            if p is not None and r.source in self._tasks:
                p.remove_task(self._tasks.pop(r.source))
            if p is not None and self._files_task is not None:
                p.advance(self._files_task)
                done = int(p.tasks[self._files_task].completed)
                p.update(self._files_task, chunks=f"{done}/{int(p.tasks[self._files_task].total or 0)}")
            if r.error and self.log:  # the service goes on: a failed file is a line of its log
                self.info(f"failed: {r.error}")
            elif r.error:
                self.error(r.error)
                if self.verbose:
                    for cause in r.causes:
                        self.info(f"  caused by {cause}")
            elif r.cost is not None:
                outputs = ", ".join(o.name for o in r.outputs)
                sent = "transcribed here" if r.cost.engine == "local" else "uploaded"  # nothing leaves
                chunks = f"{r.chunks_uploaded} of {r.chunks_total} chunk(s) {sent}"
                spent = "cost unknown" if r.cost.usd is None else f"${r.cost.usd:.4f}"
                self.info(f"{r.source}: done -> {outputs} ({chunks}, {spent})")
        elif isinstance(event, Notice):
            self.info(event.message)


class _Command(TyperCommand):
    """A command whose help names each value by what it is (`PATH...`, `--budget USD`), never by its
    Python type: typer prints an argument's annotation beside it (`PATH <list[str]>`) even when it has
    a metavar, so arguments are listed here by their metavar alone. Options carry theirs."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args: list[tuple[str, str]] = []
        opts: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                args.append((name + ("..." if param.nargs != 1 else ""), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


# ---- options, declared once and shared by the commands that take them ------------------------------

Paths = Annotated[
    list[str], typer.Argument(metavar="PATH", help="Files, folders (searched recursively) or globs.")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", metavar="FILE", help="config.toml to use.")]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="Job store: postgresql://… URL or SQLite file (default: in the home).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Say more, per chunk.")]

# Command parameter -> (its annotation, its default, the Settings field it sets or None).
_OPTIONS: dict[str, tuple[Any, Any, str | None]] = {
    "engine": (
        Annotated[str | None, typer.Option("--engine", metavar="ENGINE", help="auto | openai | local.")],
        None,
        "engine",
    ),
    "model": (
        Annotated[
            str | None, typer.Option("--model", metavar="NAME", help="API model, or local model name/folder.")
        ],
        None,
        "model",
    ),
    "language": (
        Annotated[
            str | None, typer.Option("--language", metavar="CODE", help="Spoken language code, e.g. en, de.")
        ],
        None,
        "language",
    ),
    "prompt": (
        Annotated[
            str | None, typer.Option("--prompt", metavar="TEXT", help="Words to steer spelling and style.")
        ],
        None,
        "prompt",
    ),
    "format": (
        Annotated[
            str | None, typer.Option("--format", "-f", metavar="FORMATS", help="txt,srt,vtt,json or all.")
        ],
        None,
        "format",
    ),
    "out_dir": (
        Annotated[Path | None, typer.Option("--out-dir", "-o", metavar="DIR", help="Write outputs here.")],
        None,
        "out_dir",
    ),
    "concurrency": (
        Annotated[
            int | None,
            typer.Option(
                "--concurrency",
                "-j",
                metavar="N",
                help="Requests at once (API; default 8), or files (local engine; default 2).",
            ),
        ],
        None,
        "concurrency",
    ),
    "budget": (
        Annotated[
            float | None, typer.Option("--budget", metavar="USD", help="Stop before spending more USD.")
        ],
        None,
        "budget_usd",
    ),
    "base_url": (
        Annotated[
            str | None, typer.Option("--base-url", metavar="URL", help="OpenAI-compatible server URL.")
        ],
        None,
        "base_url",
    ),
    "max_line_width": (
        Annotated[
            int | None, typer.Option("--max-line-width", metavar="N", help="Subtitle line length (42).")
        ],
        None,
        "max_line_width",
    ),
    "max_line_count": (
        Annotated[
            int | None, typer.Option("--max-line-count", metavar="N", help="Lines per subtitle cue (2).")
        ],
        None,
        "max_line_count",
    ),
    "max_words_per_line": (
        Annotated[
            int | None,
            typer.Option("--max-words-per-line", metavar="N", help="Words per subtitle line (no limit)."),
        ],
        None,
        "max_words_per_line",
    ),
    "to": (
        Annotated[
            str | None,
            typer.Option("--to", metavar="LANG", help="Translate into this language (default en)."),
        ],
        None,
        "translate_to",
    ),
    "translate_model": (
        Annotated[
            str | None, typer.Option("--translate-model", metavar="NAME", help="Chat model that translates.")
        ],
        None,
        "translate_model",
    ),
    "database": (DatabaseOpt, None, "database"),
    "config": (ConfigOpt, None, None),
    "quiet": (QuietOpt, False, None),
    "verbose": (VerboseOpt, False, None),
}
# What each kind of command takes.
COMMON = ("config", "quiet", "verbose")
RUN = tuple(_OPTIONS)
TRANSLATING = ("to", "translate_model")
WORKER = ("engine", "model", "concurrency", "budget", "base_url", "database", *COMMON)

# Settings field -> the option that sets it, for messages about a bad value.
_FLAG_NAMES = {field: "--" + name.replace("_", "-") for name, (_, _, field) in _OPTIONS.items() if field}


@dataclass(frozen=True)
class Options:
    """The shared options a command was given: Settings fields, and how to talk."""

    flags: dict[str, Any]
    config: Path | None
    quiet: bool
    verbose: bool


def shared_options(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared options `names`, declared once in `_OPTIONS`; it receives them as
    `options: Options` (typer reads the parameters from the signature this sets)."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "options"]
        extra = [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, default=_OPTIONS[n][1], annotation=_OPTIONS[n][0]
            )
            for n in names
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> None:
            given = {n: kwargs.pop(n) for n in names}
            flags = {field: given[n] for n in names if (field := _OPTIONS[n][2]) is not None}
            options = Options(
                flags, given.get("config"), bool(given.get("quiet")), bool(given.get("verbose"))
            )
            fn(*args, options=options, **kwargs)

        del command.__wrapped__  # typer must read the signature below, not the wrapped one
        command.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in (*own, *extra)}
        return command

    return wrap


def _settings(config: Path | None, flags: Mapping[str, Any]) -> Settings:
    return load_settings(dict(flags), config_path=config, flag_names=_FLAG_NAMES)


def _fail(out: Output, e: WhisperbatchError) -> typer.Exit:
    out.error(str(e))
    if out.verbose:
        for cause in cause_chain(e):
            out.info(f"  caused by {cause}")
    return typer.Exit(e.exit_code)


@dataclass(frozen=True)
class Prepared:
    """What a command that runs jobs needs, checked before anything runs. `task` is what the engine
    does: a translation through a chat model transcribes, then translates into `translate_to`."""

    settings: Settings
    ffmpeg: str
    engine: Engine
    store: JobStore
    task: Task
    translate_to: str | None


def _prepare(out: Output, options: Options, task: Task) -> Prepared:
    """Settings, ffmpeg, engine and store for a command that runs jobs; a user error exits with its code.
    A model that is going says when; one that is gone stops here, before any request."""
    try:
        settings = _settings(options.config, options.flags)
        ffmpeg = audio.find_ffmpeg()
        translate_to = None
        if task is Task.TRANSLATE:
            translate_to = translation_target(settings, settings.engine_name)
            task = Task.TRANSCRIBE if translate_to else Task.TRANSLATE
        today = current_date()
        engine = select_engine(settings, task, today)
        chat = chat_model_info(settings.translate_model, settings.models) if translate_to else None
        require_prices(settings, engine.info, chat)
        store = open_store(settings)
    except WhisperbatchError as e:
        raise _fail(out, e) from None
    if engine.name == "openai" and (notice := lineup_notice(engine.info, today)):
        out.info(notice)
    return Prepared(settings, ffmpeg, engine, store, task, translate_to)


def _open_store(out: Output, options: Options) -> JobStore:
    try:
        return open_store(_settings(options.config, options.flags))
    except WhisperbatchError as e:
        raise _fail(out, e) from None


_T = TypeVar("_T")


def _with_store(out: Output, options: Options, use: Callable[[JobStore], _T]) -> _T:
    """Open the store, use it and close it; a store that cannot be read (a damaged file) or written (a
    full disk) is one line and its exit code."""
    store = _open_store(out, options)
    try:
        return use(store)
    except WhisperbatchError as e:
        raise _fail(out, e) from None
    finally:
        store.close()


def _runner(out: Output, ready: Prepared, mode: RunMode, *, folder: Path | None = None) -> JobRunner:
    return JobRunner(
        ready.settings,
        ready.engine,
        store=ready.store,
        ffmpeg=ready.ffmpeg,
        task=ready.task,
        mode=mode,
        on_event=out.event,
        translate_to=ready.translate_to,
        folder=folder,
    )


def _engine_line(ready: Prepared) -> str:
    engine = ready.engine
    where = f" at {getattr(engine, 'host', '')}" if engine.name == "openai" else " (offline)"
    line = f"{engine.name}, model {engine.model}{where}"
    if ready.translate_to:
        line += f"; translating into {ready.translate_to} with {ready.settings.translate_model}"
    return line


def _process(task: Task, paths: list[str], *, force: bool, options: Options) -> None:
    out = Output(quiet=options.quiet, verbose=options.verbose)
    ready = _prepare(out, options, task)
    inputs = collect_inputs(paths)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    out.info(f"engine: {_engine_line(ready)}")
    runner = _runner(out, ready, ONE_OFF)
    try:
        with scratch.run_folder() as tmp, out:
            out.expect_files(len(inputs.files))
            summary, interruption = run_files(runner, inputs.files, force=force)
            if interruption is not None and interruption.abandoned:
                _abandoned(out, interruption, tmp)
    except WhisperbatchError as e:
        raise _fail(out, e) from None
    finally:
        runner.close()
        ready.store.close()
    if not options.quiet:
        _cost_table(out, summary)
    flagged = [r for r in summary.results if r.transcript is not None and r.transcript.warnings]
    if flagged:
        out.info(f"warning: {len(flagged)} file(s) done with warnings (also under `warnings` in the json):")
        for r in flagged:
            assert r.transcript is not None
            out.info(f"  {r.source}: {'; '.join(r.transcript.warnings)}")
    if interruption is not None:
        out.error(
            f"interrupted ({signal.Signals(interruption.signum).name}): files not finished have no outputs;"
            " the same command resumes them"
        )
        raise typer.Exit(128 + interruption.signum)
    if summary.stopped_reason:
        out.error(f"stopped: {summary.stopped_reason}")
        raise typer.Exit(EXIT_STOPPED)
    if summary.failed or inputs.missing:
        raise typer.Exit(EXIT_FAILED)
    if not inputs.files:
        out.error("no audio files found")
        raise typer.Exit(EXIT_FAILED)


def _abandoned(out: Output, interruption: Interruption, tmp: Path) -> NoReturn:
    """Requests were left in flight: say which files are unfinished, clean up, exit without waiting."""
    out.__exit__()
    for path in interruption.unfinished:
        out.error(f"{path}: not finished (interrupted); what it cost so far is in the ledger")
    for path in interruption.not_started:
        out.error(f"{path}: not started (interrupted)")
    scratch.remove(tmp)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + interruption.signum)  # threads blocked on the network cannot be joined


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


def _cost_columns(lines: Sequence[CostLine]) -> list[tuple[str, Callable[[Sequence[CostLine]], str]]]:
    """The money columns of a set of cost rows: transcription and translation apart when anything was
    translated, the local engine's API equivalent when it ran; each with how its total is made."""

    def total(pick: Callable[[CostLine], float | None]) -> Callable[[Sequence[CostLine]], str]:
        def cell(rows: Sequence[CostLine]) -> str:
            values = [pick(r) for r in rows]
            return _usd(None if None in values else sum(v or 0.0 for v in values))

        return cell

    columns: list[tuple[str, Callable[[Sequence[CostLine]], str]]] = []
    if any(line.translate_model for line in lines):
        columns += [
            ("Transcription USD", total(lambda r: r.transcribe_usd)),
            ("Translation USD", total(lambda r: r.translate_usd)),
        ]
    columns.append(("USD", total(lambda r: r.usd)))
    if any(line.engine == "local" for line in lines):
        columns.append(("API equiv. USD", total(lambda r: r.api_equivalent_usd)))
    return columns


def _cost_table(out: Output, summary: RunSummary) -> None:
    lines = [r.cost for r in summary.results if r.cost is not None]
    if not lines:
        return
    money = _cost_columns(lines)
    table = Table(title="Cost (estimated)", title_justify="left")
    for col in ("File", "Audio", "Billed min", "Engine", "Model", "USD/min", *(name for name, _ in money)):
        table.add_column(col, justify="left" if col in ("File", "Engine", "Model") else "right")
    for line in lines:
        same = f" (same as {Path(line.same_as).name})" if line.same_as and line.same_as != line.file else ""
        table.add_row(
            out.mask(Path(line.file).name + same),
            _duration(line.audio_s),
            f"{line.billed_min:.2f}",
            line.engine,
            line.model + (f" + {line.translate_model} ({line.translate_to})" if line.translate_model else ""),
            _usd(line.usd_per_min),
            *(cell([line]) for _, cell in money),
        )
    table.add_row(
        f"Total ({len(lines)} file{'' if len(lines) == 1 else 's'})",
        _duration(sum(x.audio_s for x in lines)),
        f"{sum(x.billed_min for x in lines):.2f}",
        "",
        "",
        "",
        *(cell(lines) for _, cell in money),
        style="bold",
    )
    out.out.print(table)
    for model in dict.fromkeys(line.model for line in lines if line.usd_per_min is None):
        out.info(f"no price is known for {model}: {cost.price_hint(model)}")
    if any(line.translate_usd is None for line in lines):
        model = next(line.translate_model for line in lines if line.translate_usd is None)
        out.info(f"no price is known for {model}: {cost.price_hint(model, chat=True)}")


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _files_command(task: Task) -> Callable[..., None]:
    """transcribe and translate share every option but translate's own (`--to`); only the task differs."""

    @shared_options(*(n for n in RUN if task is Task.TRANSLATE or n not in TRANSLATING))
    def command(
        paths: Paths,
        force: Annotated[bool, typer.Option("--force", help="Redo files already done.")] = False,
        *,
        options: Options,
    ) -> None:
        _process(task, paths, force=force, options=options)

    return command


app.command(
    "transcribe",
    help="Transcribe recordings; outputs are written beside each one (or under --out-dir). A run stopped"
    " any way resumes where it left off.",
)(_files_command(Task.TRANSCRIBE))
app.command(
    "translate",
    help="Translate recordings: into English by default, into any language with --to (a chat model"
    " translates the transcript, each cue keeping its times). Outputs are <stem>.<lang>.<ext> beside the"
    " transcript's.",
)(_files_command(Task.TRANSLATE))


@app.command()
@shared_options("model", "engine", "to", "translate_model", "config")
def estimate(
    paths: Paths,
    quick: Annotated[
        bool, typer.Option("--quick", help="Durations only: an upper bound, without speech detection.")
    ] = False,
    *,
    options: Options,
) -> None:
    """Forecast billed minutes and dollars per file and in total, transcription and (with --to)
    translation, from the speech detection a run uses. Reads files locally; sends nothing."""
    out = Output()
    try:
        settings = _settings(options.config, options.flags)
        ffmpeg = audio.find_ffmpeg()
        today = current_date()
    except WhisperbatchError as e:
        raise _fail(out, e) from None
    local = settings.engine_name == "local"
    # --model names the API model to price, key or no key; a local model is priced as the API default.
    info = model_info(settings.model or default_api_model(today), settings.models)
    if local and not info.price_known:
        info = model_info(default_api_model(today), settings.models)
    chat = None
    if options.flags.get("translate_to") and not (local and settings.translate_to == "en"):
        chat = chat_model_info(settings.translate_model, settings.models)
    inputs = collect_inputs(paths)
    failed = bool(inputs.missing)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    price = f"${info.usd_per_min:.4f}/min" if info.price_known else "an unknown price"
    title = f"Estimate for {info.name} at {price}"
    if chat is not None:
        title += f", translated into {settings.translate_to} by {chat.name}"
    table = Table(title=title, title_justify="left")
    money = ("Transcription USD", "Translation tokens", "Translation USD") if chat else ()
    for col in ("File", "Duration", "Billed min", *money, "USD"):
        table.add_column(col, justify="left" if col == "File" else "right")

    params = chunk_params(settings, info, max_bytes=None)

    def cells(duration_s: float, seconds: float) -> list[str]:
        minutes = seconds / 60
        transcribing = minutes * info.usd_per_min if info.price_known else None
        if chat is None:
            return [_duration(duration_s), f"{minutes:.2f}", _usd(transcribing)]
        tokens = cost.translation_forecast(minutes)
        translating = chat.usd(tokens)
        total = None if translating is None or transcribing is None else transcribing + translating
        return [
            _duration(duration_s),
            f"{minutes:.2f}",
            _usd(transcribing),
            f"{tokens.text_tokens} in, {tokens.output_tokens} out",
            _usd(translating),
            _usd(total),
        ]

    total_s = total_billed_s = 0.0
    for path in inputs.files:
        try:
            duration_s = audio.probe(path, ffmpeg).duration_s
            billed_s = duration_s if quick else upload_forecast_s(path, params, ffmpeg=ffmpeg)
        except WhisperbatchError as e:
            out.error(str(e))
            failed = True
            continue
        total_s += duration_s
        total_billed_s += billed_s
        table.add_row(str(path), *cells(duration_s, billed_s))
    table.add_row("Total", *cells(total_s, total_billed_s), style="bold")
    out.out.print(table)
    if not info.price_known:
        out.info(f"no price is known for {info.name}: {cost.price_hint(info.name)}")
    if chat is not None and not chat.price_known:
        out.info(f"no price is known for {chat.name}: {cost.price_hint(chat.name, chat=True)}")
    if chat is not None:
        out.info(
            f"translation tokens are forecast from {cost.WORDS_PER_MIN} words a minute of speech; "
            "the run records what the chat server reports"
        )
    if local:
        out.info("engine local: transcription costs $0; the figures are what the API would bill")
    if quick:
        out.info("--quick: every second of each recording counted, an upper bound (silences are not billed)")
    else:
        out.info("minutes: the speech a run would upload, found the way a run finds it (silences skipped)")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@shared_options("database", "config")
def report(
    as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Rows as CSV.")] = False,
    *,
    options: Options,
) -> None:
    """The spend ledger over past runs: per run, and in total."""
    out = Output()
    rows = _with_store(out, options, lambda store: store.ledger())
    records = [
        {
            "run_id": r.run_id,
            "recorded_at": round(r.recorded_at, 3),
            **_line_dict(r.line),
            "state": str(r.state),
        }
        for r in rows
    ]
    if as_json:
        out.out.print_json(json.dumps(records))
        return
    if as_csv:
        columns = list(records[0]) if records else ["run_id"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    runs: dict[str, list[LedgerRow]] = {}
    for r in rows:
        runs.setdefault(r.run_id, []).append(r)
    money = _cost_columns([r.line for r in rows])
    table = Table(title="Spend by run", title_justify="left")
    for col in ("Run", "Files", "Not done", "Audio", "Billed min", *(name for name, _ in money)):
        table.add_column(col, justify="left" if col == "Run" else "right")
    for run_id, group in runs.items():
        table.add_row(run_id, *_spend_cells(group), *(cell([r.line for r in group]) for _, cell in money))
    table.add_row(
        "Total", *_spend_cells(rows), *(cell([r.line for r in rows]) for _, cell in money), style="bold"
    )
    out.out.print(table)
    if any(r.state is not Spend.DONE for r in rows):
        out.info("not done: files stopped, failed or killed after requests were paid for (see --json)")


def _spend_cells(rows: Sequence[LedgerRow]) -> list[str]:
    lines = [r.line for r in rows]
    return [
        str(len(lines)),
        str(sum(r.state is not Spend.DONE for r in rows)),
        _duration(sum(x.audio_s for x in lines)),
        f"{sum(x.billed_min for x in lines):.2f}",
    ]


TaskOpt = Annotated[str, typer.Option("--task", metavar="TASK", help="transcribe | translate.")]


def _task(out: Output, task: str) -> Task:
    if task not in ("transcribe", "translate"):
        raise _fail(out, ConfigError(f"--task must be transcribe or translate (got {task!r})"))
    return Task(task)


def _service_exit(out: Output, runner: JobRunner, interruption: Interruption | None, *, once: bool) -> None:
    if interruption is not None and interruption.abandoned:
        for path in interruption.unfinished:
            out.info(
                f"{path}: not finished (requests abandoned); back in the queue, what it cost is in the ledger"
            )
    if once and runner.paused_reason:
        raise typer.Exit(EXIT_STOPPED)


@app.command()
@shared_options(*RUN)
def watch(
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="The folder to watch.")],
    task: TaskOpt = "transcribe",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Watch subfolders too.")] = False,
    polling: Annotated[bool, typer.Option("--polling", help="Poll (NFS, SMB, container mounts).")] = False,
    once: Annotated[bool, typer.Option("--once", help="Process what is there, then exit.")] = False,
    no_work: Annotated[
        bool, typer.Option("--no-work", help="Only enqueue: `worker` processes run the jobs.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Redo recordings already done, once each.")] = False,
    *,
    options: Options,
) -> None:
    """Transcribe (or translate) every recording that lands in FOLDER, once, across restarts."""
    out = Output(quiet=options.quiet, verbose=options.verbose, log=True)
    chosen = _task(out, task)
    if not folder.is_dir():
        raise _fail(out, ConfigError(f"{folder}: not a folder"))
    ready = _prepare(out, options, chosen)
    runner = _runner(out, ready, SERVICE, folder=folder.absolute())
    service = Service(
        runner, root=folder.absolute(), recursive=recursive, polling=polling, force=force, once=once
    )
    doing = "enqueueing only" if no_work else f"engine {_engine_line(ready)}"
    out.info(
        f"watching {folder} ({task}; {doing}; store {ready.store})"
        + ("" if once else "; Ctrl-C or SIGTERM to stop")
    )
    started = time.monotonic()

    def done() -> bool:
        return once and time.monotonic() - started > ready.settings.settle_s and service.settled()

    with scratch.run_folder():
        try:
            service.start(work=not no_work)
        except WhisperbatchError as e:
            ready.store.close()
            raise _fail(out, e) from None
        try:
            with out:
                interruption = serve(
                    runner, done=done, tick=service.tick, grace_s=ready.settings.shutdown_grace_s
                )
        finally:
            service.stop()
            runner.close()
            ready.store.close()
    _service_exit(out, runner, interruption, once=once)
    if once and (runner.failed_keys or service.unsettled):
        raise typer.Exit(EXIT_FAILED)


@app.command()
@shared_options(*WORKER)
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run what is queued, then exit.")] = False,
    *,
    options: Options,
) -> None:
    """Run jobs from the store (`--database` shared by many hosts), watching no folder.

    Each job runs with the options it was enqueued with; this host adds its API key, base URL and
    concurrency. Recordings must be readable here at the path stored (a shared mount)."""
    out = Output(quiet=options.quiet, verbose=options.verbose, log=True)
    ready = _prepare(out, options, Task.TRANSCRIBE)
    runner = _runner(out, ready, SERVICE)
    out.info(
        f"worker {runner.owner} on {ready.store}, {ready.settings.concurrency} at once"
        + ("" if once else "; Ctrl-C or SIGTERM to stop")
    )
    with scratch.run_folder():
        runner.start()
        try:
            with out:
                interruption = serve(
                    runner, done=lambda: once and runner.idle(), grace_s=ready.settings.shutdown_grace_s
                )
        finally:
            runner.close()
            ready.store.close()
    _service_exit(out, runner, interruption, once=once)
    if once and runner.failed_keys:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@shared_options(*RUN)
def enqueue(
    paths: Paths,
    task: TaskOpt = "transcribe",
    force: Annotated[bool, typer.Option("--force", help="Redo recordings already done.")] = False,
    *,
    options: Options,
) -> None:
    """Add recordings to the queue without waiting: `worker` or `watch` processes run them."""
    out = Output(quiet=options.quiet, verbose=options.verbose)
    chosen = _task(out, task)
    ready = _prepare(out, options, chosen)
    inputs = collect_inputs(paths)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    runner = _runner(out, ready, SERVICE)
    runner.outputs.plan(inputs.files)
    failed = bool(inputs.missing)
    added = 0
    try:
        for path in inputs.files:
            try:
                job = runner.admission.admit(path, force=force)
            except StoreError as e:  # no file can be queued: said once
                raise _fail(out, e) from None
            except WhisperbatchError as e:
                out.error(str(e))
                failed = True
                continue
            if job is not None and job.state is JobState.QUEUED:
                added += 1
    finally:
        runner.close()
        ready.store.close()
    out.info(f"{added} job{'s' if added != 1 else ''} queued on {ready.store}")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
@shared_options("database", *COMMON)
def status(
    state: Annotated[JobState | None, typer.Option("--state", help="Only jobs in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Jobs as JSON.")] = False,
    *,
    options: Options,
) -> None:
    """Jobs of every run, watcher and worker: queued, running (and on which host), done, failed."""
    out = Output()
    jobs = _with_store(out, options, lambda store: store.jobs(state))
    if as_json:
        keep = ("key", "state", "attempts", "usd", "updated_at", "lease_owner", "run_id")
        data = [
            {
                "path": str(j.path),
                "task": str(j.task),
                "translate_to": _translate_to(j),
                **{k: getattr(j, k) for k in keep},
                "error": None if j.error is None else out.mask(j.error),
            }
            for j in jobs
        ]
        out.out.print_json(json.dumps(data))
        return
    counts = {s: sum(j.state is s for j in jobs) for s in JobState}
    table = Table(title=", ".join(f"{n} {s}" for s, n in counts.items()), title_justify="left")
    for col in ("State", "File", "Task", "Attempts", "Updated", "USD", "Run", "Worker", "Reason"):
        table.add_column(col)
    for j in jobs:
        translate_to = _translate_to(j)
        table.add_row(
            j.state,
            str(j.path),
            f"{j.task} + translate into {translate_to}" if translate_to else str(j.task),
            str(j.attempts),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.updated_at)),
            "" if j.usd is None else f"{j.usd:.4f}",
            j.run_id or "",
            j.lease_owner or "",
            out.mask(j.error or ""),
        )
    out.out.print(table)


def _translate_to(job: Job) -> str | None:
    options = JobOptions.from_json(job.options)
    return None if options is None else options.translate_to


@app.command()
@shared_options("database", *COMMON)
def retry(
    paths: Annotated[
        list[str] | None, typer.Argument(metavar="PATH", help="Failed recordings to requeue (default: all).")
    ] = None,
    *,
    options: Options,
) -> None:
    """Requeue failed jobs; a running watcher or worker picks them up."""
    out = Output()

    def requeue(store: JobStore) -> int:
        keys = None
        if paths:
            wanted = {Path(p).absolute() for p in paths} | {Path(p).resolve() for p in paths}
            failed = store.jobs(JobState.FAILED)
            keys = [j.key for j in failed if j.path in wanted or j.path.resolve() in wanted]
        return store.retry_failed(keys)

    count = _with_store(out, options, requeue)
    out.info(f"requeued {count} failed job{'s' if count != 1 else ''}")


def _line_dict(line: CostLine) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Task) else v) for k, v in dataclasses.asdict(line).items()}


def _version(value: bool) -> None:
    if value:
        Console().print(f"whisperbatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """whisperbatch: recordings in, text and subtitles out, with what it cost."""


for _info in app.registered_commands:  # every command's help in plain words
    _info.cls = _Command


def main() -> None:
    """The `whisperbatch` command. Once a command has returned with every thread of its own finished,
    the process ends at once (`os._exit`, as mypy does): Python's teardown of the SDK's modules and
    objects takes some 0.14 s and frees nothing the system would not. Logs and output are flushed
    first; a thread still running (a library's own) gets the ordinary exit, which waits for it."""
    code: str | int | None = 0
    try:
        app()
    except SystemExit as e:
        code = e.code
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    if not isinstance(code, int):  # None is success; a message is printed and exits 1, as sys.exit does
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
