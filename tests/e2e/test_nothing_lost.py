"""Nothing lost, nothing billed for nothing: recordings that share a name keep their own transcripts,
every run ends with every file accounted for, and an interrupted run says what it left, cleans up and
puts what it spent in the ledger."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, SAMPLES, assemble, copy_sample, reencode, run_cli, small_disk
from whisperbatch.testing import FakeOpenAI, delay, rate_limit


@pytest.fixture(scope="module")
def asr() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        yield server


@pytest.fixture()
def asr_env(env: dict[str, str], asr: FakeOpenAI) -> dict[str, str]:
    return {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": asr.base_url}


def _said(path: Path) -> str:
    return path.read_text().lower()


def test_recordings_sharing_a_name_keep_their_own_transcripts(
    asr_env: dict[str, str], tmp_path: Path, ffmpeg: str
) -> None:
    # Different speech under one stem: "good morning everyone..." and "the quick brown fox...".
    folder = tmp_path / "in"
    morning = copy_sample("morning.mp3", folder, "a.mp3")
    fox = reencode("fox.wav", folder / "a.webm", ffmpeg)
    r = run_cli(["transcribe", str(folder)], asr_env)
    assert r.code == 0, r.output
    assert "morning" in _said(folder / "a.mp3.txt") and "lazy" not in _said(folder / "a.mp3.txt")
    assert "lazy" in _said(folder / "a.webm.txt") and "morning" not in _said(folder / "a.webm.txt")
    assert not (folder / "a.txt").exists()
    assert r.stderr.count("share a name") == 1, r.stderr
    # A later run of one of them alone picks the same names: it cannot overwrite the other's.
    r = run_cli(["transcribe", str(morning), "--force"], asr_env)
    assert r.code == 0 and not (folder / "a.txt").exists()
    assert "lazy" in _said(folder / "a.webm.txt")

    # --out-dir flattens folders: the same file name from two folders keeps the folder apart.
    x = copy_sample("morning.mp3", tmp_path / "x", "talk.mp3")
    y = reencode("fox.wav", tmp_path / "y" / "talk.mp3", ffmpeg)
    out = tmp_path / "out"
    r = run_cli(["transcribe", str(x), str(y), "-o", str(out)], asr_env)
    assert r.code == 0, r.output
    assert "morning" in _said(out / "x" / "talk.mp3.txt")
    assert "lazy" in _said(out / "y" / "talk.mp3.txt")
    assert sorted(p.name for p in out.iterdir()) == ["costs.csv", "x", "y"]

    # The watcher names them apart the same way.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(morning, inbox / "a.mp3")
    shutil.copy(fox, inbox / "a.webm")
    r = run_cli(["watch", str(inbox), "--once"], {**asr_env, "WHISPERBATCH_SETTLE_S": "0.5"}, timeout=120)
    assert r.code == 0, r.output
    assert "morning" in _said(inbox / "a.mp3.txt") and "lazy" in _said(inbox / "a.webm.txt")
    assert not (inbox / "a.txt").exists()


def test_watch_once_ends_with_every_bad_file_reported(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    good = [copy_sample("talk.m4a", inbox), copy_sample("morning.mp3", inbox)]
    (inbox / "empty.mp3").write_bytes(b"")
    (inbox / "notes.wav").write_text("not audio at all\n" * 50)
    (inbox / "x.wav").mkdir()
    env = {**api_env, "WHISPERBATCH_SETTLE_S": "0.5"}
    r = run_cli(["watch", str(inbox), "--once"], env, timeout=60)  # a hang fails the test
    assert r.code == 1, r.output
    assert "Traceback" not in r.output
    lines = r.output.splitlines()
    assert any("failed: " in ln and "empty.mp3: empty file (0 bytes)" in ln for ln in lines), r.output
    assert any("failed: " in ln and "notes.wav: not a readable audio file" in ln for ln in lines)
    assert any("x.wav: a folder, not a recording" in ln for ln in lines)
    for path in good:
        assert path.with_suffix(".txt").read_text().strip()
    assert len(fake_openai.successful) == 2
    assert (inbox / "empty.mp3.error.txt").exists() and (inbox / "notes.wav.error.txt").exists()


def test_watch_checks_its_output_folder_before_it_starts(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # (one-off runs: test_bad_inputs.test_out_dir_that_is_not_a_folder_exits_2)
    source = copy_sample("talk.m4a", tmp_path / "in")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = run_cli(["watch", str(source.parent), "--once", "-o", str(blocker)], api_env)
    assert r.code == 2 and "outputs cannot be written there (not a folder)" in r.stderr
    assert fake_openai.count == 0


class _Run:
    """A one-off run in the background, against a server whose second answer never comes in time. Its
    grace period is 1 s: requests still in flight after a stop are given up that long after it."""

    def __init__(self, files: list[Path], env: dict[str, str], tmp: Path) -> None:
        self.tmpdir = tmp / "tmpdir"
        self.tmpdir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "whisperbatch", "transcribe", "-j", "1", *map(str, files)],
            env={**env, "TMPDIR": str(self.tmpdir), "WHISPERBATCH_SHUTDOWN_GRACE_S": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, timeout: float) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def scratch(self) -> list[Path]:
        return [p for root in self.tmpdir.iterdir() for p in root.rglob("*")]

    def reading(self, path: Path) -> bool:
        """Whether the run has `path` open and has read into it (hashing it, not only opening it)."""
        fds = Path(f"/proc/{self.proc.pid}/fd")
        try:
            for fd in fds.iterdir():
                if fd.readlink() == path:
                    pos = (fds.parent / "fdinfo" / fd.name).read_text().split()[1]
                    return int(pos) > 0
        except (FileNotFoundError, ProcessLookupError):  # an fd closed while we looked: look again
            pass
        return False


def _wait(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _three(folder: Path) -> list[Path]:
    return [
        copy_sample("talk.m4a", folder, "one.m4a"),
        copy_sample("morning.mp3", folder, "two.mp3"),
        copy_sample("fox.wav", folder, "three.wav"),
    ]


# Ctrl-C and SIGTERM share one handler: a single SIGTERM waits out the grace period, a second Ctrl-C
# stops at once.
@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)])
def test_an_interrupted_run_says_what_it_left_cleans_up_and_records_what_it_spent(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, signals: tuple[int, ...]
) -> None:
    one, two, three = _three(tmp_path / "in")
    fake_openai.inject(delay(0), delay(120))  # one.m4a is answered; two.mp3 waits two minutes
    run = _Run([one, two, three], api_env, tmp_path)
    _wait(lambda: fake_openai.arrived >= 2 and fake_openai.count >= 1, "the second request in flight")
    for sig in signals:
        run.proc.send_signal(sig)
    code, err = run.finish(timeout=20)  # far less than the answer it would otherwise wait for
    assert code == 128 + signals[0], err
    assert "Traceback" not in err
    assert f"stopping ({signal.Signals(signals[0]).name})" in err and "two.mp3" in err
    assert f"error: {two}: not finished (interrupted)" in err
    assert f"error: {three}: not started (interrupted)" in err
    assert one.with_suffix(".txt").exists() and not two.with_suffix(".txt").exists()
    assert run.scratch() == []
    rows = {Path(r["file"]).name: r for r in json.loads(run_cli(["report", "--json"], api_env).stdout)}
    assert set(rows) == {"one.m4a", "two.mp3"}
    assert rows["one.m4a"]["state"] == "done" and rows["one.m4a"]["usd"] > 0
    # The abandoned request is billed by the provider whether or not its answer is read.
    assert rows["two.mp3"]["state"] == "unfinished" and rows["two.mp3"]["usd"] > 0
    assert fake_openai.arrived == 2


def test_a_run_stopped_between_requests_gives_none_up(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Stopped while it waits to retry a rate limit, a run has no request in flight: it says only that
    no new work starts, not that it gives up "0 request(s)" after the grace period."""
    one = copy_sample("talk.m4a", tmp_path / "in")
    fake_openai.inject(rate_limit(retry_after_s=60))
    run = _Run([one], api_env, tmp_path)
    assert run.proc.stderr is not None
    told = []
    while not any("retrying in" in line for line in told):  # the answer is in: nothing is in flight
        told.append(run.proc.stderr.readline())
        assert told[-1], "".join(told)
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish(timeout=60)
    err = "".join(told) + err
    assert code == 128 + signal.SIGINT, err
    assert "stopping (SIGINT): no new work\n" in err and "in flight" not in err
    assert f"error: {one}: not finished: the run was stopped" in err
    assert fake_openai.arrived == 1


