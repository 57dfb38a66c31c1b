"""Peak memory of whisperbatch's openai path on long recordings: does it stay flat as recordings grow?

Why this exists: pydub-style "decode the whole file" needs ~635 MB per hour of 44.1 kHz stereo, so a
3-hour recording would not fit on a small worker. whisperbatch streams instead (audio/decode.py: ffmpeg
decodes to 16 kHz mono and only about one chunk of PCM is held), and this script checks that promise end
to end.
The issue's acceptance: peak memory under 250 MB for a 20-minute and a 3-hour 44.1 kHz stereo
recording through the openai path (against a local instant server), and the 3-hour figure within 1.5x
of the 20-minute one.

What it does:
- Generates the recordings at run time in a temporary folder (audio is never committed): 44.1 kHz
  stereo FLAC built from 60-second units with ffmpeg's concat demuxer, re-encoded to FLAC in one pass
  (stream-copying FLAC would keep the first unit's STREAMINFO, so the file would claim to be 1 minute).
  A "talk" minute is samples/fox.wav six times, each padded to 10 s (about 7 s of speech, then a
  2.9 s pause: a cut point, but not long enough to skip); every 15th minute is a "break": one sentence
  then 50 s of silence, which is never uploaded. So chunks reach the 10-minute target (the largest
  PCM window the chunker ever holds) and the silence-skipping path runs too.
- Starts `python -m whisperbatch.testing --instant` (answers at once without decoding), one per
  recording, so its request count is that recording's number of uploads.
- Runs the real `whisperbatch` console-script entry point (`transcribe FILE --format srt --quiet`) in
  a child Python process through a tiny wrapper. When the command finishes, the wrapper reads
  `getrusage(RUSAGE_SELF).ru_maxrss`: the kernel's high-water mark of that process's resident set
  (the same number as VmHWM in /proc/self/status). Read inside the process it is exact: no sampling
  interval can miss a short spike, and the ffmpeg children are not mixed in, as they would be in
  `wait4()` on the wrapper from outside.
- ffmpeg children (the decoder, the encoder per chunk) are reported separately, sampled: the
  largest VmHWM seen in /proc every 50 ms among the run's descendant processes named ffmpeg*. Not
  RUSAGE_CHILDREN: subprocess starts children with vfork+exec, and the kernel then charges the
  parent's resident set to the child's ru_maxrss, so that figure is just the Python peak again (for
  the same reason a child caught before its exec is skipped).
- Prints a table and whether each criterion holds. It is a measurement, not a test: it exits 0 unless
  something broke (a failed run exits 1), and with `--check` it exits 1 when a criterion fails.

Usage:  python bench/memory.py [--durations 20m,3h] [--keep] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from whisperbatch.audio import find_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DUMMY_KEY = "sk-bench-memory-dummy-key"
UNIT_S = 60
BREAK_EVERY = 15  # every 15th minute is a break: one sentence, then a long silence
RATE_HZ = 44_100
LIMIT_MB = 250.0
MAX_RATIO = 1.5
MB = 1_000_000  # figures are in MB of 10^6 bytes (stricter than MiB for the 250 MB limit)

# Runs in the child: the console script's own entry point, then the process's peak RSS as JSON.
WRAPPER = r"""
import json, os, resource, sys, time
from importlib.metadata import entry_points

report, sys.argv = sys.argv[1], ["whisperbatch", *sys.argv[2:]]
(ep,) = entry_points(group="console_scripts", name="whisperbatch")
main = ep.load()
scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
code = 1


def write_report():
    hwm = None
    try:
        with open("/proc/self/status") as fh:
            hwm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        pass
    with open(report, "w") as fh:
        json.dump({
            "code": code,
            "after_import_bytes": after_import,
            "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            "vmhwm_bytes": hwm,
        }, fh)


