"""Cost estimates and the per-folder `costs.csv`.

Prices come from the model table (engines/base.py, extendable in config.toml); this module only does
the arithmetic, so `estimate` and a real run can never disagree about a price. Billed minutes are
the seconds actually uploaded (silences are skipped), so a run usually costs less than its estimate.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterable
from dataclasses import astuple, fields
from pathlib import Path

from .engines.base import ModelInfo
from .errors import OutputError
from .models import CostLine, Task

CSV_COLUMNS = tuple(f.name for f in fields(CostLine))
# Fixed decimals, so a spreadsheet never sees 8.6e-05.
_DECIMALS = {"audio_s": 3, "billed_min": 4, "usd_per_min": 4, "usd": 6, "api_equivalent_usd": 6}
_csv_lock = threading.Lock()


def cost_line(
    file: str,
    *,
    audio_s: float,
    billed_s: float,
    engine: str,
    info: ModelInfo,
    task: Task,
    api_usd_per_min: float,
) -> CostLine:
    """One row. For the local engine `usd` is 0 and `api_equivalent_usd` prices the same minutes."""
    billed_min = billed_s / 60.0
    usd = round(billed_min * info.usd_per_min, 6)
    return CostLine(
        file=file,
        audio_s=round(audio_s, 3),
        billed_min=round(billed_min, 4),
        engine=engine,
        model=info.name,
        usd_per_min=info.usd_per_min,
        usd=usd,
        api_equivalent_usd=round(billed_min * api_usd_per_min, 6) if engine == "local" else usd,
        task=task,
    )


def append_costs_csv(path: Path, lines: Iterable[CostLine]) -> None:
    """Append rows (with a header when the file is new) in one write, so readers never see half a row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with _csv_lock:
        new = not path.exists() or path.stat().st_size == 0
        if new:
            writer.writerow(CSV_COLUMNS)
        for line in lines:
            writer.writerow(
                f"{v:.{_DECIMALS[k]}f}" if k in _DECIMALS else str(v)
                for k, v in zip(CSV_COLUMNS, astuple(line), strict=True)
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8", newline="") as fh:
                fh.write(buf.getvalue())
        except OSError as e:
            raise OutputError(f"{path}: cannot append cost rows ({e.strerror or e})") from e