def test_a_run_stopped_while_it_still_admits_files_says_which_never_started(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Files become jobs while the first ones already run: a signal while a large file is still being
    hashed stops the admitting, and the files after it are reported, not lost or run."""
    one, _, three = _three(tmp_path / "in")
    big = tmp_path / "in" / "big.wav"
    with big.open("wb") as fh:  # sparse: 2 GB to hash (seconds of reading), no disk used
        fh.truncate(2 << 30)
    fake_openai.inject(delay(120))  # one.m4a's request stays in flight
    run = _Run([one, big, three], api_env, tmp_path)
    _wait(lambda: fake_openai.arrived >= 1, "the first request in flight")
    _wait(lambda: run.reading(big), "big.wav being hashed")
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish(timeout=120)
    assert code == 128 + signal.SIGINT, err
    assert "Traceback" not in err
    assert f"error: {one}: not finished (interrupted)" in err
    assert f"error: {three}: not started (interrupted)" in err
    assert not three.with_suffix(".txt").exists() and fake_openai.arrived == 1
    status = run_cli(["status", "--json"], api_env)
    assert status.code == 0, status.output
    assert "one.m4a" in status.stdout and "three.wav" not in status.stdout  # never became a job


def test_a_killed_run_keeps_its_answered_spend_and_its_leftovers_go_at_the_next_start(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    one, two, three = _three(tmp_path / "in")
    fake_openai.inject(delay(0), delay(120))
    run = _Run([one, two, three], api_env, tmp_path)
    _wait(lambda: fake_openai.arrived >= 2 and fake_openai.count >= 1, "the second request in flight")
    run.proc.kill()
    run.finish(timeout=20)
    assert run.scratch() != []  # a killed process cannot clean up after itself
    rows = json.loads(run_cli(["report", "--json"], api_env).stdout)
    assert [(Path(r["file"]).name, r["state"]) for r in rows] == [("one.m4a", "done")]
    r = run_cli(["transcribe", str(three)], {**api_env, "TMPDIR": str(run.tmpdir)})
    assert r.code == 0, r.output
    assert run.scratch() == []
    # Nothing of ours outside the run folders either (the sandbox may keep a dotfile of its own here).
    assert [p.name for p in run.tmpdir.iterdir() if not p.name.startswith(".")] == [
        f"whisperbatch-{os.getuid()}"
    ]


def test_a_full_disk_while_encoding_fails_the_file_and_leaves_no_temp_files(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    # A file-size limit stands in for a full disk: writing the chunk's temp WAV fails with EFBIG.
    rec = tmp_path / "in" / "long.wav"
    rec.parent.mkdir()
    subprocess.run(
        [ffmpeg, "-v", "error", "-stream_loop", "8", "-i", str(SAMPLES / "fox.wav"), str(rec)], check=True
    )
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (250_000, 250_000))

    proc = subprocess.run(
        [sys.executable, "-m", "whisperbatch", "transcribe", str(rec)],
        env={**api_env, "TMPDIR": str(tmpdir)},
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and str(rec) in errors[0] and "cannot encode chunk" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p for p in tmpdir.rglob("*") if p.is_file() and not p.name.startswith(".")] == []
    assert fake_openai.count == 0


def _fill(folder: Path) -> Path:
    """Write a file in `folder` until its disk has no room left; returns it (delete it to free the room)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for block in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * block)
    finally:
        os.close(fd)
    return filler


