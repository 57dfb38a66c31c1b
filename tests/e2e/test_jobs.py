"""Every run is jobs: one-off runs resume without paying twice, the same recording is done once, one
budget serves runs and the service, and workers on one PostgreSQL queue share the work.

The loopback server counts every upload by its content, so "uploaded once" is asserted on what the
server received; where words matter, the server runs a real speech model (tiny.en).
"""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CANARY_KEY, assemble, copy_sample, run_cli, two_sentence_recordings, wait_for
from whisperbatch.audio import probe
from whisperbatch.testing import FakeOpenAI, Upload, delay, insufficient_quota
from whisperbatch.testing.scoring import parse_srt


@pytest.fixture(scope="module")
def asr() -> Iterator[FakeOpenAI]:
    """The loopback server with a real speech model behind it."""
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        yield server


def _stored_chunks(home: Path) -> int:
    try:
        with sqlite3.connect(f"file:{home / 'whisperbatch.sqlite3'}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM chunk_results").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or its tables not yet
        return 0


def _stopped_once(rec: Path, env: dict[str, str], until: Callable[[], bool], what: str, sig: int) -> None:
    """`whisperbatch transcribe rec`, stopped with `sig` once `until` holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "whisperbatch", "transcribe", str(rec)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(until, what)
    finally:
        proc.send_signal(sig)
        proc.wait(timeout=60)


def _fox_cues(srt: Path) -> list[float]:
    """Start times of the cues that say samples/fox.wav's sentence."""
    return [start for start, _, text in parse_srt(srt.read_text()) if "quick" in text.lower()]


