"""Golden files: a writer's whole output compared byte for byte with the file under golden/.
`UPDATE_GOLDEN=1 pytest tests/unit` writes them anew from the current writers (review the diff)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def render(writer: Callable[[io.StringIO], None]) -> str:
    buffer = io.StringIO()
    writer(buffer)
    return buffer.getvalue()


def check(name: str, writer: Callable[[io.StringIO], None]) -> None:
    actual = render(writer)
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8", newline="")
    assert actual == golden.read_text(encoding="utf-8")
