"""`estimate`: the forecast of what a run would bill (whisperbatch.estimate), as a table with the notes
that say how it was reached. Reads files locally; sends nothing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .. import audio, cost
from ..catalog import current_date
from ..errors import WhisperbatchError
from ..estimate import Estimate, Forecast, estimate, measure_files, pricing
from ..inputs import collect_inputs
from .options import Options, Paths
from .output import Output, duration, fail, usd
from .wiring import EXIT_FAILED, settings


def estimate_command(
    ctx: typer.Context,
    paths: Paths,
    quick: Annotated[
        bool, typer.Option("--quick", help="Durations only: an upper bound, without speech detection.")
    ] = False,
) -> None:
    """Forecast billed minutes and dollars per file and in total, transcription and (with --to)
    translation, from the speech detection a run uses. Reads files locally; sends nothing."""
    options = Options.of(ctx)
    out = Output()
    try:
        s = settings(options)
        ffmpeg = audio.find_ffmpeg()
        today = current_date()
    except WhisperbatchError as e:
        raise fail(out, e) from None
    translation = s.translation_options() if options.flags.get("translate_to") else None
    prices = pricing(s.engine_options(), translation, today)
    inputs = collect_inputs(paths)
    for missing in inputs.missing:
        out.error(f"{missing}: no such file or folder")
    measure = measure_files(s.cut_options(), prices.model, ffmpeg=ffmpeg, quick=quick)
    result = estimate(inputs.files, prices, measure)
    for error in result.errors:
        out.error(str(error))
    out.out.print(_table(result))
    _notes(out, result, quick=quick)
    if inputs.missing or result.errors:
        raise typer.Exit(EXIT_FAILED)


def _table(result: Estimate) -> Table:
    info, chat = result.pricing.model, result.pricing.chat
    price = f"${info.usd_per_min:.4f}/min" if info.price_known else "an unknown price"
    title = f"Estimate for {info.name} at {price}"
    if chat is not None:
        title += f", translated into {result.pricing.translate_to} by {chat.name}"
    table = Table(title=title, title_justify="left")
    money = ("Transcription USD", "Translation tokens", "Translation USD") if chat else ()
    for col in ("File", "Duration", "Billed min", *money, "USD"):
        table.add_column(col, justify="left" if col == "File" else "right")
    for row in result.files:
        table.add_row(str(row.path), *_cells(row.forecast))
    table.add_row("Total", *_cells(result.total), style="bold")
    return table


def _cells(f: Forecast) -> list[str]:
    if f.translation_tokens is None:
        return [duration(f.duration_s), f"{f.billed_min:.2f}", usd(f.transcribe_usd)]
    tokens = f.translation_tokens
    return [
        duration(f.duration_s),
        f"{f.billed_min:.2f}",
        usd(f.transcribe_usd),
        f"{tokens.text_tokens} in, {tokens.output_tokens} out",
        usd(f.translate_usd),
        usd(f.usd),
    ]


def _notes(out: Output, result: Estimate, *, quick: bool) -> None:
    info, chat = result.pricing.model, result.pricing.chat
    if not info.price_known:
        out.info(f"no price is known for {info.name}: {cost.price_hint(info.name)}")
    if chat is not None and not chat.price_known:
        out.info(f"no price is known for {chat.name}: {cost.price_hint(chat.name, chat=True)}")
    if chat is not None:
        out.info(
            f"translation tokens are forecast from {cost.WORDS_PER_MIN} words a minute of speech; "
            "the run records what the chat server reports"
        )
    if result.pricing.local:
        out.info("engine local: transcription costs $0; the figures are what the API would bill")
    if quick:
        out.info("--quick: every second of each recording counted, an upper bound (silences are not billed)")
    else:
        out.info("minutes: the speech a run would upload, found the way a run finds it (silences skipped)")
