"""A recording is its content: its SHA-256 names its job, and a file that no longer holds that content
(changed while it was transcribed) gets no outputs from it. Hashing is skipped where the store has seen
this very version of the file (`Version`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import AudioError, SourceChanged
from ..store import Job, JobStore


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Version:
    """What tells one version of a file from the next without reading it: a write changes its size,
    mtime or ctime, and a file renamed over it has another inode."""

    dev: int = 0
    inode: int = 0
    size_bytes: int = -1
    mtime_ns: int = 0
    ctime_ns: int = 0

    @classmethod
    def of(cls, st: os.stat_result) -> Version:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def holds(store: JobStore, job: Job, changed: str, *, unless: Version | None = None) -> Version:
    """The version of the file at job's path (stat facts that change when its bytes do), after making
    sure it holds job's recording: hashed again unless it is `unless` (the version checked before), or
    a version hashed before. A file gone meanwhile is not checked (what was decoded was whole). Raises
    SourceChanged with `changed` as the reason."""
    try:
        st = job.path.stat()
    except FileNotFoundError:
        return unless or Version()
    version = Version.of(st)
    if version == unless or store.seen(job.path, st.st_size, st.st_mtime_ns) == job.content_sha256:
        return version
    try:
        sha = file_sha256(job.path)
    except OSError as e:
        raise AudioError(job.path, f"cannot read ({e.strerror or e})") from e
    if sha != job.content_sha256:
        raise SourceChanged(job.path, changed)
    return version
