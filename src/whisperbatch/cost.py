"""Cost: usage into dollars, forecasts, and the per-folder `costs.csv`.

Prices come from the catalog (catalog.py: transcription, chat and local models, extendable in
config.toml); this module only does the arithmetic, so `estimate` and a real run
can never disagree about a price. A run is priced from the usage the servers reported: billed seconds
for per-minute models, tokens for token-billed ones; where a server reports nothing, from the seconds
uploaded (silences are skipped, so a run usually costs less than its estimate).
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterable
from dataclasses import astuple, fields
from pathlib import Path

from .catalog import ChatModelInfo, ModelInfo
from .errors import OutputError
from .models import NO_USAGE, CostLine, Task, Usage
from .writers import atomic_write_text

CSV_COLUMNS = tuple(f.name for f in fields(CostLine))
# Fixed decimals, so a spreadsheet never sees 8.6e-05.
_DECIMALS = {
    "audio_s": 3,
    "billed_min": 4,
    "usd_per_min": 4,
    "usd": 6,
    "api_equivalent_usd": 6,
    "transcribe_usd": 6,
    "translate_usd": 6,
}
_csv_lock = threading.Lock()

# Forecasting a translation's tokens from minutes of speech: speech runs at about 150 words a minute
# and a word is about 1.4 tokens once translated; a request sends the lines, their neighbours as
# context and the instructions (about 2.5x the lines), and the reply wraps each line in JSON.
WORDS_PER_MIN = 150
TOKENS_PER_WORD = 1.4
INPUT_PER_TEXT_TOKEN = 2.5
OUTPUT_PER_TEXT_TOKEN = 1.3


def price_hint(model: str, *, chat: bool = False) -> str:
    """What prices `model` when the tables do not: its `[models."NAME"]` setting in config.toml."""
    keys = "usd_per_m_input and usd_per_m_output" if chat else "usd_per_min"
    return f'set [models."{model}"] {keys} in config.toml'


def translation_forecast(minutes: float) -> Usage:
    text = minutes * WORDS_PER_MIN * TOKENS_PER_WORD
    return Usage(
        text_tokens=round(text * INPUT_PER_TEXT_TOKEN), output_tokens=round(text * OUTPUT_PER_TEXT_TOKEN)
    )


def transcribe_usd(info: ModelInfo, billed_s: float, usage: Usage) -> float | None:
    """Tokens at the model's token prices where the server reported tokens; else billed minutes; None
    when the model's price is not known."""
    if not info.price_known:
        return None
    prices = (info.usd_per_m_audio_tokens, info.usd_per_m_text_tokens, info.usd_per_m_output_tokens)
    tokens = usage.audio_tokens + usage.text_tokens + usage.output_tokens
    if tokens and all(p is not None for p in prices):
        audio, text, output = (p or 0.0 for p in prices)
        return round(
            (usage.audio_tokens * audio + usage.text_tokens * text + usage.output_tokens * output) / 1e6, 6
        )
    return round(billed_s / 60.0 * info.usd_per_min, 6)


def cost_line(
    file: str,
    *,
    audio_s: float,
    billed_s: float,
    engine: str,
    info: ModelInfo,
    task: Task,
    api_usd_per_min: float,
    usage: Usage = NO_USAGE,
    translator: ChatModelInfo | None = None,
    translate_to: str = "",
    translate_usage: Usage = NO_USAGE,
) -> CostLine:
    """One row. For the local engine transcription costs 0 and `api_equivalent_usd` prices the same
    minutes; a translation's cost is its own column. An amount whose price is unknown is None, and so
    is the sum it is part of."""
    billed_min = billed_s / 60.0
    transcribing = transcribe_usd(info, billed_s, usage)
    translating = None if translator is None else translator.usd(translate_usage)
    parts = (transcribing, translating if translator is not None else 0.0)
    return CostLine(
        file=file,
        audio_s=round(audio_s, 3),
        billed_min=round(billed_min, 4),
        engine=engine,
        model=info.name,
        usd_per_min=info.usd_per_min if info.price_known else None,
        usd=None if None in parts else round(sum(p or 0.0 for p in parts), 6),
        api_equivalent_usd=round(billed_min * api_usd_per_min, 6) if engine == "local" else transcribing,
        task=task,
        transcribe_usd=transcribing,
        transcribe_tokens=usage.audio_tokens + usage.text_tokens + usage.output_tokens,
        translate_model="" if translator is None else translator.name,
        translate_to=translate_to if translator is not None else "",
        translate_input_tokens=translate_usage.text_tokens,
        translate_output_tokens=translate_usage.output_tokens,
        translate_usd=translating if translator is not None else 0.0,
    )


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""  # a price not known
    if column in _DECIMALS and isinstance(value, float | int):
        return f"{value:.{_DECIMALS[column]}f}"
    return str(value)


def _migrated(path: Path) -> str | None:
    """An older costs.csv's rows under today's header (new columns empty; an old `usd` was all
    transcription), or None when the file is new, empty or current. Only the header is read unless
    the file needs rewriting."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), None)
            if header is None or tuple(header) == CSV_COLUMNS:
                return None
            fh.seek(0)
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OutputError(f"{path}: cannot read cost rows ({e.strerror or e})") from e
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        row.setdefault("transcribe_usd", row.get("usd", ""))
        writer.writerow(row.get(c) or "" for c in CSV_COLUMNS)
    return buf.getvalue()


def append_costs_csv(path: Path, lines: Iterable[CostLine]) -> None:
    """Append rows (with a header when the file is new) in one write, so readers never see half a row.
    A file written by an earlier version, with fewer columns, is first rewritten under today's header
    (atomically), so one file never mixes two layouts."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with _csv_lock:
        migrated = _migrated(path)
        new = migrated is None and (not path.exists() or path.stat().st_size == 0)
        if new:
            writer.writerow(CSV_COLUMNS)
        for line in lines:
            writer.writerow(_cell(k, v) for k, v in zip(CSV_COLUMNS, astuple(line), strict=True))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if migrated is not None:
                atomic_write_text(path, migrated + buf.getvalue())
                return
            with path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(buf.getvalue())
        except OSError as e:
            raise OutputError(f"{path}: cannot append cost rows ({e.strerror or e})") from e
