"""`keys`: the keys `serve` accepts (`create`, `list`, `revoke`).

A key is shown once, when it is made, and kept only as its hash: a lost key is revoked and replaced,
never recovered.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from ..server.keys import create_key
from ..store import JobStore
from .options import STORE, Options, taking
from .output import Output
from .wiring import with_store

app = typer.Typer(
    name="keys",
    help="Keys for `serve`: clients send one as `Authorization: Bearer wb_…`.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("create", cls=taking(*STORE))
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what the key is for.")],
) -> None:
    """Make a key and print it, once."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    key = with_store(out, options, lambda store: create_key(store, name))
    out.info(f'key "{name.strip()}" made; it is shown this once (only its hash is kept):')
    out.out.print(key, markup=False)


@app.command("list", cls=taking(*STORE))
def list_keys(ctx: typer.Context) -> None:
    """The keys, live and revoked (the first characters of each, never the key)."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)
    keys = with_store(out, options, lambda store: store.api_keys())
    if not keys:
        out.info("no keys (whisperbatch keys create NAME makes one)")
        return
    table = Table("name", "key", "created", "revoked")
    for key in keys:
        revoked = "" if key.revoked_at is None else f"{key.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(key.name, key.prefix + "…", f"{key.created_at:%Y-%m-%d %H:%M}", revoked)
    out.out.print(table)


@app.command("revoke", cls=taking(*STORE))
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The key's name.")],
) -> None:
    """Refuse a key from now on (its page sessions end too)."""
    options = Options.of(ctx)
    out = Output(quiet=options.quiet, verbose=options.verbose)

    def revoke_in(store: JobStore) -> None:
        if not store.revoke_key(name.strip()):
            raise ConfigError(f'no live key named "{name.strip()}"')

    with_store(out, options, revoke_in)
    out.info(f'key "{name.strip()}" revoked')
