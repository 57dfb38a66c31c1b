"""Turn command-line arguments (files, folders, globs) into the list of recordings to process.

A file named explicitly is always tried, whatever its extension, so a mislabelled file gets a clear
"not audio" error rather than silence; inside folders only audio extensions are taken, which also
keeps our own outputs (.txt, .srt, …) out of the batch.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_SUFFIXES


@dataclass(frozen=True)
class Inputs:
    files: tuple[Path, ...]
    missing: tuple[str, ...]  # arguments that matched nothing


def _audio_in(folder: Path) -> list[Path]:
    """Audio files in a folder tree; broken links with audio names too, so they are reported."""
    return sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists()))
        and p.suffix.lower() in AUDIO_SUFFIXES
        and not p.name.startswith(".")
    )


def _real(path: Path) -> Path:
    """The file a path names, to tell the same file named twice; a link loop names no file, so it
    stands for itself (and is reported when it is read)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python before 3.13 on a link loop
        return path.absolute()


def collect_inputs(args: Sequence[str]) -> Inputs:
    files: list[Path] = []
    missing: list[str] = []
    for arg in args:
        path = Path(arg).expanduser()
        if path.is_dir():
            files.extend(_audio_in(path))
        elif path.exists() or path.is_symlink():  # a broken link is reported as one
            files.append(path)
        elif glob.has_magic(arg):
            matched = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            for m in matched:
                files.extend(_audio_in(m) if m.is_dir() else [m])
            if not matched:
                missing.append(arg)
        else:
            missing.append(arg)
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = _real(f)
        if key not in seen:
            seen.add(key)
            unique.append(f.absolute())  # jobs keep the path, for workers started anywhere
    return Inputs(tuple(unique), tuple(missing))


def namesakes(path: Path) -> list[Path]:
    """Other recordings beside `path` with the same stem (`talk.webm` for `talk.mp3`): their outputs
    would share names with its own."""
    try:
        return sorted(
            p
            for p in path.parent.glob(glob.escape(path.stem) + ".*")
            if p != path and p.stem == path.stem and p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
        )
    except OSError:
        return []
