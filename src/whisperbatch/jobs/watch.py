"""`watch`: settled files in a folder become jobs; workers (unless `--no-work`) run them. The watcher's
guarantees (once per content, restarts, half-copied files) come from admission and `watcher.py`."""

from __future__ import annotations

from pathlib import Path

from .. import writers
from ..errors import WhisperbatchError
from ..watcher import FolderWatcher, is_candidate
from .runner import JobRunner


class Service:
    """`watch`: settled files in a folder become jobs; workers (unless `--no-work`) run them."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        root: Path,
        settle_s: float,
        rescan_s: float,
        recursive: bool = False,
        polling: bool = False,
        force: bool = False,
        once: bool = False,
    ) -> None:
        self.runner = runner
        self.root = root
        self.recursive = recursive
        self.force = force
        self.out_dir = runner.outputs.options.out_dir  # the run's own output folder (None: beside each)
        self.watcher = FolderWatcher(
            root, settle_s=settle_s, recursive=recursive, polling=polling, rescan_s=rescan_s
        )
        # --once: a file still changing this long after it was found is reported, not waited for.
        self.give_up_s = max(30.0, 5 * settle_s) if once else None
        self.unsettled: list[Path] = []
        self.working = True

    def start(self, *, work: bool = True) -> None:
        """Raises UnwritableOutput, before watching, when outputs could not be written."""
        writers.check_writable(self.out_dir or self.root)
        self.watcher.start()
        if not self.recursive:
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and is_candidate(p)):
                self.runner.say(f"{folder}: a folder, not a recording; skipped (--recursive looks inside)")
        self.working = work
        if work:
            self.runner.start()

    def tick(self) -> None:
        """Admit whatever has settled; called regularly by `serve`."""
        ready = self.watcher.poll()
        if ready:
            # With --out-dir, recordings anywhere in the tree share one folder: one walk per batch.
            tree = list(self.watcher.files()) if self.out_dir else []
            self.runner.outputs.plan(ready, tree)
        for path in ready:
            try:
                self.runner.admission.admit(path, force=self.force)
            except WhisperbatchError as e:
                self.runner.say(f"{e}, skipped")
        if self.give_up_s is not None:
            for path in self.watcher.tracker.give_up(self.give_up_s):
                self.unsettled.append(path)
                self.runner.say(
                    f"failed: {path}: still being written after {self.give_up_s:.0f} s, not taken"
                )

    def settled(self) -> bool:
        """Nothing settling, and (unless only enqueueing) nothing running or runnable queued (for --once)."""
        return not self.watcher.tracker.pending and (not self.working or self.runner.idle())

    def stop(self) -> None:
        self.watcher.stop()
