"""One temp folder per run, removed on every exit, and leftovers of killed runs removed at the next start.

Chunks, pieces asked about again, and any temp file a library writes all land here: while a run is
active, `tempfile.tempdir` points at its folder (the one lever that reaches temp files made by code
that takes no folder argument). Each folder is named after its process, so a later
run can tell a dead run's leftovers from a live run's work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _root() -> Path:
    """`$TMPDIR/whisperbatch-<uid>`, private to the user."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    root = Path(tempfile.gettempdir()) / f"whisperbatch-{uid}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def pid_alive(pid: int) -> bool:
    """Whether a process of this host runs under `pid` (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def remove_leftovers(root: Path) -> list[Path]:
    """Remove the folders of runs whose process is gone; returns what was removed."""
    removed = []
    for folder in root.iterdir():
        pid_text = folder.name.partition("-")[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """The run's temp folder: every temp file of the process goes here until the run ends."""
    root = _root()
    remove_leftovers(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    previous, tempfile.tempdir = tempfile.tempdir, str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        remove(folder)


def remove(folder: Path) -> None:
    """Remove a run's temp folder and everything in it (also called by a run that must exit at once)."""
    shutil.rmtree(folder, ignore_errors=True)
