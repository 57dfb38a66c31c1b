"""Speaker labels: how right they are, what they cost next to transcribing, and their memory.

Recordings are built at run time (whisperbatch.testing.conversations): espeak-ng voices taking turns of
1 to 20 s with pauses of 0.2 to 1 s, the last voice silent for ten minutes from a third of the way in,
then back; the script says who speaks when, so it is the reference. Optionally the real two-person
telephone call from the pyannote.audio wheel (fetched from PyPI into a cache, never committed).

Per run it prints:
- speakers found against speakers there;
- DER = (missed + false alarm + confusion) / reference speech, after the best one-to-one mapping of
  labels, computed on 10 ms frames as NIST md-eval does, with a collar of 0.25 s on each side of every
  reference boundary left out of scoring (md-eval's `-c 0.25`, pyannote.metrics' `collar=0.5`), and with
  no collar;
- the share of the script's words given the right speaker (words aligned by text, labels mapped
  one-to-one);
- for the local engine: the time of `whisperbatch transcribe` (defaults) on the recording, and the
  time that `--diarize` adds on a second run, which finds the transcript in the store and only labels
  (minus a third run's time, which finds everything up to date: the process's own start and store
  look-ups), and their ratio, all in this process tree.

With `--memory 3h`, the peak resident memory of `whisperbatch transcribe` through the API path (an
instant local server, as bench/memory.py) on a conversation of that length, with and without
`--diarize`, and the difference.

    python bench/diarization.py                         # an hour: local, api-json, the real call
    python bench/diarization.py --minutes 10 --runs local
    python bench/diarization.py --runs real --memory 3h
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from memory import DUMMY_KEY, WRAPPER, InstantServer, parse_duration

from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.conversations import Conversation, long_conversation
from whisperbatch.testing.recordings import real_conversation
from whisperbatch.testing.scoring import der, word_attribution

RUNS = ("local", "api-json", "real")
CACHE = Path.home() / ".cache" / "whisperbatch-tests" / "real-conversation"


@dataclass(frozen=True)
class Row:
    run: str
    audio_min: float
    speakers: str
    der_collar: float
    der_none: float
    missed: float
    false_alarm: float
    confusion: float
    words: float
    transcribe_s: float | None = None
    label_s: float | None = None


def _env(home: Path, server: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    env["WHISPERBATCH_HOME"] = str(home)
    if server is not None:
        env.update(OPENAI_API_KEY=DUMMY_KEY, OPENAI_BASE_URL=server)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds `whisperbatch ARGS` took; exits on a failed run."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "whisperbatch", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"whisperbatch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def score(
    run: str,
    doc: dict[str, object],
    reference: list[tuple[float, float, str]],
    words: list[tuple[str, str]],
    audio_s: float,
) -> Row:
    turns = [(float(t["start_s"]), float(t["end_s"]), str(t["speaker"])) for t in doc["speakers"]]  # type: ignore[attr-defined]
    heard = [  # a model without word times gives text only: its words take their segment's speaker
        (str(w["text"]), w.get("speaker"))
        for s in doc["segments"]  # type: ignore[attr-defined]
        for w in s.get("words") or [{"text": t, "speaker": s.get("speaker")} for t in s["text"].split()]
    ]
    with_collar, without = der(reference, turns), der(reference, turns, collar_s=0.0)
    return Row(
        run=run,
        audio_min=audio_s / 60,
        speakers=f"{len({s for *_, s in turns})} / {len({s for *_, s in reference})}",
        der_collar=with_collar.der,
        der_none=without.der,
        missed=with_collar.missed_s / with_collar.total_s,
        false_alarm=with_collar.false_alarm_s / with_collar.total_s,
        confusion=with_collar.confusion_s / with_collar.total_s,
        words=word_attribution(words, heard),  # type: ignore[arg-type]
    )


def run_local(c: Conversation, work: Path) -> Row:
    """Transcribe, then label the stored transcript, then a run with nothing to do: the labels' cost."""
    home, out = work / "local-home", work / "local"
    out.mkdir()
    env = _env(home)
    base = [str(c.path), "-o", str(out), "--engine", "local", "--quiet"]
    transcribe_s = _run(["transcribe", *base, "-f", "json"], env, work)
    labelled_s = _run(["transcribe", *base, "-f", "json,rttm", "--diarize"], env, work)
    idle_s = _run(["transcribe", *base, "-f", "json,rttm", "--diarize"], env, work)
    doc = json.loads((out / f"{c.path.stem}.json").read_text())
    row = score("local", doc, c.segments, c.words, c.duration_s)
    return dataclasses.replace(row, transcribe_s=transcribe_s, label_s=labelled_s - idle_s)


