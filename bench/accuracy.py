"""Accuracy of whisperbatch on long, noisy and repetitive recordings, measured against a real speech model.

Prints, per recording and run: marker sentences found (and how far each cue starts from the marker's
true time), word error rate and words lost against the script the recording was built from, the
longest cue and widest line, speech reported as gaps, text inside stretches without speech, and the
minutes billed against the minutes of audio.

Recordings are built at run time from the espeak-ng corpus (whisperbatch.testing.speechbuilder):
- long: 62 minutes of repetitive speech, four marker sentences right after silences at 1:35, 25:10,
  47:30 and 61:30, and a few long silences;
- noisy: 15 minutes of speech over pink noise and 50 Hz hum (about -48 dBFS), five minutes of one quiet
  speaker (-18 dB), and two minutes without speech;
- repetitive: 62 minutes of the same six sentences (samples/repeat.*, one voice) again and again in one
  order, as in rehearsals, lectures and scripted calls, where Whisper writes on past the speech in its
  window what it expects next; short pauses, four markers right after silences, a few long silences.

Runs: `api` (the openai engine against whisperbatch.testing serving faster-whisper tiny.en, or
`--server-model base`, with the default model: whisper-1, answering verbose_json), `api-json` (the same
server and engine with `--model gpt-transcribe`, which the server answers in json only, text without
times: whisperbatch cuts the audio into groups of utterances of at most 30 s and lays the text over
them), `local` (the bundled base model, no key), and `api+context` / `local+context` (previous text
carried into the next request, checked against speech detection). Each run is `whisperbatch transcribe`
in a subprocess with an isolated home, config and environment; the `model` column names the model the
transcript came from.

    python bench/accuracy.py                       # everything (about an hour on 2 cores)
    python bench/accuracy.py --recordings long --runs api,api-json   # verbose_json against json-only
    python bench/accuracy.py --recordings noisy --runs api,local
    python bench/accuracy.py --recordings repetitive --runs local,api,api-json
    python bench/accuracy.py --long-minutes 10     # a shorter "long" recording, for a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from whisperbatch.audio import find_ffmpeg
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.scoring import find_marker, parse_srt, word_error_rate, words_lost
from whisperbatch.testing.speechbuilder import Built, build_recording

ROOT = Path(__file__).resolve().parent.parent

DUMMY_KEY = "sk-bench-accuracy-dummy-key"
RUNS = {
    "api": ("openai", {}),
    # json only (no segment times): the same server, as gpt-transcribe; the text is laid over our utterances.
    "api-json": ("openai", {"WHISPERBATCH_MODEL": "gpt-transcribe"}),
    "api+context": ("openai", {"WHISPERBATCH_CONDITION_ON_PREVIOUS": "true"}),
    "local": ("local", {}),
    "local+context": ("local", {"WHISPERBATCH_CONDITION_ON_PREVIOUS": "true"}),
}
MARKERS_S = (95.0, 1510.0, 2850.0, 3690.0)
SILENT_MARGIN_S = 1.0  # a cue may reach this far into a stretch without speech


def build_long(path: Path, ffmpeg: str, minutes: float) -> Built:
    duration = minutes * 60
    scale = duration / 3720.0
    markers = [m * scale for m in MARKERS_S] if minutes < 62 else list(MARKERS_S)
    silences = [(s * scale, n) for s, n in ((600.0, 20.0), (1200.0, 40.0), (2000.0, 15.0), (3300.0, 30.0))]
    return build_recording(
        path, duration_s=duration, seed=62, ffmpeg=ffmpeg, markers_at_s=markers, long_silences=silences
    )


def build_noisy(path: Path, ffmpeg: str) -> Built:
    return build_recording(
        path,
        duration_s=900.0,
        seed=15,
        ffmpeg=ffmpeg,
        markers_at_s=(200.0, 780.0),
        long_silences=[(480.0, 120.0)],
        noise_dbfs=-48.0,
        hum_hz=50.0,
        quiet=[(120.0, 300.0)],
        quiet_db=-18.0,
    )


def build_repetitive(path: Path, ffmpeg: str, minutes: float) -> Built:
    duration = minutes * 60
    return build_recording(
        path,
        duration_s=duration,
        seed=20,
        ffmpeg=ffmpeg,
        corpus_name="repeat",
        sentences=range(6),  # in this order, again and again
        pause_s=(0.3, 1.2),
        markers_at_s=[duration * f for f in (0.08, 0.35, 0.62, 0.93)],
        long_silences=[(duration * f, n) for f, n in ((0.2, 15.0), (0.5, 25.0), (0.8, 12.0))],
    )


BUILDERS = {
    "long": lambda path, ffmpeg, args: build_long(path, ffmpeg, args.long_minutes),
    "noisy": lambda path, ffmpeg, args: build_noisy(path, ffmpeg),
    "repetitive": lambda path, ffmpeg, args: build_repetitive(path, ffmpeg, args.repetitive_minutes),
}


@dataclass(frozen=True)
class Row:
    recording: str
    run: str
    model: str
    markers: str
    marker_cues: str
    marker_error_s: float
    wer: float
    lost: str
    longest_cue_s: float
    zero_cues: int
    widest_line: int
    most_lines: int
    gaps: int
    silent_words: int
    billed_min: float
    audio_min: float
    wall_s: float


def run_once(label: str, built: Built, name: str, server: FakeOpenAI, work: Path) -> Row:
    engine, extra = RUNS[label]
    out = work / f"{name}-{label}"
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    env.update(extra)
    env["WHISPERBATCH_HOME"] = str(out / "home")
    if os.environ.get("WHISPERBATCH_CACHE_DIR"):
        env["WHISPERBATCH_CACHE_DIR"] = os.environ["WHISPERBATCH_CACHE_DIR"]
    if engine == "openai":
        env.update({"OPENAI_API_KEY": DUMMY_KEY, "OPENAI_BASE_URL": server.base_url})
    cmd = [sys.executable, "-m", "whisperbatch", "transcribe", str(built.path), "-f", "json,srt"]
    cmd += ["-o", str(out), "--engine", engine, "--quiet"]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=out, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{label} on {name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    doc = json.loads((out / f"{built.path.stem}.json").read_text())
    srt = (out / f"{built.path.stem}.srt").read_text()
    cues = parse_srt(srt)
    errors = []
    for marker in built.markers:
        cue = find_marker(cues, marker)
        errors.append(abs(cue[0] - marker.start_s) if cue is not None else None)
    found = [e for e in errors if e is not None]
    # A cue that starts within 1 s of a marker: its speech was transcribed there, however well.
    timed = sum(any(abs(c[0] - m.start_s) <= 1.0 for c in cues) for m in built.markers)
    lost = words_lost(built.script, doc["text"])
    reference_words = len(built.script.split())
    lines = [line for block in srt.strip().split("\n\n") for line in block.splitlines()[2:]]
    per_cue = [len(block.splitlines()) - 2 for block in srt.strip().split("\n\n") if block.strip()]
    silent = [
        (a + SILENT_MARGIN_S, b - SILENT_MARGIN_S)
        for a, b in built.silences
        if b - a > 2 * SILENT_MARGIN_S + 10
    ]
    silent_words = sum(
        len(text.split()) for start, end, text in cues if any(start < b and end > a for a, b in silent)
    )
    return Row(
        recording=name,
        run=label,
        model=str(doc.get("model", "?")),
        markers=f"{len(found)}/{len(errors)}",
        marker_cues=f"{timed}/{len(errors)}",
        marker_error_s=max(found) if found else float("nan"),
        wer=word_error_rate(built.script, doc["text"]),
        lost=f"{lost} ({100 * lost / max(reference_words, 1):.1f}%)",
        longest_cue_s=max((b - a for a, b, _ in cues), default=0.0),
        zero_cues=sum(1 for a, b, _ in cues if b - a < 0.05),
        widest_line=max((len(line) for line in lines), default=0),
        most_lines=max(per_cue, default=0),
        gaps=len(doc.get("gaps", [])),
        silent_words=silent_words,
        billed_min=float(doc["cost"]["billed_min"]),
        audio_min=built.duration_s / 60,
        wall_s=wall,
    )


def print_rows(rows: list[Row]) -> None:
    head = (
        "recording",
        "run",
        "model",
        "markers (70% words)",
        "cue at marker (1 s)",
        "worst marker Δ s",
        "WER",
        "words lost",
        "longest cue s",
        "cues < 50 ms",
        "widest line",
        "lines",
        "gaps",
        "words in silence",
        "billed/audio min",
        "wall s",
    )
    table = [
        (
            r.recording,
            r.run,
            r.model,
            r.markers,
            r.marker_cues,
            f"{r.marker_error_s:.2f}",
            f"{r.wer:.3f}",
            r.lost,
            f"{r.longest_cue_s:.1f}",
            str(r.zero_cues),
            str(r.widest_line),
            str(r.most_lines),
            str(r.gaps),
            str(r.silent_words),
            f"{r.billed_min:.1f}/{r.audio_min:.1f}",
            f"{r.wall_s:.0f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--recordings", default=",".join(BUILDERS), help=f"any of {', '.join(BUILDERS)}")
    parser.add_argument("--runs", default=",".join(RUNS), help=f"any of {', '.join(RUNS)}")
    parser.add_argument("--server-model", default="tiny.en", help="the model behind the API server")
    parser.add_argument("--long-minutes", type=float, default=62.0)
    parser.add_argument("--repetitive-minutes", type=float, default=62.0)
    parser.add_argument("--keep", action="store_true", help="keep recordings and outputs")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown run(s): {', '.join(unknown)}")
    names = [n.strip() for n in args.recordings.split(",") if n.strip()]
    if [n for n in names if n not in BUILDERS]:
        parser.error(f"unknown recording(s) in {args.recordings}")
    ffmpeg = find_ffmpeg()
    work = Path(tempfile.mkdtemp(prefix="wb-accuracy-"))
    rows: list[Row] = []
    try:
        with FakeOpenAI(api_key=DUMMY_KEY, model=args.server_model) as server:
            for name in names:
                path = work / f"{name}.wav"
                built = BUILDERS[name](path, ffmpeg, args)
                speech_min = sum(p.end_s - p.start_s for p in built.placed) / 60
                print(
                    f"{name}: {built.duration_s / 60:.1f} min, {len(built.placed)} sentences, "
                    f"{speech_min:.1f} min of speech, {len(built.markers)} markers",
                    flush=True,
                )
                for label in runs:
                    rows.append(run_once(label, built, name, server, work))
                    print(f"  {label}: done in {rows[-1].wall_s:.0f} s", flush=True)
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"API server model: {args.server_model}; local model: base (bundled)")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