# The command ends with os._exit once its output is flushed (skipping Python's teardown): report first.
_exit = os._exit
os._exit = lambda status: (globals().update(code=status), write_report(), _exit(status))
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
write_report()
sys.exit(code)
"""


@dataclass(frozen=True)
class Measurement:
    label: str
    duration_s: float
    size_bytes: int
    generate_s: float
    wall_s: float
    uploads: int | None
    after_import_bytes: int
    peak_bytes: int
    vmhwm_bytes: int | None
    children_peak_bytes: int | None  # sampled; None where /proc is missing
    rss_samples: tuple[tuple[float, int], ...]  # (seconds since start, VmRSS bytes) of the Python process


def parse_duration(text: str) -> float:
    """`20m`, `3h`, `90s`, `1h30m`, or plain seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 20m, 3h, 1h30m, 90s)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _ffmpeg(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-y", "-nostdin", "-v", "error", *args], check=True)


def make_units(ffmpeg: str, work: Path) -> tuple[Path, Path]:
    """One "talk" minute and one "break" minute, 44.1 kHz stereo PCM."""
    fmt = ["-ar", str(RATE_HZ), "-ac", "2", "-c:a", "pcm_s16le"]
    talk, brk = work / "unit-talk.wav", work / "unit-break.wav"
    per_rep = 10 * 16_000  # fox.wav is 16 kHz: pad each repetition to 10 s, then loop six times
    loop = f"apad=whole_dur=10,aloop=loop={UNIT_S // 10 - 1}:size={per_rep}"
    _ffmpeg(ffmpeg, "-i", str(SAMPLES / "fox.wav"), "-af", loop, "-t", str(UNIT_S), *fmt, str(talk))
    _ffmpeg(
        ffmpeg,
        "-i",
        str(SAMPLES / "fox.wav"),
        "-af",
        f"apad=whole_dur={UNIT_S}",
        "-t",
        str(UNIT_S),
        *fmt,
        str(brk),
    )
    return talk, brk


def make_recording(ffmpeg: str, path: Path, duration_s: float, units: tuple[Path, Path]) -> None:
    """Concatenate units (never held in memory) and encode once to FLAC, cut to the exact duration."""
    talk, brk = units
    n = int(-(-duration_s // UNIT_S))
    listing = path.with_suffix(".txt")
    listing.write_text(
        "".join(f"file '{brk if i % BREAK_EVERY == BREAK_EVERY - 1 else talk}'\n" for i in range(n))
    )
    _ffmpeg(
        ffmpeg,
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        str(listing),
        "-t",
        f"{duration_s:g}",
        "-c:a",
        "flac",
        str(path),
    )
    listing.unlink()


class InstantServer:
    """`python -m whisperbatch.testing --instant` as a subprocess; `stop()` returns how many requests it
    served."""

    def __init__(self) -> None:
        cmd = [sys.executable, "-m", "whisperbatch.testing", "--port", "0", "--instant"]
        self.proc = subprocess.Popen(
            [*cmd, "--api-key", DUMMY_KEY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._ready(timeout_s=30)

    def _ready(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout_s):
                raise RuntimeError(f"fake server printed nothing in {timeout_s:g} s")
            line = self.proc.stdout.readline()
        finally:
            sel.close()
        if not line.startswith("READY "):
            self.proc.kill()
            _, err = self.proc.communicate()
            raise RuntimeError(f"fake server did not start: {line!r} {err}")
        return line.split(None, 1)[1].strip()

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        m = re.search(r"served (\d+) requests", err or "")
        return int(m.group(1)) if m else None


def _status_bytes(pid: int, field: str) -> int | None:
    """A `VmRSS:`/`VmHWM:` line of /proc/PID/status in bytes; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _is_ffmpeg(pid: int) -> bool:
    """Only after exec: a child caught between vfork and exec still shows Python's comm and memory."""
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().startswith("ffmpeg")
    except OSError:
        return False


def _descendants(root: int) -> list[int]:
    """Processes below `root`, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])  # comm may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


class ProcSampler(threading.Thread):
    """Every `interval_s`: the process's VmRSS (a timeline) and its descendants' VmHWM (their peak)."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.available = os.path.isdir(f"/proc/{pid}")
        self.samples: list[tuple[float, int]] = []
        self.children_peak_bytes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while self.available and not self._stop_event.wait(self.interval_s):
            rss = _status_bytes(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.perf_counter() - t0, rss))
            for child in _descendants(self.pid):
                if _is_ffmpeg(child):
                    hwm = _status_bytes(child, "VmHWM")
                    self.children_peak_bytes = max(self.children_peak_bytes, hwm or 0)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def measure(label: str, recording: Path, duration_s: float, generate_s: float, work: Path) -> Measurement:
    """One `whisperbatch transcribe` run against a fresh instant server, in a clean environment."""
    cwd = work / f"run-{label}"
    cwd.mkdir()
    (cwd / "config.toml").write_text("# empty: defaults only, so no user or repo config changes the run\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPERBATCH_"))}
    server = InstantServer()
    try:
        env.update(OPENAI_API_KEY=DUMMY_KEY, OPENAI_BASE_URL=server.url, WHISPERBATCH_HOME=str(cwd / "home"))
        report = cwd / "rusage.json"
        cmd = [
            sys.executable,
            "-c",
            WRAPPER,
            str(report),
            "transcribe",
            str(recording),
            "--format",
            "srt",
            "--quiet",
        ]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sampler = ProcSampler(proc.pid)
        sampler.start()
        out, err = proc.communicate()
        wall_s = time.perf_counter() - t0
        sampler.stop()
    finally:
        uploads = server.stop()
    (cwd / "rss.tsv").write_text("".join(f"{t:.2f}\t{b}\n" for t, b in sampler.samples))
    if proc.returncode != 0 or not report.exists():
        raise RuntimeError(f"whisperbatch failed on {recording.name} (exit {proc.returncode}):\n{out}{err}")
    if not recording.with_suffix(".srt").exists():
        raise RuntimeError(f"whisperbatch wrote no {recording.with_suffix('.srt').name}")
    data = json.loads(report.read_text())
    return Measurement(
        label=label,
        duration_s=duration_s,
        size_bytes=recording.stat().st_size,
        generate_s=generate_s,
        wall_s=wall_s,
        uploads=uploads,
        after_import_bytes=int(data["after_import_bytes"]),
        peak_bytes=int(data["peak_bytes"]),
        vmhwm_bytes=None if data["vmhwm_bytes"] is None else int(data["vmhwm_bytes"]),
        children_peak_bytes=sampler.children_peak_bytes if sampler.available else None,
        rss_samples=tuple(sampler.samples),
    )


def _hms(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def print_table(rows: list[Measurement]) -> bool:
    """The table, then each criterion with PASS/FAIL; returns whether all passed."""
    head = (
        "recording",
        "duration",
        "file MB",
        "gen s",
        "wall s",
        "uploads",
        "import MB",
        "peak RSS MB",
        "ffmpeg max MB",
    )
    body = [
        (
            r.label,
            _hms(r.duration_s),
            f"{r.size_bytes / MB:.1f}",
            f"{r.generate_s:.1f}",
            f"{r.wall_s:.1f}",
            "?" if r.uploads is None else str(r.uploads),
            f"{r.after_import_bytes / MB:.1f}",
            f"{r.peak_bytes / MB:.1f}",
            "?" if r.children_peak_bytes is None else f"{r.children_peak_bytes / MB:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    for cells in (head, tuple("-" * w for w in widths), *body):
        pairs = enumerate(zip(cells, widths, strict=True))
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs))
    print()
    print(
        "peak RSS: ru_maxrss of the whisperbatch Python process itself (= its VmHWM). import: its RSS"
        " after importing the CLI, before any audio."
    )
    print("ffmpeg max: largest VmHWM among its child processes, sampled every 50 ms. MB = 10^6 bytes.")
    ok = True
    worst = max(rows, key=lambda r: r.peak_bytes)
    under = worst.peak_bytes / MB < LIMIT_MB
    ok &= under
    print(
        f"[{'PASS' if under else 'FAIL'}] peak RSS under {LIMIT_MB:g} MB: highest is"
        f" {worst.peak_bytes / MB:.1f} MB ({worst.label})"
    )
    if len(rows) >= 2:
        short, long_ = min(rows, key=lambda r: r.duration_s), max(rows, key=lambda r: r.duration_s)
        ratio = long_.peak_bytes / short.peak_bytes
        within = ratio <= MAX_RATIO
        ok &= within
        print(
            f"[{'PASS' if within else 'FAIL'}] peak RSS {long_.label} / {short.label} = {ratio:.2f}"
            f" (limit {MAX_RATIO:g})"
        )
    for r in rows:
        if r.vmhwm_bytes is not None and abs(r.vmhwm_bytes - r.peak_bytes) > 1 * MB:
            print(f"note: {r.label}: VmHWM {r.vmhwm_bytes / MB:.1f} MB differs from ru_maxrss")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--durations", default="20m,3h", help="comma-separated, e.g. 20m,3h or 90s,1h30m")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (recordings, outputs)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a criterion fails")
    args = parser.parse_args(argv)
    labels = [d.strip() for d in args.durations.split(",") if d.strip()]
    try:
        durations = [parse_duration(d) for d in labels]
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    ffmpeg = find_ffmpeg()
    work = Path(tempfile.mkdtemp(prefix="whisperbatch-bench-memory-"))
    rows: list[Measurement] = []
    try:
        units = make_units(ffmpeg, work)
        for label, duration_s in zip(labels, durations, strict=True):
            recording = work / f"recording-{label}.flac"
            t0 = time.perf_counter()
            make_recording(ffmpeg, recording, duration_s, units)
            generate_s = time.perf_counter() - t0
            print(
                f"{label}: generated {recording.name} ({recording.stat().st_size / MB:.1f} MB) in "
                f"{generate_s:.1f} s; transcribing...",
                file=sys.stderr,
                flush=True,
            )
            rows.append(measure(label, recording, duration_s, generate_s, work))
            r = rows[-1]
            print(
                f"{label}: peak RSS {r.peak_bytes / MB:.1f} MB in {r.wall_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.stderr.flush()
    print(
        f"whisperbatch openai path vs. a local instant server; {RATE_HZ} Hz stereo FLAC;"
        f" python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )
    ok = print_table(rows)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
