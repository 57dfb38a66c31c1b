"""Command-line behaviour: bad inputs, estimates, the ledger report, configuration errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import SAMPLES, copy_sample, run_cli, run_cli_together
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.speechbuilder import build_recording


def _bad_files(work: Path) -> list[Path]:
    empty = work / "empty.wav"
    empty.write_bytes(b"")
    text = work / "notes.mp3"
    text.write_text("this is not audio at all\n" * 20)
    data = (SAMPLES / "talk.m4a").read_bytes()
    truncated = work / "cut.m4a"
    truncated.write_bytes(data[: len(data) // 3])
    return [empty, text, truncated]


def test_bad_files_fail_alone_with_one_line_each(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Bad files in a folder, and a path that does not exist named beside it: each is one error line,
    and the others go on."""
    work = tmp_path / "work"
    good = [copy_sample("talk.m4a", work), copy_sample("morning.mp3", work)]
    bad = _bad_files(work)
    r = run_cli(["transcribe", str(work), str(tmp_path / "nope.mp3")], api_env)
    assert r.code == 1, r.output
    assert "Traceback" not in r.output
    for g in good:
        assert g.with_suffix(".txt").read_text().strip()
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 4, r.stderr
    assert sum("nope.mp3: no such file or folder" in ln for ln in errors) == 1, r.stderr
    for b in bad:
        assert sum(b.name in ln for ln in errors) == 1
        assert not b.with_suffix(".txt").exists()
    assert any("empty" in ln for ln in errors if "empty.wav" in ln)
    assert any(
        "not a readable audio file" in ln or "cannot decode" in ln for ln in errors if "notes.mp3" in ln
    )
    assert len(fake_openai.successful) == 2  # nothing bad was uploaded