def run_api_json(c: Conversation, work: Path, server_model: str) -> Row:
    """gpt-transcribe (text only, no times) behind the test server, with labels."""
    out = work / "api-json"
    out.mkdir()
    with FakeOpenAI(api_key=DUMMY_KEY, model=server_model) as server:
        env = _env(work / "api-home", server.base_url)
        args = ["transcribe", str(c.path), "-o", str(out), "--engine", "openai", "--model", "gpt-transcribe"]
        _run([*args, "-f", "json", "--diarize", "--quiet"], env, work)
    doc = json.loads((out / f"{c.path.stem}.json").read_text())
    return score("api-json", doc, c.segments, c.words, c.duration_s)


def run_real(work: Path) -> Row:
    call = real_conversation(CACHE)
    out = work / "real"
    out.mkdir()
    _run(
        ["transcribe", str(call.wav), "-o", str(out), "-f", "json", "--diarize", "--quiet"],
        _env(work / "real-home"),
        work,
    )
    doc = json.loads((out / f"{call.wav.stem}.json").read_text())
    return score("real call", doc, list(call.turns), list(call.words), 30.0)


def peak_mb(recording: Path, work: Path, label: str, extra: list[str]) -> float:
    """Peak resident memory of one `whisperbatch transcribe` through the API path, in MB."""
    cwd = work / f"memory-{label}"
    cwd.mkdir()
    server = InstantServer()
    try:
        report = cwd / "rusage.json"
        args = ["transcribe", str(recording), "-o", str(cwd), "-f", "srt", "--quiet", *extra]
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, str(report), *args],
            env=_env(cwd / "home", server.url),
            cwd=cwd,
            capture_output=True,
            text=True,
        )
    finally:
        server.stop()
    if proc.returncode != 0:
        raise SystemExit(f"memory run {label} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return int(json.loads(report.read_text())["peak_bytes"]) / 1e6


def print_rows(rows: list[Row]) -> None:
    head = ["run", "audio", "speakers found / there", "DER (collar 0.25 s each side)"]
    head += ["missed / false alarm / confusion", "DER (no collar)", "words to the right speaker"]
    head += ["transcribe (local, defaults)", "labels add", "ratio"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        speed = "| | | |"
        if r.transcribe_s is not None and r.label_s is not None:
            speed = f"| {r.transcribe_s:.1f} s | {r.label_s:.1f} s | {r.label_s / r.transcribe_s:.3f} |"
        print(
            f"| {r.run} | {r.audio_min:.1f} min | {r.speakers} | {r.der_collar:.3f} | "
            f"{r.missed:.3f} / {r.false_alarm:.3f} / {r.confusion:.3f} | {r.der_none:.3f} | "
            f"{r.words:.3f} {speed}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"any of {', '.join(RUNS)}")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the built conversation")
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--server-model", default="tiny.en", help="the model behind the API server")
    parser.add_argument(
        "--memory", type=parse_duration, help="also measure peak memory on this long a conversation"
    )
    parser.add_argument("--keep", action="store_true", help="keep recordings and outputs")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    if [r for r in runs if r not in RUNS]:
        parser.error(f"unknown run(s) in {args.runs}")
    work = Path(tempfile.mkdtemp(prefix="wb-diarization-"))
    rows: list[Row] = []
    try:
        if {"local", "api-json"} & set(runs):
            c = long_conversation(
                work / "conversation.wav",
                seed=args.seed,
                duration_s=args.minutes * 60,
                speakers=args.speakers,
            )
            print(
                f"conversation: {c.duration_s / 60:.1f} min, {len(c.turns)} turns, {len(c.speakers)} voices",
                flush=True,
            )
            if "local" in runs:
                rows.append(run_local(c, work))
                print(f"  local: done ({rows[-1].transcribe_s:.0f} s + {rows[-1].label_s:.0f} s)", flush=True)
            if "api-json" in runs:
                rows.append(run_api_json(c, work, args.server_model))
                print("  api-json: done", flush=True)
        if "real" in runs:
            rows.append(run_real(work))
        print()
        print_rows(rows)
        if args.memory:
            c = long_conversation(
                work / "long.wav", seed=args.seed, duration_s=args.memory, speakers=args.speakers
            )
            without = peak_mb(c.path, work, "without", [])
            labelled = peak_mb(c.path, work, "with", ["--diarize"])
            print()
            print(
                f"peak memory, {args.memory / 3600:.1f} h conversation through the API path: "
                f"{without:.1f} MB without labels, {labelled:.1f} MB with, +{labelled - without:.1f} MB"
            )
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
