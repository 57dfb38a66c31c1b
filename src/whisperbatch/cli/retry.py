"""`retry`: requeues failed jobs, all or those of the recordings named."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..models import JobState
from ..store import JobStore
from .options import Options
from .output import Output
from .wiring import with_store


def retry(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(metavar="PATH", help="Failed recordings to requeue (default: all).")
    ] = None,
) -> None:
    """Requeue failed jobs; a running watcher or worker picks them up."""
    options = Options.of(ctx)
    out = Output()

    def requeue(store: JobStore) -> int:
        keys = None
        if paths:
            wanted = {Path(p).absolute() for p in paths} | {Path(p).resolve() for p in paths}
            failed = store.jobs(JobState.FAILED)
            keys = [j.key for j in failed if j.path in wanted or j.path.resolve() in wanted]
        return store.retry_failed(keys)

    count = with_store(out, options, requeue)
    out.info(f"requeued {count} failed job{'s' if count != 1 else ''}")
