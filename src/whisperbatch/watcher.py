"""Notice recordings that have finished arriving in a folder.

Why so careful: watchdog's `created` fires before any data is written, a copy over a network share
can take minutes, and programs often write `x.part` and rename it at the end. So events only make a
file a *candidate*; it is taken once its size and mtime have held still for `settle_s`. Files already
there at start produce no events at all, so the observer is started first and the folder scanned
after (a file arriving in between is seen twice and settles once); a periodic rescan catches what a
flaky mount's events missed. `--polling` swaps inotify for stat polling on NFS, SMB and container
mounts, where inotify sees nothing. watchdog 7's `patterns=` matches nothing, so suffixes are checked here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .audio import AUDIO_SUFFIXES

PARTIAL_SUFFIXES = frozenset({".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".filepart"})


def is_candidate(path: Path) -> bool:
    """An audio file that is not hidden, not a temp name and not one of our outputs."""
    name = path.name
    if name.startswith((".", "~")):
        return False
    if any(s.lower() in PARTIAL_SUFFIXES for s in path.suffixes):
        return False
    return path.suffix.lower() in AUDIO_SUFFIXES


@dataclass
class _Watch:
    size_bytes: int
    mtime_ns: int
    stable_since: float
    first_seen: float


class SettleTracker:
    """Hands out a path once its size and mtime have stayed the same for `settle_s` across polls."""

    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.clock = clock
        self._watching: dict[Path, _Watch] = {}
        self._handled: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def touch(self, path: Path) -> None:
        """Something happened to `path`: (re)start its settle clock if it changed, unless this version was
        handled. A file seen again as it was (a rescan, an event that wrote nothing) keeps its clock, or
        rescans as often as the settle time would keep it waiting for ever."""
        try:
            st = path.stat()
        except OSError:
            return
        version = (st.st_size, st.st_mtime_ns)
        with self._lock:
            watched = self._watching.get(path)
            if watched is None and self._handled.get(path) == version:
                return
            if watched is not None and (watched.size_bytes, watched.mtime_ns) == version:
                return
            seen = watched.first_seen if watched is not None else self.clock()
            self._watching[path] = _Watch(st.st_size, st.st_mtime_ns, self.clock(), seen)

    def poll(self) -> list[Path]:
        now = self.clock()
        ready: list[Path] = []
        with self._lock:
            for path, w in list(self._watching.items()):
                try:
                    st = path.stat()
                except OSError:
                    del self._watching[path]  # moved away or deleted before it settled
                    continue
                if (st.st_size, st.st_mtime_ns) != (w.size_bytes, w.mtime_ns):
                    self._watching[path] = _Watch(st.st_size, st.st_mtime_ns, now, w.first_seen)
                elif now - w.stable_since >= self.settle_s:  # an empty file too: it fails, said
                    del self._watching[path]
                    self._handled[path] = (st.st_size, st.st_mtime_ns)
                    ready.append(path)
        return sorted(ready)

    def give_up(self, after_s: float) -> list[Path]:
        """Stop waiting for files that have kept changing for `after_s` since first seen (`--once`)."""
        now = self.clock()
        with self._lock:
            stale = sorted(p for p, w in self._watching.items() if now - w.first_seen >= after_s)
            for path in stale:
                del self._watching[path]
        return stale

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._watching)


class _Handler(FileSystemEventHandler):
    def __init__(self, tracker: SettleTracker) -> None:
        self.tracker = tracker

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "closed", "moved"):
            return
        raw = event.dest_path if event.event_type == "moved" else event.src_path
        path = Path(os.fsdecode(raw))
        if is_candidate(path):
            self.tracker.touch(path)


class FolderWatcher:
    """Events plus scans feeding a SettleTracker; call `poll()` regularly to collect settled files."""

    def __init__(
        self,
        root: Path,
        *,
        settle_s: float,
        recursive: bool = False,
        polling: bool = False,
        rescan_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.recursive = recursive
        self.tracker = SettleTracker(settle_s, clock)
        self.rescan_s = rescan_s
        self.clock = clock
        self._observer: BaseObserver = PollingObserver(timeout=1.0) if polling else Observer()
        self._observer.schedule(_Handler(self.tracker), str(root), recursive=recursive)
        self._last_scan = 0.0

    def start(self) -> None:
        self._observer.start()
        self.scan()

    def scan(self) -> None:
        for path in self.files():
            self.tracker.touch(path)
        self._last_scan = self.clock()

    def files(self) -> Iterator[Path]:
        """The recordings in the folder now."""
        if self.recursive:
            for folder, dirs, names in os.walk(self.root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                yield from (Path(folder) / n for n in names if is_candidate(Path(n)))
        else:
            yield from (p for p in self.root.iterdir() if p.is_file() and is_candidate(p))

    def poll(self) -> list[Path]:
        if self.clock() - self._last_scan >= self.rescan_s:
            self.scan()
        return self.tracker.poll()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
