"""The openai engine end to end: the real SDK, through the real CLI, against a loopback server."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    assemble,
    copy_sample,
    distinct_words,
    run_cli,
    run_cli_together,
    write_silence,
)
from whisperbatch.testing import (
    FakeOpenAI,
    drop_connection,
    insufficient_quota,
    rate_limit,
    server_error,
    truncated,
    unauthorized,
)
from whisperbatch.testing.scoring import parse_srt

MAX_BODY = 26_214_400


def test_hour_long_recording_keeps_late_timestamps(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    # 62 minutes: two minutes of continuous speech (more than one chunk), long silences that must not
    # be uploaded, then scattered speech late in the file, where times would have drifted.
    pattern = [False] * 372
    for i in range(6, 18):
        pattern[i] = True
    for i in (150, 151, 240, 330, 331, 332, 355, 368):
        pattern[i] = True
    rec = tmp_path / "work" / "lecture.wav"
    onsets = assemble(rec, pattern, ffmpeg)
    assert rec.stat().st_size > MAX_BODY

    r = run_cli(["transcribe", str(rec), "--format", "srt,json"], api_env)
    assert r.code == 0, r.output
    cues = parse_srt(rec.with_suffix(".srt").read_text())
    late = [t for t in onsets if t > 3000]
    assert len(late) == 5
    for onset in late:
        assert any(abs(start - onset) <= 2.0 for start, _, _ in cues), f"no cue near {onset}"
    # every cue starts at real speech, never in a silent stretch
    for start, end, _ in cues:
        assert any(o - 2.0 <= start <= o + 10.0 for o in onsets), f"cue at {start} is in silence"
        assert end > start
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)

    uploads = fake_openai.successful
    assert len(uploads) >= 6
    assert all(u.body_bytes < MAX_BODY for u in uploads)
    assert all(u.prompt is None for u in uploads)  # no earlier text is carried by default
    # silence is not uploaded: far less audio than the recording went up
    assert sum(u.duration_s or 0 for u in uploads) < 0.5 * len(pattern) * 10


def test_oversized_chunk_is_split_again(api_env: dict[str, str], ffmpeg: str, tmp_path: Path) -> None:
    with FakeOpenAI(api_key=CANARY_KEY, max_body_bytes=300_000) as server:
        server.transcriber = distinct_words
        rec = tmp_path / "work" / "talk.wav"
        onsets = assemble(rec, [True] * 12, ffmpeg)  # two minutes of speech: ~1 MB as 64 kbps MP3
        env = {**api_env, "OPENAI_BASE_URL": server.base_url, "WHISPERBATCH_MAX_UPLOAD_BYTES": "300000"}
        r = run_cli(["transcribe", str(rec)], env)
        assert r.code == 0, r.output
        assert len(server.successful) >= 4
        assert all(u.body_bytes <= 300_000 for u in server.uploads)
        cues = parse_srt(rec.with_suffix(".srt").read_text())
        for onset in onsets[-3:]:
            assert any(abs(start - onset) <= 2.0 for start, _, _ in cues)


def test_a_chunk_refused_as_too_large_is_sent_again_in_halves(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # A server behind a proxy with a lower cap than the API's (and than the one cut for): the chunk
    # (about 80 KB) is refused with a 413, and its halves go through, each at its true time.
    reference = copy_sample("talk.m4a", tmp_path / "reference")
    home = str(tmp_path / "reference-home")  # a store of its own: the same recording is a new job below
    assert run_cli(["transcribe", str(reference)], {**api_env, "WHISPERBATCH_HOME": home}).code == 0
    with FakeOpenAI(api_key=CANARY_KEY, max_body_bytes=60_000) as server:
        server.transcriber = distinct_words
        f = copy_sample("talk.m4a", tmp_path / "work")
        r = run_cli(["transcribe", str(f)], {**api_env, "OPENAI_BASE_URL": server.base_url})
        assert r.code == 0, r.output
        assert "HTTP 413" in r.stderr and "two halves" in r.stderr
        assert [u.status for u in server.uploads] == [413, 200, 200]
        whole, *halves = server.uploads
        assert all(u.body_bytes <= 60_000 < whole.body_bytes for u in halves)
    cues = parse_srt(f.with_suffix(".srt").read_text())
    expected = parse_srt(reference.with_suffix(".srt").read_text())
    assert len(cues) >= 2
    for start, _, _ in expected:
        assert any(abs(start - at) <= 0.5 for at, _, _ in cues), (start, cues)
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)


def test_retries_rate_limits_server_errors_and_dropped_connections(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.inject(rate_limit(1), server_error(500), drop_connection(), server_error(503))
    work = tmp_path / "work"
    files = [copy_sample("talk.m4a", work), copy_sample("morning.mp3", work)]
    r = run_cli(["transcribe", *map(str, files), "--format", "txt,srt"], api_env)
    assert r.code == 0, r.output
    for f in files:
        assert f.with_suffix(".txt").read_text().strip()
        assert parse_srt(f.with_suffix(".srt").read_text())
    assert len(fake_openai.uploads) == 6
    assert [u.status for u in fake_openai.uploads].count(200) == 2
    assert "retrying" in r.stderr


def test_a_cut_off_answer_is_asked_again_and_both_answers_are_in_the_ledger(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.inject(truncated())
    f = copy_sample("talk.m4a", tmp_path / "work")
    r = run_cli(["transcribe", str(f)], api_env)
    assert r.code == 0, r.output
    assert "unreadable answer" in r.stderr and "retrying" in r.stderr
    assert "internal error" not in r.output
    assert f.with_suffix(".txt").read_text().strip()
    cut, whole = fake_openai.uploads
    assert (cut.status, whole.status) == (200, 200) and cut.sha256 == whole.sha256
    # The cut-off answer was billed too: by the seconds sent, as no usage could be read from it.
    assert cut.duration_s is not None and whole.duration_s is not None
    [row] = json.loads(run_cli(["report", "--json"], api_env).stdout)
    assert row["state"] == "done"
    assert row["billed_min"] == pytest.approx((cut.duration_s + math.ceil(whole.duration_s)) / 60, abs=1e-3)


def test_a_server_that_never_answers_is_given_up_on_by_each_chunk_s_length_and_the_wait_is_told(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.hold_after = 0  # every upload is taken in, and never answered
    work = tmp_path / "work"
    short, long = copy_sample("talk.m4a", work), copy_sample("script.ogg", work)  # first chunks: 8 s, 48 s
    env = {
        **api_env,
        "WHISPERBATCH_TIMEOUT_MIN_S": "0.5",
        "WHISPERBATCH_TIMEOUT_PER_AUDIO_S": "0.05",
        "WHISPERBATCH_WAIT_NOTICE_S": "1",
        "WHISPERBATCH_MAX_ATTEMPTS": "1",
    }
    r = run_cli(["transcribe", str(short), str(long)], env, timeout=120)
    assert r.code == 1, r.output
    assert "Traceback" not in r.output
    given_up = {}
    for line in r.stderr.splitlines():
        if m := re.fullmatch(
            r"error: (.*) \(chunk 1\): gave up after 1 attempts: no answer from \S+ within (\d+) s.*", line
        ):
            given_up[Path(m[1])] = int(m[2])
    assert set(given_up) == {short, long}, r.stderr
    assert 0 < given_up[short] < given_up[long] < 10  # the timeout follows the chunk's length
    assert f"{long}: still waiting for chunk 1 after 2 s" in r.stderr
    assert fake_openai.successful == []


def test_insufficient_quota_stops_at_once(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.inject(insufficient_quota(), insufficient_quota(), insufficient_quota())
    work = tmp_path / "work"
    f = copy_sample("talk.m4a", work)
    r = run_cli(["transcribe", str(f), "--concurrency", "1"], api_env)
    assert r.code == 3, r.output
    assert r.stderr.count("quota exhausted") == 1, r.stderr  # said once, when the run stops
    assert f"error: {f}: not finished: the run was stopped" in r.stderr.splitlines()
    assert "Traceback" not in r.output
    assert fake_openai.count == 1  # never retried
    assert sorted(p.name for p in work.iterdir()) == ["talk.m4a"]  # no partial outputs, no cost row


def test_rejected_key_stops_with_exit_3_and_never_shows_the_key(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.inject(unauthorized())
    f = copy_sample("talk.m4a", tmp_path / "work")
    r = run_cli(["transcribe", str(f), "-v"], api_env)
    assert r.code == 3
    assert r.stderr.count("key rejected") == 1, r.stderr
    assert CANARY_KEY not in r.output


def test_api_key_never_written_anywhere(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    f = copy_sample("morning.mp3", work)
    r = run_cli(["transcribe", str(f), "--format", "all", "-v"], api_env)
    assert r.code == 0, r.output
    rep = run_cli(["report", "--json"], api_env)
    assert CANARY_KEY not in r.output + rep.output
    for path in [*work.iterdir(), *(tmp_path / "home").rglob("*")]:
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path
    assert (work / "costs.csv").is_file() and (work / "morning.json").is_file()
    # The API names the language ("english"); the json keeps its code, as the local engine does.
    assert json.loads((work / "morning.json").read_text())["language"] == "en"
    # Fixed decimals in costs.csv: a spreadsheet never sees 8.6e-05.
    row = dict(zip(*csv.reader((work / "costs.csv").read_text().splitlines()), strict=True))
    assert "e-" not in ",".join(row.values())
    assert len(row["usd"].split(".")[1]) == 6 and float(row["usd"]) > 0


def test_models_without_timestamps_get_cues_from_speech(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    rec = tmp_path / "work" / "memo.wav"
    onsets = assemble(rec, [False, True, True, False, False, True, False, True], ffmpeg)
    r = run_cli(["transcribe", str(rec), "--model", "gpt-4o-transcribe"], api_env)
    assert r.code == 0, r.output
    assert {u.response_format for u in fake_openai.successful} == {"json"}
    assert all(u.duration_s is not None and u.duration_s <= 31 for u in fake_openai.successful)
    cues = parse_srt(rec.with_suffix(".srt").read_text())
    for onset in onsets:
        assert any(abs(start - onset) <= 1.0 for start, _, _ in cues), (onset, cues)


def test_hallucination_on_near_silence_is_dropped(api_env: dict[str, str], tmp_path: Path) -> None:
    with FakeOpenAI(api_key=CANARY_KEY, hallucinate_on_silence=True) as server:
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        hum = write_silence(work / "hum.wav", 6.0, amplitude=120)  # about -50 dBFS, no words
        env = {**api_env, "OPENAI_BASE_URL": server.base_url}
        r = run_cli(["transcribe", str(hum)], env)
        assert r.code == 0, r.output
        assert server.count == 0  # speech detection hears no voice in a hum: nothing uploaded or billed
        # Forced through by an energy threshold, the hum is uploaded; what the server invents is dropped.
        forced = {**env, "WHISPERBATCH_SILENCE_THRESHOLD_DBFS": "-60"}
        r = run_cli(["transcribe", str(hum), "--force"], forced)
        assert r.code == 0, r.output
        # Uploaded, then the "speech" left uncovered is asked about once more alone; both inventions go.
        assert server.count == 2
        assert hum.with_suffix(".txt").read_text().strip() == ""
        assert parse_srt(hum.with_suffix(".srt").read_text()) == []


def test_chunks_in_parallel_without_prompt_carry_over(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    rec = tmp_path / "work" / "talk.wav"
    pattern = [True, False, False, True, False, False, True, False, False, True]
    onsets = assemble(rec, pattern, ffmpeg)
    env = {**api_env, "WHISPERBATCH_CONDITION_ON_PREVIOUS": "false"}
    r = run_cli(["transcribe", str(rec), "--prompt", "Glossary: fox"], env)
    assert r.code == 0, r.output
    assert len(fake_openai.successful) == 4
    assert {u.prompt for u in fake_openai.successful} == {"Glossary: fox"}
    cues = parse_srt(rec.with_suffix(".srt").read_text())
    for onset in onsets:
        assert any(abs(start - onset) <= 0.5 for start, _, _ in cues), (onset, cues)
    assert all(any(o - 0.5 <= start <= o + 9 for o in onsets) for start, _, _ in cues)


def test_budget_refuses_work_that_would_exceed_it(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    f = copy_sample("talk.m4a", tmp_path / "work")
    r = run_cli(["transcribe", str(f), "--budget", "0.0001"], api_env)
    assert r.code == 3, r.output
    assert "budget" in r.stderr
    assert fake_openai.count == 0
    ok = run_cli(["transcribe", str(f), "--budget", "1"], api_env)
    assert ok.code == 0, ok.output


def test_an_unknown_price_is_shown_as_unknown_and_no_budget_takes_it(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """A compatible server's own model has no known price: the table, costs.csv, the ledger and `report`
    say unknown (never $0), a line says how to price it, and `--budget` refuses it before anything is
    sent, up front for a run and job by job for a worker (a job may name another model than the host)."""
    work = tmp_path / "work"
    f = copy_sample("talk.m4a", work)
    r = run_cli(["transcribe", str(f), "--model", "my-whisper"], api_env)
    assert r.code == 0, r.output
    row = next(ln for ln in r.stdout.splitlines() if "talk.m4a" in ln)
    assert row.count("unknown") == 2 and "0.0000" not in row, r.stdout  # USD/min and USD
    hint = 'set [models."my-whisper"] usd_per_min in config.toml'
    assert f"no price is known for my-whisper: {hint}" in r.stderr and "cost unknown" in r.stderr
    (line,) = csv.DictReader((work / "costs.csv").read_text().splitlines())
    assert [line[c] for c in ("usd_per_min", "usd", "api_equivalent_usd", "transcribe_usd")] == [""] * 4
    as_json, table = run_cli_together([(["report", "--json"], api_env), (["report"], api_env)])
    (cost,) = json.loads(as_json.stdout)
    assert cost["usd_per_min"] is cost["usd"] is cost["transcribe_usd"] is None
    assert "unknown" in table.stdout
    sent = fake_openai.count
    refused = run_cli(["transcribe", str(f), "--model", "my-whisper", "--budget", "1", "--force"], api_env)
    assert refused.code == 2, refused.output
    assert refused.stderr.splitlines() == [f"error: --budget needs the price of my-whisper: {hint}"]
    other = copy_sample("morning.mp3", work)
    assert run_cli(["enqueue", str(f), "--model", "my-whisper", "--force"], api_env).code == 0
    assert run_cli(["enqueue", str(other)], api_env).code == 0
    worker = run_cli(["worker", "--once", "--budget", "1"], api_env)
    assert worker.code == 1, worker.output
    assert fake_openai.count == sent + 1  # morning.mp3 only
    (failed,) = json.loads(run_cli(["status", "--json", "--state", "failed"], api_env).stdout)
    assert failed["error"] == f"{f}: not started: --budget needs the price of my-whisper: {hint}"
