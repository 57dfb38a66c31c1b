"""The options commands share, declared once: each command names the ones it takes and receives them
as one `Options` record, so a flag is spelled, documented and mapped to its setting in one place, and a
command's own signature stays its own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand


class HelpCommand(TyperCommand):
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
FLAG_NAMES = {field: "--" + name.replace("_", "-") for name, (_, _, field) in _OPTIONS.items() if field}


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


TaskOpt = Annotated[str, typer.Option("--task", metavar="TASK", help="transcribe | translate.")]
