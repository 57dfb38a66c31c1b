"""Speed of whisperbatch at every scale, each figure beside a reference measured in the same run.

Sections (`--only`, default all), each printing its rows and the ratio the acceptance reads:

- `local`: 10 minutes of speech (whisperbatch.testing.speechbuilder, markers at 1:40, 5:00 and 8:20), the
  bundled base model, int8, the cores this process may use. whisperbatch's default local run (`transcribe
  --engine local`) against faster-whisper's `BatchedInferencePipeline` (batch 8, word timestamps, beam
  5, same model, compute type and threads) called directly, both as fresh processes from start to
  exit (imports and model load included); and `WhisperModel.transcribe` (sequential, its defaults) for
  the word error rate only. Runs alternate `--rounds` times (2) and the fastest of each counts, since
  a shared machine slows single runs at random. Word error rates and marker offsets are printed.
- `api`: the 62-minute recording of bench/accuracy.py against whisperbatch.testing in this process,
  answering each request after 3 s per audio minute (`--pace`). `-j 1` with carried context against
  the sum of the server's answer times; `-j 4` and `-j 10` (defaults otherwise) against the ideal:
  the larger of (sum of answer times / j) and the longest single answer.
- `files`: 8 recordings of 3 minutes, the same server: `-j 1` against the sum of the server's answer
  times, and `-j 2/4/8/16` (`--files-j`) against `-j 1`, which is what the default `-j` is chosen from;
  then 40 recordings of 30 seconds (one request each) at `-j 8` against the ideal.
- `3h`: a 3-hour 44.1 kHz stereo FLAC (bench/memory.py builds it) through bench/memory.py's measured
  run against a server that answers at once, against `ffmpeg -i FILE -f null -` decoding it alone;
  with the peak memory of the whisperbatch process.
- `estimate`: the billed minutes of the `api` section's `-j 4` run (the long recording) and of a run
  on bench/accuracy.py's noisy 15-minute recording, against what `estimate` forecasts for the same
  files (its own function, `upload_forecast_s`, with the settings a run uses).

Every whisperbatch run is a subprocess with its own home, no config file and no OPENAI_*/WHISPERBATCH_*
variables from the calling shell. Absolute times depend on the machine; read the ratios.

    python bench/speed.py                        # everything (about 15 minutes on 2 cores)
    python bench/speed.py --only local --rounds 3
    python bench/speed.py --only api,estimate --long-minutes 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import memory  # noqa: E402
from accuracy import build_long, build_noisy  # noqa: E402

from whisperbatch.audio import find_ffmpeg, usable_cores  # noqa: E402
from whisperbatch.catalog import model_info  # noqa: E402
from whisperbatch.config import Settings  # noqa: E402
from whisperbatch.engines.local import bundled_model_dir  # noqa: E402
from whisperbatch.pipeline import chunk_params, upload_forecast_s  # noqa: E402
from whisperbatch.testing import FakeOpenAI, Upload  # noqa: E402
from whisperbatch.testing.scoring import find_marker, parse_srt, word_error_rate  # noqa: E402
from whisperbatch.testing.speechbuilder import build_recording  # noqa: E402

KEY = "sk-bench-speed-dummy-key"
SECTIONS = ("local", "api", "files", "3h", "estimate")
REFERENCE = """
import sys
from pathlib import Path
from faster_whisper import BatchedInferencePipeline, WhisperModel
model_dir, audio, out, mode, threads = sys.argv[1:6]
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=int(threads))
if mode == "batched":
    batched = BatchedInferencePipeline(model)
    segments, _ = batched.transcribe(audio, batch_size=8, word_timestamps=True, beam_size=5)
else:
    segments, _ = model.transcribe(audio, beam_size=5)
