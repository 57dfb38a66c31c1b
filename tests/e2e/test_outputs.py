"""A recording's outputs are its own: judged up to date by the recording they were written from (not by
modification times), never another recording's, never of audio it no longer holds, written all formats
or none, whatever the length of its name; and `watch DIR` works on DIR's recordings only.

Where words matter, the loopback server runs a real speech model (tiny.en): samples/fox.wav says "the
quick brown fox … lazy dog", samples/morning.mp3 "good morning everyone".
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CANARY_KEY, copy_sample, reencode, run_cli, run_cli_together, small_disk
from whisperbatch.testing import DECODE_FAILED, FakeOpenAI, Fault


@pytest.fixture(scope="module")
def asr() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        yield server


def _env(env: dict[str, str], server: FakeOpenAI) -> dict[str, str]:
    return {**env, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_BASE_URL": server.base_url}


@pytest.fixture()
def asr_env(env: dict[str, str], asr: FakeOpenAI) -> dict[str, str]:
    return _env(env, asr)


def _said(path: Path) -> str:
    return path.read_text().lower()


def test_outputs_of_another_recording_are_neither_up_to_date_nor_overwritten(
    asr_env: dict[str, str], asr: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    fox = reencode("fox.wav", tmp_path / "a" / "talk.m4a", ffmpeg)
    morning = reencode("morning.mp3", tmp_path / "b" / "talk.m4a", ffmpeg)
    out = tmp_path / "out"
    assert run_cli(["transcribe", str(fox), "-o", str(out)], asr_env).code == 0
    assert "lazy" in _said(out / "talk.txt")
    # Another recording whose outputs would go to the same names, in a later run: out/talk.* are newer
    # than it, but they are not its own.
    before = len(asr.successful)
    r = run_cli(["transcribe", str(morning), "-o", str(out)], asr_env)
    assert r.code == 0, r.output
    assert "up to date" not in r.output and len(asr.successful) == before + 1
    assert "lazy" in _said(out / "talk.txt") and "morning" not in _said(out / "talk.txt")
    assert "morning" in _said(out / "b" / "talk.m4a.txt")
    # Each is up to date with its own outputs now; --force redoes the one asked for, where it was.
    for again in run_cli_together(
        [(["transcribe", str(s), "-o", str(out)], asr_env) for s in (fox, morning)]
    ):
        assert again.code == 0 and "up to date" in again.stderr, again.output
    assert len(asr.successful) == before + 1
    assert run_cli(["transcribe", str(morning), "-o", str(out), "--force"], asr_env).code == 0
    assert "lazy" in _said(out / "talk.txt") and "morning" in _said(out / "b" / "talk.m4a.txt")
    # A recording changed in place is not up to date with the outputs of what it held before.
    reencode("morning.mp3", fox, ffmpeg)
    r = run_cli(["transcribe", str(fox), "-o", str(out)], asr_env)
    assert r.code == 0 and "up to date" not in r.output, r.output
    assert "morning" in _said(out / "talk.txt")


def test_a_recording_replaced_while_it_is_transcribed_keeps_no_outputs_of_the_old_audio(
    env: dict[str, str], tmp_path: Path, ffmpeg: str
) -> None:
    rec = reencode("fox.wav", tmp_path / "in" / "talk.m4a", ffmpeg)
    morning = reencode("morning.mp3", tmp_path / "new.m4a", ffmpeg)
    with FakeOpenAI(api_key=CANARY_KEY, model="tiny.en") as server:
        server.hold_after = 0  # the first upload waits until released
        run_env = _env(env, server)
        proc = subprocess.Popen(
            [sys.executable, "-m", "whisperbatch", "transcribe", str(rec)],
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120  # only bounds a hung test
            while server.arrived < 1 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.arrived == 1
            rec.write_bytes(morning.read_bytes())  # replaced in place while its audio is being answered
            server.release()
            _, stderr = proc.communicate(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        assert proc.returncode == 1, stderr
        errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and f"{rec}: changed while it was transcribed" in errors[0], stderr
        assert "Traceback" not in stderr
        assert sorted(p.name for p in rec.parent.iterdir()) == ["talk.m4a"]
        # The next run transcribes what the file holds now.
        r = run_cli(["transcribe", str(rec)], run_env)
        assert r.code == 0 and "up to date" not in r.output, r.output
        assert "morning" in _said(rec.with_suffix(".txt")) and "lazy" not in _said(rec.with_suffix(".txt"))
        [job] = [j for j in json.loads(run_cli(["status", "--json"], run_env).stdout) if j["state"] == "done"]
        assert Path(job["path"]) == rec


def test_a_copy_of_a_recording_that_failed_is_run_for_itself(
    asr_env: dict[str, str], asr: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    first = reencode("fox.wav", tmp_path / "in" / "first.m4a", ffmpeg)
    asr.inject(Fault("respond", 400, DECODE_FAILED))
    r = run_cli(["transcribe", str(first)], asr_env)
    assert r.code == 1 and "could not be decoded" in r.stderr, r.output
    copy = tmp_path / "copy" / "second.m4a"
    copy.parent.mkdir()
    first.rename(copy)  # the same bytes under another name; the failed file is gone
    r = run_cli(["transcribe", str(copy)], asr_env)
    assert r.code == 0, r.output
    assert "first.m4a" not in r.output
    assert "lazy" in _said(copy.with_suffix(".txt"))


def test_a_long_file_name_gets_its_outputs_and_one_that_cannot_fails_before_it_is_sent(
    asr_env: dict[str, str], asr: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    long = reencode("fox.wav", tmp_path / "in" / ("n" * 246 + ".m4a"), ffmpeg)  # 250 bytes
    # Two recordings of one 251-byte stem are named apart: stem.m4a.txt would be 259 bytes.
    apart = [
        reencode("morning.mp3", tmp_path / "both" / ("b" * 251 + ext), ffmpeg) for ext in (".m4a", ".mp3")
    ]
    before = len(asr.successful)
    r = run_cli(["transcribe", str(long), *map(str, apart)], asr_env)
    assert r.code == 1, r.output
    assert "lazy" in _said(long.with_suffix(".txt")) and long.with_suffix(".srt").exists()
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all("would be too long" in ln and "nothing was sent" in ln for ln in errors)
    assert "Traceback" not in r.output
    assert len(asr.successful) == before + 1  # only the recording whose outputs can be written
    assert sorted(p.name for p in apart[0].parent.iterdir()) == sorted(p.name for p in apart)
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]


def test_a_full_disk_writes_none_of_a_recordings_formats_and_keeps_the_old_ones(
    asr_env: dict[str, str], asr: FakeOpenAI, tmp_path: Path, ffmpeg: str
) -> None:
    rec = reencode("fox.wav", tmp_path / "in" / "talk.m4a", ffmpeg)
    # Four pages: an old transcript takes one, so the new txt, srt and vtt fit and the json does not.
    with small_disk(tmp_path / "out", 4 * os.sysconf("SC_PAGE_SIZE")) as out:
        (out / "talk.txt").write_text("old\n")
        r = run_cli(["transcribe", str(rec), "-f", "all", "-o", str(out)], asr_env)
        assert r.code == 1, r.output
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], r.stderr
        assert sorted(os.listdir(out)) == ["talk.txt"]  # no new srt or vtt, and no temp file
        assert (out / "talk.txt").read_text() == "old\n"
    # Space again: the next run writes them all, with what was answered before (nothing paid twice).
    before = len(asr.successful)
    r = run_cli(["transcribe", str(rec), "-f", "all", "-o", str(tmp_path / "roomy")], asr_env)
    assert r.code == 0, r.output
    assert len(asr.successful) == before
    assert sorted(os.listdir(tmp_path / "roomy")) == [
        "costs.csv",
        *(f"talk.{f}" for f in ("json", "srt", "txt", "vtt")),
    ]


def test_watch_works_on_its_own_folder_and_a_worker_takes_any_job(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    elsewhere = copy_sample("talk.m4a", tmp_path / "elsewhere")
    assert run_cli(["enqueue", str(elsewhere)], api_env).code == 0
    inbox = tmp_path / "inbox"
    mine = copy_sample("morning.mp3", inbox)
    env = {**api_env, "WHISPERBATCH_SETTLE_S": "0.5"}
    r = run_cli(["watch", str(inbox), "--once"], env, timeout=120)
    assert r.code == 0, r.output
    assert mine.with_suffix(".txt").exists() and not elsewhere.with_suffix(".txt").exists()
    assert fake_openai.count == 1
    states = {Path(j["path"]).name: j["state"] for j in json.loads(run_cli(["status", "--json"], env).stdout)}
    assert states == {"talk.m4a": "queued", "morning.mp3": "done"}
    r = run_cli(["worker", "--once"], env, timeout=120)
    assert r.code == 0, r.output
    assert elsewhere.with_suffix(".txt").exists() and fake_openai.count == 2
