"""The options commands share, declared once in a table: each command's class (`taking(*names)`) adds
the ones it takes to the click command after the command's own, and hands them to it as one `Options`
record in the context, so a flag is spelled, documented and mapped to its setting in one place and a
command's function declares only its own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption
from typer.main import _get_param
from typer.models import ParamMeta


@dataclass(frozen=True)
class SharedOption:
    """How a shared option is spelled and shown, its value's type and default, and the Settings field
    it sets (None: it steers the command itself)."""

    flags: tuple[str, ...]
    metavar: str | None
    type: Any
    field: str | None
    help: str
    default: Any = None

    def param(self, name: str) -> TyperOption | TyperArgument:
        """The click parameter, built by typer as for a parameter `name` declared in a signature, so
        values convert and bad ones are reported as for the command's own options."""
        info = typer.Option(self.default, *self.flags, metavar=self.metavar, help=self.help)
        return _get_param(ParamMeta(name=name, default=info, annotation=self.type))


_CONCURRENCY_HELP = "Requests at once (API; default 8), or files (local engine; default 2)."
_DATABASE_HELP = "Job store: postgresql://… URL or SQLite file (default: in the home)."
# Command parameter -> the option; in the order help lists them.
_OPTIONS: dict[str, SharedOption] = {
    "engine": SharedOption(("--engine",), "ENGINE", str | None, "engine", "auto | openai | local."),
    "model": SharedOption(
        ("--model",), "NAME", str | None, "model", "API model, or local model name/folder."
    ),
    "language": SharedOption(
        ("--language",), "CODE", str | None, "language", "Spoken language code, e.g. en, de."
    ),
    "prompt": SharedOption(("--prompt",), "TEXT", str | None, "prompt", "Words to steer spelling and style."),
    "format": SharedOption(
        ("--format", "-f"), "FORMATS", str | None, "format", "txt,srt,vtt,json,rttm or all."
    ),
    "out_dir": SharedOption(("--out-dir", "-o"), "DIR", Path | None, "out_dir", "Write outputs here."),
    "concurrency": SharedOption(("--concurrency", "-j"), "N", int | None, "concurrency", _CONCURRENCY_HELP),
    "budget": SharedOption(
        ("--budget",), "USD", float | None, "budget_usd", "Stop before spending more USD."
    ),
    "base_url": SharedOption(("--base-url",), "URL", str | None, "base_url", "OpenAI-compatible server URL."),
    "max_line_width": SharedOption(
        ("--max-line-width",), "N", int | None, "max_line_width", "Subtitle line length (42)."
    ),
    "max_line_count": SharedOption(
        ("--max-line-count",), "N", int | None, "max_line_count", "Lines per subtitle cue (2)."
    ),
    "max_words_per_line": SharedOption(
        ("--max-words-per-line",),
        "N",
        int | None,
        "max_words_per_line",
        "Words per subtitle line (no limit).",
    ),
    "to": SharedOption(
        ("--to",), "LANG", str | None, "translate_to", "Translate into this language (default en)."
    ),
    "translate_model": SharedOption(
        ("--translate-model",), "NAME", str | None, "translate_model", "Chat model that translates."
    ),
    "diarize": SharedOption(
        ("--diarize/--no-diarize",),
        None,
        bool | None,
        "diarize",
        "Label speakers (offline, after the transcript).",
    ),
    "num_speakers": SharedOption(
        ("--num-speakers",), "N", int | None, "num_speakers", "Exactly this many speakers (with --diarize)."
    ),
    "min_speakers": SharedOption(
        ("--min-speakers",), "N", int | None, "min_speakers", "At least this many speakers."
    ),
    "max_speakers": SharedOption(
        ("--max-speakers",), "N", int | None, "max_speakers", "At most this many speakers."
    ),
    "database": SharedOption(("--database",), "URL", str | None, "database", _DATABASE_HELP),
    "config": SharedOption(("--config",), "FILE", Path | None, None, "config.toml to use."),
    "quiet": SharedOption(("--quiet", "-q"), None, bool, None, "Only errors.", default=False),
    "verbose": SharedOption(("--verbose", "-v"), None, bool, None, "Say more, per chunk.", default=False),
}
# What each kind of command takes.
COMMON = ("config", "quiet", "verbose")
RUN = tuple(_OPTIONS)
TRANSLATING = ("to", "translate_model")
TRANSCRIBING = tuple(n for n in RUN if n not in TRANSLATING)
WORKER = ("engine", "model", "concurrency", "budget", "base_url", "database", *COMMON)
STORE = ("database", *COMMON)

# Settings field -> the option that sets it, for messages about a bad value.
FLAG_NAMES = {o.field: o.flags[0] for o in _OPTIONS.values() if o.field}
_META_KEY = "whisperbatch.options"


@dataclass(frozen=True)
class Options:
    """The shared options a command was given: Settings fields, and how to talk."""

    flags: dict[str, Any]
    config: Path | None
    quiet: bool
    verbose: bool

    @staticmethod
    def of(ctx: typer.Context) -> Options:
        """The record the command running in `ctx` was given (its class put it there)."""
        options = ctx.meta[_META_KEY]
        assert isinstance(options, Options)
        return options


class HelpCommand(TyperCommand):
    """A command with the shared options `shared` after its own, whose help names each value by what
    it is (`PATH...`, `--budget USD`), never by its Python type: typer prints an argument's annotation
    beside it (`PATH <list[str]>`) even when it has a metavar, so arguments are listed here by their
    metavar alone. Options carry theirs."""

    shared: tuple[str, ...] = ()

    def __init__(self, name: str | None, *, params: list[Any] | None = None, **kwargs: Any) -> None:
        own = params or []
        clash = {p.name for p in own} & set(self.shared)
        assert not clash, f"{name}: own parameters {clash} shadow shared options"
        super().__init__(name, params=[*own, *(_OPTIONS[n].param(n) for n in self.shared)], **kwargs)

    def invoke(self, ctx: Any) -> Any:
        """Take the shared options' values out of the command's arguments and into one record."""
        given = {n: ctx.params.pop(n) for n in self.shared}
        flags = {field: given[n] for n in self.shared if (field := _OPTIONS[n].field) is not None}
        options = Options(flags, given.get("config"), bool(given.get("quiet")), bool(given.get("verbose")))
        ctx.meta[_META_KEY] = options
        return super().invoke(ctx)

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


def taking(*names: str) -> type[HelpCommand]:
    """The command class for a command that takes the shared options `names`, in the order given."""

    class Command(HelpCommand):
        shared = names

    return Command


Paths = Annotated[
    list[str], typer.Argument(metavar="PATH", help="Files, folders (searched recursively) or globs.")
]
TaskOpt = Annotated[str, typer.Option("--task", metavar="TASK", help="transcribe | translate.")]