def test_a_killed_transcribe_run_uploads_only_the_missing_chunks_when_run_again(
    env: dict[str, str], asr: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    rec = tmp_path / "in" / "long.wav"
    rec.parent.mkdir()
    onsets = assemble(rec, [True, False] * 4, ffmpeg)  # four sentences far apart: four chunks
    run_env = {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": asr.base_url}
    run_env["WHISPERBATCH_CONCURRENCY"] = "1"
    home = Path(run_env["WHISPERBATCH_HOME"])
    before, held = len(asr.successful), asr.held
    asr.hold_after = asr.arrived + 2  # two chunks are answered; the third is in flight at the kill
    try:
        _stopped_once(
            rec,
            run_env,
            lambda: _stored_chunks(home) >= 2 and asr.held > held,
            "two stored chunks and the third in flight",
            signal.SIGKILL,
        )
    finally:
        asr.hold_after = None
        asr.release()
    kept = _stored_chunks(home)
    assert kept == 2 and not rec.with_suffix(".srt").exists()
    # The request in flight at the kill was never stored, so it is rightly sent again. Count once the
    # server has dealt with it.
    wait_for(lambda: asr.arrived == len(asr.uploads), "the server to answer what it was sent")
    paid = len(asr.successful) - before

    r = run_cli(["transcribe", str(rec)], run_env)
    assert r.code == 0, r.output
    assert f"resumed: {kept} of 4 chunks kept" in r.stderr
    assert len(asr.successful) - before - paid == 4 - kept
    starts = _fox_cues(rec.with_suffix(".srt"))  # every sentence, each at its time
    assert len(starts) == 4
    assert all(abs(s - t) < 1.5 for s, t in zip(starts, onsets, strict=True)), (starts, onsets)


def _deaf_to_whole_chunks(upload: Upload, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A first answer that hears nothing, so every chunk's speech is asked about again, alone (a
    stretch's upload is named `<chunk>-at<ms>`)."""
    return segments if "-at" in upload.filename else []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_an_answer_is_kept_the_moment_it_arrives_though_its_chunk_is_still_asked_again(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path, sig: int
) -> None:
    rec = tmp_path / "in" / "long.wav"
    rec.parent.mkdir()
    onsets = assemble(rec, [True, False] * 3, ffmpeg)
    # A SIGTERM gives up the held request after the grace period (1 s here).
    run_env = {**api_env, "WHISPERBATCH_CONCURRENCY": "1", "WHISPERBATCH_SHUTDOWN_GRACE_S": "1"}
    fake_openai.edit = _deaf_to_whole_chunks
    # Chunk 1 and its re-ask, then chunk 2: chunk 2's re-ask is held, so the stop lands while it is
    # in flight and chunk 2's first answer has arrived (and been paid for) but its chunk is unfinished.
    fake_openai.hold_after = 3
    _stopped_once(rec, run_env, lambda: fake_openai.held >= 1, "chunk 2's re-ask in flight", sig)
    fake_openai.hold_after = None
    fake_openai.release()
    wait_for(lambda: fake_openai.arrived == len(fake_openai.uploads), "the server to answer what it was sent")
    assert [u.filename for u in fake_openai.successful][2].endswith(".mp3")

    r = run_cli(["transcribe", str(rec)], run_env)
    assert r.code == 0, r.output
    whole = [u.sha256 for u in fake_openai.successful if "-at" not in u.filename]
    assert len(whole) == len(set(whole)) == 3, "a chunk whose answer had arrived was sent again"
    starts = [start for start, _, _ in parse_srt(rec.with_suffix(".srt").read_text())]
    assert all(any(abs(s - t) < 1.5 for s in starts) for t in onsets), (starts, onsets)


def test_a_quota_stop_keeps_what_was_answered_and_the_next_run_finishes(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    rec = tmp_path / "in" / "long.wav"
    rec.parent.mkdir()
    assemble(rec, [True, False] * 4, ffmpeg)
    run_env = {**api_env, "WHISPERBATCH_CONCURRENCY": "1", "WHISPERBATCH_CONDITION_ON_PREVIOUS": "true"}
    fake_openai.inject(delay(0), delay(0), insufficient_quota())
    r = run_cli(["transcribe", str(rec)], run_env)
    assert r.code == 3, r.output
    assert "quota" in r.stderr and not rec.with_suffix(".srt").exists()
    assert len(fake_openai.successful) == 2
    again = run_cli(["transcribe", str(rec)], run_env)
    assert again.code == 0, again.output
    assert "resumed: 2 of 4 chunks kept" in again.stderr
    assert len(fake_openai.successful) == 4
    assert len(parse_srt(rec.with_suffix(".srt").read_text())) >= 4
    status = json.loads(run_cli(["status", "--json"], run_env).stdout)
    assert [(Path(j["path"]).name, j["state"]) for j in status] == [("long.wav", "done")]


def test_the_same_recording_under_two_names_is_transcribed_once(
    env: dict[str, str], asr: FakeOpenAI, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    a = copy_sample("morning.mp3", folder, "monday.mp3")
    b = copy_sample("morning.mp3", folder / "copies", "standup.mp3")
    run_env = {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": asr.base_url}
    before = len(asr.successful)
    r = run_cli(["transcribe", str(folder)], run_env)
    assert r.code == 0, r.output
    assert len(asr.successful) - before == 1  # one recording, one chunk, one upload
    assert r.stderr.count("same recording as") == 1
    for path in (a, b):
        assert "good morning" in path.with_suffix(".txt").read_text().lower()
        assert path.with_suffix(".srt").read_text() == a.with_suffix(".srt").read_text()
    # Every file has its cost row: the other name's at $0, saying which recording it matched.
    rows = [
        row
        for folder_csv in (a.parent / "costs.csv", b.parent / "costs.csv")
        for row in csv.DictReader(folder_csv.read_text().splitlines())
    ]
    paid, matched = sorted(rows, key=lambda row: row["same_as"])
    assert {paid["file"], matched["file"]} == {str(a), str(b)}
    assert float(paid["usd"]) > 0 and float(matched["usd"]) == 0 and float(matched["billed_min"]) == 0
    assert matched["same_as"] == paid["file"] and matched["audio_s"] == paid["audio_s"]
    names = [Path(row["file"]).name for row in (matched, paid)]
    assert "Total (2 files)" in r.stdout and f"{names[0]} (same as {names[1]})" in r.stdout
    spent = sorted(_spent(run_env).items())
    assert spent == sorted({names[0]: 0.0, names[1]: float(paid["usd"])}.items())
    # Its outputs gone, a third run writes them again from the stored transcript: still no upload.
    b.with_suffix(".txt").unlink()
    again = run_cli(["transcribe", str(b)], run_env)
    assert again.code == 0 and len(asr.successful) - before == 1
    assert "good morning" in b.with_suffix(".txt").read_text().lower()
    # --force redoes it.
    assert run_cli(["transcribe", str(b), "--force"], run_env).code == 0
    assert len(asr.successful) - before == 2


def _spent(env: dict[str, str]) -> dict[str, float]:
    rows = json.loads(run_cli(["report", "--json"], env).stdout)
    return {Path(r["file"]).name: r["usd"] for r in rows}


def test_the_service_budget_counts_what_was_spent_once(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    """A file done counts what it cost; a file that fits runs; the next is refused with what is left."""
    inbox = tmp_path / "inbox"
    watch_env = {**api_env, "WHISPERBATCH_SETTLE_S": "0.5"}
    copy_sample("talk.m4a", inbox)
    assert run_cli(["watch", str(inbox), "--once"], watch_env).code == 0
    first = _spent(watch_env)["talk.m4a"]
    # Room for one more file at morning.mp3's worst case (its whole length billed at $0.006/min).
    second = copy_sample("morning.mp3", inbox)
    budget = f"{first + probe(second, ffmpeg).duration_s / 60 * 0.006 + 1e-6:.6f}"
    r = run_cli(["watch", str(inbox), "--once", "--budget", budget], watch_env)
    assert r.code == 0, r.output
    spent = _spent(watch_env)
    copy_sample("morning.webm", inbox, "evening.webm")
    r = run_cli(["watch", str(inbox), "--once", "--budget", budget], watch_env)
    assert r.code == 3, r.output
    left = float(budget) - spent["talk.m4a"] - spent["morning.mp3"]
    assert f"${left:.4f} of the ${float(budget):.2f} budget is left" in r.output
    assert fake_openai.count == 2


def test_a_transcribe_budget_stops_before_the_file_that_would_exceed_it(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    one = copy_sample("talk.m4a", tmp_path / "in", "a.m4a")
    two = copy_sample("morning.mp3", tmp_path / "in", "b.mp3")
    r = run_cli(["transcribe", str(one), str(two), "-j", "1", "--budget", "0.0012"], api_env)
    assert r.code == 3, r.output
    assert one.with_suffix(".txt").exists() and not two.with_suffix(".txt").exists()
    assert f"{two}: not started: it would cost up to" in r.stderr
    assert fake_openai.count == 1
    # A run's budget is its own: the next run may spend it again, and only b.mp3 is left to do.
    r = run_cli(["transcribe", str(one), str(two), "--budget", "0.0012"], api_env)
    assert r.code == 0, r.output
    assert fake_openai.count == 2


# ---- workers on several hosts: one PostgreSQL queue ---------------------------------------------------


def _worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "whisperbatch", "worker", *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def test_three_workers_drain_one_postgresql_queue_though_one_is_killed_mid_file(
    env: dict[str, str], pg_url: str, ffmpeg: str, tmp_path: Path
) -> None:
    recordings = two_sentence_recordings(tmp_path / "share", 6, ffmpeg)
    with FakeOpenAI(api_key=CANARY_KEY) as server, FakeOpenAI(api_key=CANARY_KEY) as victims_server:
        base = {**env, "OPENAI_API_KEY": CANARY_KEY, "WHISPERBATCH_DATABASE_URL": pg_url}
        base["WHISPERBATCH_LEASE_S"] = "5"
        shared = {**base, "OPENAI_BASE_URL": server.base_url}
        r = run_cli(["enqueue", str(tmp_path / "share")], shared)
        assert r.code == 0 and "6 jobs queued" in r.stderr, r.output
        # The victim works one chunk at a time through a server of its own, which answers three
        # requests and holds the fourth: it is then mid-way through its second recording.
        victims_server.hold_after = 3
        victim_env = {**base, "OPENAI_BASE_URL": victims_server.base_url}
        victim_env["WHISPERBATCH_CONDITION_ON_PREVIOUS"] = "true"
        victim = _worker(victim_env, tmp_path / "victim.log", "-j", "1")
        wait_for(lambda: victims_server.held >= 1, "the victim's fourth request")
        others = [_worker(shared, tmp_path / f"w{i}.log", "-j", "2") for i in range(2)]
        victim.kill()
        victim.wait()
        victims_server.release()

        def all_done() -> bool:
            jobs = json.loads(run_cli(["status", "--json"], shared).stdout)
            return len(jobs) == 6 and all(j["state"] == "done" for j in jobs)

        # Outputs appear as recordings finish (cheap to look for); the store then says all are done.
        wait_for(lambda: all(p.with_suffix(".srt").exists() for p in recordings), "every output", 300)
        wait_for(all_done, "all 6 recordings done")
        for w in others:
            w.terminate()
            assert w.wait(timeout=30) == 0
        answered = [*server.successful, *victims_server.successful]
        assert len(victims_server.successful) == 3
        assert [u.status for u in victims_server.uploads if u.status != 200] == [0]  # held, never answered
    # Every chunk of every recording was answered exactly once, across both servers: 6 recordings of
    # two chunks each. (Chunks of different recordings may have the same content: the sentences.)
    assert len(answered) == 12
    for path in recordings:
        assert len(parse_srt(path.with_suffix(".srt").read_text())) >= 2, path
    status = run_cli(["status"], shared)
    assert "0 queued, 0 running, 6 done, 0 failed" in status.stdout
    taken = [line for line in (tmp_path / "victim.log").read_text().splitlines() if "done ->" in line]
    assert len(taken) == 1  # the victim finished its first recording only


def test_a_watcher_that_only_enqueues_and_a_worker_that_runs_the_jobs(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    talk = copy_sample("talk.m4a", inbox)
    env = {**api_env, "WHISPERBATCH_SETTLE_S": "0.5"}
    r = run_cli(["watch", str(inbox), "--once", "--no-work", "-f", "vtt"], env)
    assert r.code == 0, r.output
    assert fake_openai.count == 0 and not talk.with_suffix(".vtt").exists()
    queued = json.loads(run_cli(["status", "--json"], env).stdout)
    assert [(Path(j["path"]), j["state"]) for j in queued] == [(talk, "queued")]
    # The worker runs the job as it was enqueued (here: vtt), whatever its own settings say.
    r = run_cli(["worker", "--once"], env)
    assert r.code == 0, r.output
    assert fake_openai.count == 1
    assert talk.with_suffix(".vtt").read_text().startswith("WEBVTT") and not talk.with_suffix(".srt").exists()
    assert [j["state"] for j in json.loads(run_cli(["status", "--json"], env).stdout)] == ["done"]


def test_a_worker_that_cannot_read_a_recording_fails_it_for_another_host(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    rec = copy_sample("talk.m4a", tmp_path / "share")
    assert run_cli(["enqueue", str(rec)], api_env).code == 0
    hidden = rec.rename(rec.with_name("moved.m4a"))  # this host does not see it at the stored path
    r = run_cli(["worker", "--once"], api_env)
    assert r.code == 1, r.output
    [job] = json.loads(run_cli(["status", "--json"], api_env).stdout)
    assert job["state"] == "failed" and "not readable here" in job["error"]
    hidden.rename(rec)  # the share is back (or another host that sees it retries it)
    assert "requeued 1 failed job" in run_cli(["retry"], api_env).stderr
    assert run_cli(["worker", "--once"], api_env).code == 0
    assert rec.with_suffix(".txt").exists() and fake_openai.count == 1


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at any one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    now = most = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_concurrency_bounds_requests_in_flight_across_job_options(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """`-j 2` is the whole process's bound: a worker running jobs enqueued with two different formats
    has at most 2 requests at the server at any moment, not 2 per set of options."""
    names = {"srt": ("talk.m4a", "morning.mp3", "german.m4a"), "vtt": ("french.m4a", "repeat.ogg", "fox.wav")}
    for fmt, samples in names.items():
        paths = [str(copy_sample(name, tmp_path / fmt)) for name in samples]
        assert run_cli(["enqueue", "-f", fmt, *paths], api_env).code == 0
    fake_openai.inject(*[delay(0.3)] * 60)
    r = run_cli(["worker", "--once", "-j", "2"], api_env)
    assert r.code == 0, r.output
    for fmt, samples in names.items():
        assert all((tmp_path / fmt / name).with_suffix(f".{fmt}").exists() for name in samples)
    answered = [(u.received_s, u.received_s + u.answer_s) for u in fake_openai.uploads if u.status == 200]
    assert len(answered) >= 6
    assert most_at_once(answered) <= 2