def test_a_state_disk_that_fills_during_a_run_stops_it_at_once_and_keeps_what_is_stored(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    rec = tmp_path / "in" / "five.wav"
    rec.parent.mkdir()
    assemble(rec, [True, False] * 5, ffmpeg, unit_s=6.0)  # five chunks, one sentence each
    with small_disk(tmp_path / "state", 2 << 20) as disk:
        env = {**api_env, "WHISPERBATCH_HOME": str(disk / "home")}
        fake_openai.hold_after = 2  # two answers are stored; the third is held while the disk fills
        run = _Run([rec], env, tmp_path)
        try:
            _wait(lambda: fake_openai.held == 1, "the third request to be held")
            filler = _fill(disk)
            fake_openai.release()
            code, err = run.finish(timeout=120)
        finally:
            run.proc.kill()  # a run that never ends must not outlive the test
        assert code == 3, err
        assert "Traceback" not in err
        stopped = [ln for ln in err.splitlines() if "cannot write the state database" in ln]
        assert stopped == [
            f"error: stopped: {disk / 'home' / 'whisperbatch.sqlite3'}: cannot write the state database "
            "(database or disk is full): free space, then run again"
        ], err
        assert fake_openai.arrived == 3, err  # nothing sent after the answer that could not be kept
        assert not rec.with_suffix(".txt").exists()
        # What was stored is kept: with room again, the same command sends only what is missing.
        filler.unlink()
        r = run_cli(["transcribe", str(rec)], env)
        assert r.code == 0, r.output
        assert "resumed: 2 of 5 chunks kept" in r.stderr, r.stderr
        assert fake_openai.arrived == 6


def test_a_state_disk_full_at_the_start_is_one_line_and_nothing_is_sent(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    rec = copy_sample("talk.m4a", tmp_path / "in")
    with small_disk(tmp_path / "state", 1 << 20) as disk:
        env = {**api_env, "WHISPERBATCH_HOME": str(disk / "home")}
        assert run_cli(["status"], env).code == 0  # the database exists, with its tables
        filler = _fill(disk)
        # Room for SQLite's shared memory to be opened in, none for a write.
        os.truncate(filler, filler.stat().st_size - 32 * 1024)
        r = run_cli(["transcribe", str(rec)], env)
    assert r.code == 2, r.output
    assert "Traceback" not in r.output
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: {disk / 'home' / 'whisperbatch.sqlite3'}: ") and "full" in line, line
    assert fake_openai.count == 0


def _damage(database: Path, *tables: str) -> None:
    """Overwrite the first page of each of `tables` with noise, as a failing disk would."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        roots = [
            db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (t,)).fetchone()[0]
            for t in tables
        ]
    with database.open("r+b") as fh:
        for root in roots:
            fh.seek((root - 1) * page_size)
            fh.write(b"\xa5" * page_size)


def test_a_damaged_state_database_is_one_line_for_each_command(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    rec = copy_sample("talk.m4a", tmp_path / "in")
    assert run_cli(["transcribe", str(rec)], api_env).code == 0
    database = Path(api_env["WHISPERBATCH_HOME"]) / "whisperbatch.sqlite3"
    _damage(database, "jobs", "ledger")
    damaged = (
        f"error: {database}: the state database is damaged (database disk image is malformed): restore a "
        "backup, or move it aside to start a new one"
    )
    for args in (["transcribe", "--force", str(rec)], ["report"], ["status"]):
        r = run_cli(args, api_env)
        assert r.code == 2, (args, r.output)
        assert "Traceback" not in r.output, r.output
        assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [damaged], r.stderr
    assert fake_openai.count == 1  # the first run's upload only