def test_estimate_contacts_nothing(api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    work = tmp_path / "work"
    for name in ("talk.m4a", "morning.mp3", "morning.webm"):
        copy_sample(name, work)
    # Without a key (the local engine would run) --model still names the API model to price.
    no_key = {k: v for k, v in api_env.items() if not k.startswith("OPENAI_")}
    r, plain = run_cli_together(
        [
            (["estimate", str(work), "--model", "gpt-4o-mini-transcribe", "--quick"], api_env),
            (["estimate", str(work), "--model", "gpt-4o-mini-transcribe"], no_key),
        ]
    )
    assert r.code == 0, r.output
    assert fake_openai.count == 0 and "an upper bound" in r.stderr
    assert "gpt-4o-mini-transcribe" in r.stdout and "0.0030/min" in r.stdout
    for name in ("talk.m4a", "morning.mp3", "morning.webm", "Total"):
        assert name in r.stdout
    total_line = next(ln for ln in r.stdout.splitlines() if "Total" in ln)
    assert "0.42" in total_line  # 8.94 + 8.04 + 8.04 s = 0.42 min
    assert plain.code == 0 and "gpt-4o-mini-transcribe" in plain.stdout and "0.0030/min" in plain.stdout, (
        plain.output
    )


def _total_minutes(table: str) -> float:
    """The Billed min cell of an estimate's Total row."""
    cells = [c.strip() for c in next(ln for ln in table.splitlines() if "Total" in ln).split("│")]
    return float([c for c in cells if c][2])


def test_estimate_forecasts_what_a_run_then_bills(
    api_env: dict[str, str], fake_openai: FakeOpenAI, ffmpeg: str, tmp_path: Path
) -> None:
    """Two minutes with 45 s without speech: the estimate finds the speech a run uploads, within 10% of
    the minutes the run then bills; `--quick` counts every second."""
    built = build_recording(
        tmp_path / "talk.wav",
        duration_s=120.0,
        seed=9,
        ffmpeg=ffmpeg,
        long_silences=[(30.0, 25.0), (80.0, 20.0)],
    )
    r, quick = run_cli_together(
        [(["estimate", str(built.path)], api_env), (["estimate", str(built.path), "--quick"], api_env)]
    )
    assert r.code == 0, r.output
    assert fake_openai.count == 0
    forecast = _total_minutes(r.stdout)
    assert _total_minutes(quick.stdout) == 2.0
    run = run_cli(["transcribe", str(built.path), "-f", "json"], api_env)
    assert run.code == 0, run.output
    billed = json.loads(built.path.with_suffix(".json").read_text())["cost"]["billed_min"]
    assert billed < 1.6 and abs(forecast - billed) <= 0.1 * billed, (forecast, billed)


def test_outputs_up_to_date_are_skipped_unless_forced(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    f = copy_sample("talk.m4a", tmp_path / "work")
    assert run_cli(["transcribe", str(f)], api_env).code == 0
    again = run_cli(["transcribe", str(f)], api_env)
    assert again.code == 0 and "up to date" in again.stderr
    assert fake_openai.count == 1
    assert run_cli(["transcribe", str(f), "--force"], api_env).code == 0
    assert fake_openai.count == 2
    # Redone with other outputs asked for: they go where this run says, not where the job first wrote.
    elsewhere = tmp_path / "elsewhere"
    forced = run_cli(["transcribe", str(f), "--force", "-f", "vtt", "-o", str(elsewhere)], api_env)
    assert forced.code == 0, forced.output
    assert fake_openai.count == 3
    assert sorted(p.name for p in elsewhere.iterdir()) == ["costs.csv", "talk.vtt"]
    assert not f.with_suffix(".vtt").exists()


def test_report_reads_the_ledger(api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    work = tmp_path / "work"
    f1, f2 = copy_sample("talk.m4a", work), copy_sample("morning.mp3", work)
    assert run_cli(["transcribe", str(f1)], api_env).code == 0
    assert run_cli(["transcribe", str(f2), "-o", str(tmp_path / "out")], api_env).code == 0
    as_json, table, as_csv = run_cli_together(
        [(["report", "--json"], api_env), (["report"], api_env), (["report", "--csv"], api_env)]
    )
    rows = json.loads(as_json.stdout)
    assert [Path(r["file"]).name for r in rows] == ["talk.m4a", "morning.mp3"]
    assert len({r["run_id"] for r in rows}) == 2
    assert all(r["engine"] == "openai" and r["usd"] > 0 for r in rows)
    assert "Total" in table.stdout
    csv_out = as_csv.stdout.splitlines()
    assert csv_out[0].startswith("run_id,recorded_at,file") and len(csv_out) == 3
    assert (tmp_path / "out" / "morning.srt").exists() and (tmp_path / "out" / "costs.csv").exists()


def test_configuration_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    f = copy_sample("talk.m4a", tmp_path / "work")
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[run]\nconcurency = 3\n")
    runs = (
        (["--engine", "cloud"], "engine = 'cloud' (from --engine)"),
        (["--format", "docx"], "docx"),
        (["--engine", "openai"], "OPENAI_API_KEY"),
        (["--config", str(cfg)], "concurency"),
    )
    results = run_cli_together([(["transcribe", str(f), *args], env) for args, _ in runs])
    for (args, said), r in zip(runs, results, strict=True):
        assert r.code == 2 and said in r.stderr, (args, r.output)
        assert "Traceback" not in r.output
    assert not f.with_suffix(".txt").exists()


def test_verbose_shows_what_lies_under_an_error(api_env: dict[str, str], tmp_path: Path) -> None:
    f = copy_sample("talk.m4a", tmp_path / "work")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    quiet, loud = run_cli_together(
        [
            (["transcribe", str(f), "-o", str(blocker / "sub")], api_env),
            (["transcribe", str(f), "-o", str(blocker / "sub"), "--verbose"], api_env),
        ]
    )
    assert quiet.code == loud.code == 2
    assert "caused by" not in quiet.stderr
    assert "caused by NotADirectoryError: [Errno 20]" in loud.stderr, loud.stderr


def test_the_process_ends_at_once_but_waits_for_a_thread_still_working(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`main` ends the process without Python's teardown, after flushing what was printed; a thread
    still running (not a daemon) gets the ordinary exit, which lets it finish."""
    marker = tmp_path / "finished"
    script = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "import whisperbatch.cli as cli\n"
        "if sys.argv[1] == 'thread':\n"
        "    def work():\n"
        "        time.sleep(0.5)\n"
        f"        Path({str(marker)!r}).write_text('yes')\n"
        "    threading.Thread(target=work).start()\n"
        "sys.argv = ['whisperbatch', *sys.argv[2:]]\n"
        "cli.main()\n"
    )
    # Everything after the usage line (which names the program as it was started) must come out.
    expected = run_cli(["transcribe", "--help"], env).stdout.split("\n", 1)[1]
    for mode in ("plain", "thread"):
        proc = subprocess.run(
            [sys.executable, "-c", script, mode, "transcribe", "--help"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n", 1)[1] == expected
        assert marker.exists() == (mode == "thread")
    proc = subprocess.run(
        [sys.executable, "-c", script, "plain", "transcribe", str(tmp_path / "nothing.wav")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and "nothing.wav" in proc.stderr


def test_onnxruntime_sends_and_writes_no_telemetry(env: dict[str, str], tmp_path: Path) -> None:
    """Speech detection loads onnxruntime, whose telemetry writes a device id under ~/.cache/Microsoft
    and a session file in the temp folder (and uploads when it can) unless ORT_DISABLE_TELEMETRY is set
    before it loads: whisperbatch sets it, and leaves a value the user chose alone."""
    home, tmp = tmp_path / "user", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    clean = {k: v for k, v in env.items() if k != "ORT_DISABLE_TELEMETRY"}
    clean |= {"HOME": str(home), "TMPDIR": str(tmp)}
    r = run_cli(["estimate", str(SAMPLES / "talk.m4a")], clean)
    assert r.code == 0, r.output
    assert not (home / ".cache" / "Microsoft").exists()
    assert list(tmp.iterdir()) == []
    show = [sys.executable, "-c", "import os, whisperbatch; print(os.environ['ORT_DISABLE_TELEMETRY'])"]
    for given, seen in ((None, "1"), ("0", "0")):
        run_env = clean if given is None else {**clean, "ORT_DISABLE_TELEMETRY": given}
        out = subprocess.run(show, capture_output=True, text=True, env=run_env, check=True).stdout
        assert out.strip() == seen


def test_a_price_that_is_not_a_number_is_a_config_error_for_every_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A price in config.toml that is not a number, or is negative, is one line naming the file, the
    model and the key (exit 2) whatever the command, before anything is read or sent."""
    f = copy_sample("talk.m4a", tmp_path / "work")
    commands = (
        ["transcribe", str(f)],
        ["translate", str(f)],
        ["estimate", str(f), "--model", "x"],
        ["enqueue", str(f)],
        ["watch", str(f.parent), "--once"],
        ["worker", "--once"],
        ["status"],
        ["report"],
        ["retry"],
    )
    cfg = tmp_path / "config.toml"
    bad = (('"cheap"', "'cheap'", "a number", commands), ("-0.5", "-0.5", "at least 0", commands[:3]))
    for price, shown, allowed, run in bad:
        cfg.write_text(f'[models."x"]\nusd_per_min = {price}\n')
        line = f'error: usd_per_min = {shown} (from {cfg} [models."x"]): must be {allowed}'
        results = run_cli_together([(command, {**env, "WHISPERBATCH_CONFIG": str(cfg)}) for command in run])
        for command, r in zip(run, results, strict=True):
            assert r.code == 2, (command, r.output)
            (said,) = r.stderr.splitlines()  # the service's lines start with the time
            assert said.endswith(line), (command, r.output)
    assert sorted(p.name for p in f.parent.iterdir()) == ["talk.m4a"]
