"""One check's result, shared by the checks and whoever shows them (the CLI, the web page)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One thing a run needs: `detail` is what was found; `fix` says what to do when it is not `ok`."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
