"""`voices`: the registered voices a recording's speakers are named by (`add`, `list`, `remove`).

A voice lives in the store, not in a file beside the recordings, so every host of a shared PostgreSQL
store labels the same people by the same names. `add` checks the clip and the name before working out
the voiceprint, so a typo costs no decoding.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from .. import audio
from ..errors import ConfigError
from ..store import JobStore
from .options import STORE, Options, taking
from .output import Output, fail
from .wiring import with_store

app = typer.Typer(
    name="voices",
    help="Registered voices: speakers whose voice matches one are labelled with its name.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _named(name: str) -> str:
    return f'"{name}"'


def _name(out: Output, name: str) -> str:
    """The name as given, less surrounding spaces; one that a label could not tell apart from an
    unnamed speaker's ("Speaker 2") is refused."""
    name = name.strip()
    if not name:
        raise fail(out, ConfigError("a voice needs a name"))
    if re.fullmatch(r"Speaker \d+", name):
        raise fail(
            out, ConfigError(f"{_named(name)} is how unnamed speakers are labelled: choose another name")
        )
    return name


def _taken(name: str) -> ConfigError:
    return ConfigError(f"a voice named {_named(name)} is registered already: add --replace to replace it")


@app.command("add", cls=taking(*STORE))
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name to label this voice with.")],
    clip: Annotated[Path, typer.Argument(metavar="CLIP", help="A recording of this person alone speaking.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the voice registered under this name.")
    ] = False,
) -> None:
    """Register a voice from a clip of the person speaking (10 seconds or more is best)."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    name = _name(out, name)
    if not clip.is_file():
        raise fail(out, ConfigError(f"{clip}: {'not a file' if clip.exists() else 'no such file'}"))

    def register(store: JobStore) -> bool:
        existed = any(v.name == name for v in store.voices())
        if existed and not replace:
            raise _taken(name)
        from ..speakers import voiceprint

        embedding = voiceprint(clip, ffmpeg=audio.find_ffmpeg())
        if not store.add_voice(name, embedding, clip.name, replace=replace):
            raise _taken(name)  # registered by another host while the voiceprint was worked out
        return existed

    replaced = with_store(out, options, register)
    out.info(f"{'replaced' if replaced else 'added'} voice {_named(name)} from {clip.name}")


@app.command("list", cls=taking(*STORE))
def list_voices(ctx: typer.Context) -> None:
    """The registered voices: name, the clip each was registered from, and when."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    voices = with_store(out, options, lambda store: store.voices())
    if not voices:
        out.out.print("no voices registered")
        return
    table = Table(title=f"{len(voices)} voice{'s' if len(voices) != 1 else ''}", title_justify="left")
    for col in ("Name", "Clip", "Added"):
        table.add_column(col)
    for voice in voices:
        added = voice.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(Text(voice.name), Text(voice.source), added)
    out.out.print(table)


@app.command("remove", cls=taking(*STORE))
def remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The voice to forget.")],
) -> None:
    """Forget a registered voice: recordings labelled from now on call that speaker "Speaker N"."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    name = name.strip()
    if not with_store(out, options, lambda store: store.remove_voice(name)):
        raise fail(out, ConfigError(f"no voice named {_named(name)}"))
    out.info(f"removed voice {_named(name)}")