Path(out).write_text(" ".join(s.text.strip() for s in segments))
"""


@dataclass(frozen=True)
class Line:
    section: str
    what: str
    seconds: float
    reference: str
    reference_s: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.seconds / self.reference_s if self.reference_s else float("nan")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    return {**env, "WHISPERBATCH_HOME": str(home), **extra}


def timed(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return seconds


def whisperbatch(args: Sequence[str], work: Path, name: str, **env: str) -> float:
    run = work / name
    return timed([sys.executable, "-m", "whisperbatch", *args], clean_env(run / "home", **env), run)


def local(work: Path, ffmpeg: str, rounds: int) -> list[Line]:
    built = build_recording(
        work / "talk10.wav", duration_s=600, seed=3, ffmpeg=ffmpeg, markers_at_s=(100.0, 300.0, 500.0)
    )
    model = str(bundled_model_dir("base", Settings().cache_dir))
    threads = str(usable_cores())

    def reference(mode: str, n: int) -> tuple[float, str]:
        out = work / f"{mode}-{n}.txt"
        cmd = [sys.executable, "-c", REFERENCE, model, str(built.path), str(out), mode, threads]
        return timed(cmd, clean_env(work / "ref-home"), work), out.read_text()

    def ours(n: int) -> tuple[float, dict, list]:  # type: ignore[type-arg]
        out = work / f"local-{n}"
        args = [
            "transcribe",
            str(built.path),
            "--engine",
            "local",
            "-f",
            "json,srt",
            "-o",
            str(out),
            "--quiet",
        ]
        seconds = whisperbatch(args, work, f"local-run-{n}")
        return (
            seconds,
            json.loads((out / "talk10.json").read_text()),
            parse_srt((out / "talk10.srt").read_text()),
        )

    batched, runs = [], []
    for n in range(rounds):
        batched.append(reference("batched", n))
        runs.append(ours(n))
    sequential_s, sequential_text = reference("sequential", 0)
    best_ref = min(batched, key=lambda r: r[0])
    seconds, doc, cues = min(runs, key=lambda r: r[0])
    wer = word_error_rate(built.script, doc["text"])
    ref_wer = word_error_rate(built.script, best_ref[1])
    seq_wer = word_error_rate(built.script, sequential_text)
    offsets = []
    for marker in built.markers:
        cue = find_marker(cues, marker)
        offsets.append("missing" if cue is None else f"{cue[0] - marker.start_s:+.2f}")
    note = (
        f"WER {wer:.3f} (batched {ref_wer:.3f}, sequential {seq_wer:.3f}: {wer - seq_wer:+.3f}); "
        f"markers {', '.join(offsets)} s; all runs {', '.join(f'{r[0]:.1f}' for r in runs)} s, "
        f"batched {', '.join(f'{r[0]:.1f}' for r in batched)} s, sequential {sequential_s:.1f} s"
    )
    return [Line("local", "10 min, defaults", seconds, "BatchedInferencePipeline", best_ref[0], note)]


def paced_server(pace: float, *, decode: bool = False) -> FakeOpenAI:
    """Requests in parallel meet a server that does not decode (it reads the length off the 64 kbps
    MP3's size and answers one segment): a real one runs elsewhere, and decoding here would take the
    2 cores whisperbatch is measured on. Context carried (`decode`) needs segments where the speech
    is, or every answer would look like one that ran past its speech and be asked again."""
    server = FakeOpenAI(api_key=KEY, s_per_audio_min=pace, asr=decode)
    # Distinct words per region, so carried context is never mistaken for a repeat.
    server.transcriber = lambda upload, i, start, end: f"Region {upload.sha256[:8]} {i} of this upload."
    return server


def api_run(
    server: FakeOpenAI, work: Path, name: str, files: Sequence[Path], j: int, **env: str
) -> tuple[float, list[Upload], Path]:
    before = server.count
    out = work / f"{name}-out"
    args = ["transcribe", *map(str, files), "-j", str(j), "-f", "json", "-o", str(out), "--quiet"]
    seconds = whisperbatch(args, work, name, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.base_url, **env)
    uploads = server.uploads[before:]
    if any(u.status != 200 for u in uploads):
        raise SystemExit(f"FAILED: {name}: the server answered {[u.status for u in uploads]}")
    return seconds, uploads, out


def ideal(uploads: Sequence[Upload], j: int) -> float:
    answers = [u.answer_s for u in uploads]
    return max(sum(answers) / j, max(answers))


def api(work: Path, ffmpeg: str, pace: float, minutes: float) -> tuple[list[Line], dict[str, float]]:
    built = build_long(work / "long.wav", ffmpeg, minutes)
    lines, billed = [], {}
    with paced_server(pace, decode=True) as server:
        seconds, uploads, _ = api_run(
            server, work, "api-j1", [built.path], 1, WHISPERBATCH_CONDITION_ON_PREVIOUS="true"
        )
    with paced_server(pace) as server:
        total = sum(u.answer_s for u in uploads)
        lines.append(
            Line(
                "api",
                f"{minutes:g} min, -j 1, context",
                seconds,
                "sum of answer times",
                total,
                f"{len(uploads)} requests",
            )
        )
        for j in (4, 10):
            seconds, uploads, out = api_run(server, work, f"api-j{j}", [built.path], j)
            lines.append(
                Line(
                    "api",
                    f"{minutes:g} min, -j {j}",
                    seconds,
                    "ideal",
                    ideal(uploads, j),
                    f"{len(uploads)} requests, longest answer {max(u.answer_s for u in uploads):.1f} s",
                )
            )
            billed[built.path.name] = json.loads((out / "long.json").read_text())["cost"]["billed_min"]
    return lines, billed


def files(work: Path, ffmpeg: str, pace: float, concurrency: Sequence[int]) -> list[Line]:
    folder = work / "eight"
    folder.mkdir()
    recordings = [
        build_recording(folder / f"talk{i}.wav", duration_s=180, seed=100 + i, ffmpeg=ffmpeg).path
        for i in range(8)
    ]
    short = work / "short"
    short.mkdir()
    memos = [
        build_recording(short / f"memo{i:02d}.wav", duration_s=30, seed=200 + i, ffmpeg=ffmpeg).path
        for i in range(40)
    ]
    lines = []
    with paced_server(pace) as server:
        one, uploads, _ = api_run(server, work, "files-j1", recordings, 1)
        answers = sum(u.answer_s for u in uploads)
        note = f"{len(uploads)} requests"
        lines.append(Line("files", "8 x 3 min, -j 1", one, "sum of answer times", answers, note))
        for j in concurrency:
            seconds, uploads, _ = api_run(server, work, f"files-j{j}", recordings, j)
            note = f"{len(uploads)} requests; speed-up {one / seconds:.2f}x; ideal {ideal(uploads, j):.1f} s"
            lines.append(Line("files", f"8 x 3 min, -j {j}", seconds, "-j 1", one, note))
        seconds, uploads, _ = api_run(server, work, "memos-j8", memos, 8)
        note = f"{len(uploads)} requests, one per file"
        lines.append(Line("files", "40 x 30 s, -j 8", seconds, "ideal", ideal(uploads, 8), note))
    return lines


def three_hours(work: Path, ffmpeg: str) -> list[Line]:
    path = work / "three-hours.flac"
    t0 = time.perf_counter()
    memory.make_recording(ffmpeg, path, 3 * 3600, memory.make_units(ffmpeg, work))
    made_s = time.perf_counter() - t0
    decode_s = timed(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], clean_env(work), work
    )
    run = memory.measure("3h", path, 3 * 3600, made_s, work)
    # VmHWM, not ru_maxrss: started from this (large) process, the child's ru_maxrss begins at our size.
    peak = run.vmhwm_bytes or run.peak_bytes
    note = f"peak memory {peak / 2**20:.0f} MB, {run.uploads} requests"
    return [Line("3h", "3 h stereo FLAC, instant server", run.wall_s, "ffmpeg decode alone", decode_s, note)]


def estimate(work: Path, ffmpeg: str, billed: dict[str, float], minutes: float) -> list[Line]:
    long_path = work / "long.wav"
    if "long.wav" not in billed:  # `api` did not run: bill the long recording here
        build_long(long_path, ffmpeg, minutes)
    noisy = build_noisy(work / "noisy.wav", ffmpeg)
    with FakeOpenAI(api_key=KEY, asr=False) as server:  # hears everything: billed = uploaded
        for path in (long_path, noisy.path):
            if path.name not in billed:
                _, _, out = api_run(server, work, f"bill-{path.stem}", [path], 4)
                billed[path.name] = json.loads((out / f"{path.stem}.json").read_text())["cost"]["billed_min"]
    settings = Settings()
    params = chunk_params(settings.cut_options(), model_info("whisper-1", settings.models), max_bytes=None)
    lines = []
    for path in (long_path, noisy.path):
        t0 = time.perf_counter()
        forecast = upload_forecast_s(path, params, ffmpeg=ffmpeg) / 60
        took = time.perf_counter() - t0
        note = f"forecast {forecast:.2f} min in {took:.1f} s, billed {billed[path.name]:.2f} min"
        lines.append(Line("estimate", path.name, forecast, "billed minutes", billed[path.name], note))
    return lines


def print_lines(lines: Sequence[Line]) -> None:
    print(f"\n{'section':9} {'what':30} {'ours':>9} {'reference':>26} {'ref':>9} {'ratio':>6}")
    for x in lines:
        unit = "" if x.section == "estimate" else " s"
        print(
            f"{x.section:9} {x.what:30} {x.seconds:>7.2f}{unit:2} {x.reference:>26} "
            f"{x.reference_s:>7.2f}{unit:2} {x.ratio:>6.3f}"
        )
        if x.note:
            print(f"{'':10}{x.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=2, help="local runs of each kind (fastest counts)")
    parser.add_argument("--pace", type=float, default=3.0, help="server seconds per audio minute")
    parser.add_argument("--long-minutes", type=float, default=62.0)
    parser.add_argument("--files-j", default="2,4,8,16", help="concurrency for the 8 files, against -j 1")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    ffmpeg = find_ffmpeg()
    work = Path(tempfile.mkdtemp(prefix="wb-speed-"))
    print(f"{os.cpu_count()} CPUs, {usable_cores()} usable; working in {work}", flush=True)
    lines: list[Line] = []
    billed: dict[str, float] = {}
    try:
        for section in only:
            t0 = time.perf_counter()
            if section == "local":
                lines += local(work, ffmpeg, args.rounds)
            elif section == "api":
                found, billed = api(work, ffmpeg, args.pace, args.long_minutes)
                lines += found
            elif section == "files":
                lines += files(work, ffmpeg, args.pace, [int(j) for j in args.files_j.split(",")])
            elif section == "3h":
                lines += three_hours(work, ffmpeg)
            else:
                lines += estimate(work, ffmpeg, billed, args.long_minutes)
            print(f"[{section} done in {time.perf_counter() - t0:.0f} s]", flush=True)
            print_lines([x for x in lines if x.section == section])
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    print_lines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
