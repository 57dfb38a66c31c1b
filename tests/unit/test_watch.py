"""Which files the watcher takes, and when a file being written has settled."""

from __future__ import annotations

from pathlib import Path

from whisperbatch.watcher import SettleTracker, is_candidate


def test_candidates_and_settling() -> None:
    assert is_candidate(Path("a/talk.M4A"))
    for name in (
        "talk.m4a.part",
        ".talk.m4a",
        "talk.mp3.crdownload",
        "talk.tmp",
        "talk.txt",
        "talk.srt",
        "~talk.wav",
        "talk.m4a.error.txt",
    ):
        assert not is_candidate(Path(name)), name


def test_settle_tracker_waits_for_stillness(tmp_path: Path) -> None:
    now = [0.0]
    tracker = SettleTracker(2.0, clock=lambda: now[0])
    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    tracker.touch(f)
    now[0] = 1.5
    assert tracker.poll() == []
    f.write_bytes(b"xy")  # still growing: the clock starts again
    assert tracker.poll() == []
    now[0] = 3.0
    assert tracker.poll() == []
    now[0] = 3.6
    assert tracker.poll() == [f]
    tracker.touch(f)  # the same version again (a rescan): not handed out twice
    now[0] = 10.0
    assert tracker.poll() == []


def test_a_file_seen_again_unchanged_keeps_its_settle_clock(tmp_path: Path) -> None:
    """Rescans as frequent as the settle time (each touching a waiting file) never hold it back."""
    now = [0.0]
    tracker = SettleTracker(1.0, clock=lambda: now[0])
    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    tracker.touch(f)
    for step in (0.5, 1.0):
        now[0] = step
        tracker.touch(f)  # a rescan: the same size and mtime
    assert tracker.poll() == [f]
