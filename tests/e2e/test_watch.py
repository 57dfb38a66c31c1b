"""The watch service with real filesystem events, real signals, and a loopback server that counts uploads."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, SAMPLES, assemble, copy_sample, distinct_words, run_cli
from whisperbatch.testing import FakeOpenAI, delay, echo_authorization, insufficient_quota


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll until true; the deadline only bounds a hung test, nothing here measures speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Watcher:
    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.log = folder.parent / f"watch-{time.monotonic_ns()}.log"
        self._fh = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "whisperbatch", "watch", str(folder), *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "watching" in self.text, 30, "the watcher to start")

    @property
    def text(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self._fh.close()
        return code


@pytest.fixture()
def watch_env(api_env: dict[str, str]) -> dict[str, str]:
    return {**api_env, "WHISPERBATCH_SETTLE_S": "1.0", "WHISPERBATCH_RESCAN_S": "2"}


@pytest.fixture()
def quick_env(watch_env: dict[str, str]) -> dict[str, str]:
    """For files put in place in one go (no slow copies): they settle in 0.5 s."""
    return {**watch_env, "WHISPERBATCH_SETTLE_S": "0.5"}


@pytest.fixture()
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture()
def watcher(inbox: Path, watch_env: dict[str, str]) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Watcher:
        w = Watcher(inbox, env or watch_env, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def outputs_done(path: Path) -> Callable[[], bool]:
    return lambda: path.with_suffix(".txt").exists() and path.with_suffix(".srt").exists()


def test_slow_copy_is_processed_once_after_it_completes(
    watcher: Callable[..., Watcher], inbox: Path, fake_openai: FakeOpenAI
) -> None:
    w = watcher()
    data = (SAMPLES / "talk.m4a").read_bytes()
    target = inbox / "slow.m4a"
    with target.open("wb") as fh:  # about 2.5 s of copying, never still for the 1 s settle time
        for i in range(0, len(data), len(data) // 5 + 1):
            fh.write(data[i : i + len(data) // 5 + 1])
            fh.flush()
            time.sleep(0.5)
    wait_for(outputs_done(target), what="outputs")
    time.sleep(1.5)  # give any duplicate a chance to show itself
    assert w.stop() == 0
    assert fake_openai.count == 1
    assert fake_openai.uploads[0].status == 200
    assert "Line" in target.with_suffix(".txt").read_text()


def test_rename_move_and_preexisting_files_each_once(
    watcher: Callable[..., Watcher], inbox: Path, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    before = copy_sample("talk.m4a", inbox, "before.m4a")
    w = watcher()
    partial = inbox / "renamed.mp3.part"
    shutil.copy(SAMPLES / "morning.mp3", partial)
    time.sleep(1.5)  # the temp name sits there, settled, and must not be taken
    partial.rename(inbox / "renamed.mp3")
    outside = copy_sample("morning.webm", tmp_path / "elsewhere")
    shutil.move(str(outside), inbox / "moved.webm")
    for p in (before, inbox / "renamed.mp3", inbox / "moved.webm"):
        wait_for(outputs_done(p), what=f"outputs of {p.name}")
    time.sleep(2.5)  # a rescan happens meanwhile: it must not redo anything
    assert w.stop() == 0
    assert fake_openai.count == 3
    assert sorted(u.filename.rsplit("-", 1)[0] for u in fake_openai.uploads) == ["chunk"] * 3
    assert not any(p.name.startswith("renamed.mp3.part.") for p in inbox.iterdir())
    assert "picked up" in w.text and "done" in w.text


def test_restart_uploads_nothing_and_a_copy_reuses_the_result(
    watcher: Callable[..., Watcher], inbox: Path, fake_openai: FakeOpenAI, quick_env: dict[str, str]
) -> None:
    original = copy_sample("talk.m4a", inbox)
    w = watcher(env=quick_env)
    wait_for(outputs_done(original), what="first outputs")
    assert w.stop() == 0
    assert fake_openai.count == 1

    w2 = watcher(env=quick_env)
    copy = inbox / "same-talk-renamed.m4a"
    shutil.copy(original, copy)
    wait_for(outputs_done(copy), what="outputs for the copy")
    time.sleep(1.5)  # give any duplicate a chance to show itself
    assert w2.stop() == 0
    assert fake_openai.count == 1  # neither the restart nor the copy uploaded anything
    assert copy.with_suffix(".txt").read_text() == original.with_suffix(".txt").read_text()
    assert "no upload" in w2.text

    forced = run_cli(["watch", str(inbox), "--once", "--force"], quick_env)
    assert forced.code == 0, forced.output
    assert fake_openai.count == 2  # --force redid the recording (both names share it) exactly once

    original.write_bytes((SAMPLES / "morning.mp3").read_bytes())  # a changed file is done again
    w3 = watcher(env=quick_env)
    wait_for(lambda: fake_openai.count == 3, what="the changed file's upload")
    wait_for(lambda: "Line" in original.with_suffix(".txt").read_text() and w3.text.count(" done -> ") == 1)
    assert w3.stop() == 0


def _chunk_results(home: Path) -> int:
    with sqlite3.connect(home / "whisperbatch.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM chunk_results").fetchone()[0])


def test_kill_9_mid_recording_resumes_without_reuploading_finished_chunks(
    watcher: Callable[..., Watcher], inbox: Path, watch_env: dict[str, str], ffmpeg: str, tmp_path: Path
) -> None:
    with FakeOpenAI(api_key=CANARY_KEY) as server:
        server.transcriber = distinct_words
        server.hold_after = 3  # three chunks are answered; the fourth is in flight at the kill
        rec = tmp_path / "long.wav"
        assemble(rec, [True, False] * 6, ffmpeg)  # 6 utterances apart: 6 chunks
        shutil.move(str(rec), inbox / "long.wav")
        env = {**watch_env, "OPENAI_BASE_URL": server.base_url, "WHISPERBATCH_CONCURRENCY": "1"}
        w = watcher(env=env)
        home = Path(env["WHISPERBATCH_HOME"])
        wait_for(
            lambda: server.held == 1 and _chunk_results(home) >= 3,
            what="three checkpointed chunks and the fourth in flight",
        )
        w.proc.kill()
        w.proc.wait()
        finished = _chunk_results(home)
        assert finished == 3
        assert not (inbox / "long.txt").exists()
        # The request in flight at the kill was never stored by the client, so it is rightly sent
        # again. Count only once the server has dealt with it.
        server.hold_after = None
        server.release()
        wait_for(lambda: server.arrived == len(server.uploads), what="the server to go quiet")
        uploads_before = len(server.successful)

        w2 = watcher(env=env)
        wait_for(outputs_done(inbox / "long.wav"), what="the resumed outputs")
        assert w2.stop() == 0
        assert len(server.successful) - uploads_before == 6 - finished
        assert "from before a restart" in w2.text
        assert len((inbox / "long.srt").read_text().strip().split("\n\n")) >= 6


def test_sigterm_exits_0_promptly_and_leaves_no_partial_outputs(
    watcher: Callable[..., Watcher], inbox: Path, watch_env: dict[str, str], ffmpeg: str, tmp_path: Path
) -> None:
    with FakeOpenAI(api_key=CANARY_KEY) as server:
        server.inject(*[delay(2.0)] * 40)
        rec = tmp_path / "talk.wav"
        assemble(rec, [True, False] * 6, ffmpeg)
        shutil.move(str(rec), inbox / "talk.wav")
        env = {**watch_env, "OPENAI_BASE_URL": server.base_url}
        w = watcher(env=env)
        wait_for(lambda: server.arrived >= 1, what="the first upload")
        assert w.stop(signal.SIGTERM, timeout=10.0) == 0  # raises if it takes longer than 10 s
        leftovers = sorted(p.name for p in inbox.iterdir())
        assert leftovers == ["talk.wav"], leftovers
        assert "stopping" in w.text
        status = run_cli(["status", "--json"], env)
        assert '"state": "queued"' in status.stdout  # back in the queue for the next start


def test_bad_file_fails_with_reason_while_others_flow(
    watcher: Callable[..., Watcher], inbox: Path, watch_env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    w = watcher()
    (inbox / "broken.mp3").write_text("not audio\n" * 100)
    good = copy_sample("morning.mp3", inbox)
    wait_for(outputs_done(good), what="the good file")
    wait_for(lambda: (inbox / "broken.mp3.error.txt").exists(), what="the error file")
    assert "not a readable audio file" in (inbox / "broken.mp3.error.txt").read_text()
    assert w.stop() == 0
    assert "1 done, 1 failed" in run_cli(["status"], watch_env).stdout
    jobs = json.loads(run_cli(["status", "--json", "--state", "failed"], watch_env).stdout)
    assert [Path(j["path"]).name for j in jobs] == ["broken.mp3"]
    assert "not a readable audio file" in jobs[0]["error"]
    assert "requeued 1 failed job" in run_cli(["retry"], watch_env).stderr
    assert '"state": "queued"' in run_cli(["status", "--json", "--state", "queued"], watch_env).stdout


def test_a_key_echoed_by_the_server_is_written_nowhere(
    inbox: Path, quick_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """A gateway answers a 400 that names the Authorization header, key and all: the file fails with the
    server's reason, and the key is masked in the log, the store, `status` (run where no key is set, so
    it could not mask it on the way out) and the error file beside the recording."""
    copy_sample("talk.m4a", inbox)
    fake_openai.inject(echo_authorization())
    r = run_cli(["watch", str(inbox), "--once", "--verbose"], quick_env)
    assert r.code == 1, r.output
    assert "Invalid header value for 'Authorization'" in r.output and CANARY_KEY not in r.output
    reason = (inbox / "talk.m4a.error.txt").read_text()
    assert "Authorization': Bearer ***" in reason and CANARY_KEY not in reason
    no_key = {k: v for k, v in quick_env.items() if k != "OPENAI_API_KEY"}
    table = run_cli(["status"], no_key)
    assert "1 failed" in table.stdout and CANARY_KEY not in table.output
    (job,) = json.loads(run_cli(["status", "--json"], no_key).stdout)
    assert job["error"].endswith("Authorization': Bearer ***") and CANARY_KEY not in json.dumps(job)
    for path in tmp_path.rglob("*"):  # the store (and its journal), the recording's folder
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path


def test_once_processes_then_exits_and_quota_pauses(
    inbox: Path, quick_env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    a = copy_sample("talk.m4a", inbox)
    r = run_cli(["watch", str(inbox), "--once"], quick_env)
    assert r.code == 0, r.output
    assert outputs_done(a)()
    b = copy_sample("morning.mp3", inbox)
    c = copy_sample("morning.webm", inbox, "evening.webm")
    fake_openai.inject(insufficient_quota())
    r = run_cli(["watch", str(inbox), "--once", "--concurrency", "1"], quick_env)
    assert r.code == 3, r.output
    assert r.output.count("queue paused") == 1 and "quota" in r.output
    assert not outputs_done(b)() and not outputs_done(c)()
    assert fake_openai.count == 2  # one refused upload; the second file was never sent
    r = run_cli(["watch", str(inbox), "--once"], quick_env)  # quota back: the queue drains
    assert r.code == 0, r.output
    assert outputs_done(b)() and outputs_done(c)()


def test_polling_observer_for_network_mounts(
    watcher: Callable[..., Watcher], inbox: Path, fake_openai: FakeOpenAI, watch_env: dict[str, str]
) -> None:
    env = {**watch_env, "WHISPERBATCH_RESCAN_S": "3600"}  # only the polling observer can see the file
    w = watcher("--polling", "--recursive", env=env)
    sub = inbox / "2026" / "november"
    sub.mkdir(parents=True)
    f = copy_sample("talk.m4a", sub)
    wait_for(outputs_done(f), what="outputs via polling")
    assert w.stop() == 0
    assert fake_openai.count == 1


def test_budget_spans_the_service_life(
    inbox: Path, quick_env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    copy_sample("talk.m4a", inbox)
    assert run_cli(["watch", str(inbox), "--once"], quick_env).code == 0  # spends ~$0.0008 (whisper-1)
    copy_sample("morning.mp3", inbox)
    r = run_cli(["watch", str(inbox), "--once", "--budget", "0.001"], quick_env)
    assert r.code == 3, r.output
    assert "queue paused until restarted" in r.output and "budget" in r.output
    assert fake_openai.count == 1
    assert not outputs_done(inbox / "morning.mp3")()


def test_a_file_done_counts_once_against_the_budget(
    inbox: Path, quick_env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    # Each file costs about $0.0008; $0.0022 covers two. The first file's cost is in the ledger and must
    # not also stay reserved, or the second is refused with less left than was spent.
    first, second = copy_sample("talk.m4a", inbox), copy_sample("morning.mp3", inbox)
    r = run_cli(["watch", str(inbox), "--once", "-j", "1", "--budget", "0.0022"], quick_env)
    assert r.code == 0, r.output
    assert outputs_done(first)() and outputs_done(second)()
    assert fake_openai.count == 2
