"""Regenerate the French speech sample `samples/french.m4a` + `samples/french.json`.

Needs espeak-ng on PATH (`apt-get install espeak-ng`) and the ffmpeg `whisperbatch.audio.find_ffmpeg()`
returns (its native AAC encoder). Tests read the committed files; only this generator needs espeak-ng.

Layout of french.m4a (16 kHz mono AAC, DURATION_S long): digital silence, with each sentence of SENTENCES
(espeak-ng voice VOICE at WPM words per minute, resampled to 16 kHz and trimmed to its audible span, as
`make_script.synthesize` does) placed so that its audible span starts exactly at its OFFSETS_S entry.
french.json is {"language": "fr", "sentences": [{"text", "english", "start_s", "end_s"}, ...]} with the
audible span (first and last sample above -60 dBFS) to 10 ms; the gaps between sentences are silent for
at least MIN_GAP_S.

    python samples/make_french.py            # synthesise, encode, verify the decode, write both files
    python samples/make_french.py --check    # also transcribe the file with the bundled Whisper base
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np

from whisperbatch.audio import find_ffmpeg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_script import MARGIN_S, RATE, THRESHOLD, decode  # noqa: E402

VOICE, WPM = "fr", 140  # of the voices and speeds tried, the one Whisper base hears best
ESPEAK_ARGS: tuple[str, ...] = ()  # more espeak-ng options (pitch, word gap)
BITRATE = "24k"
DURATION_S = 30.0
MIN_GAP_S = 3.0
OFFSETS_S = (1.0, 9.0, 17.0, 25.0)  # where each sentence's audible span starts
SENTENCES = (
    ("Bonjour à tous, merci d'être venus ce matin.", "Hello everyone, thank you for coming this morning."),
    ("Le train pour Paris part à huit heures.", "The train to Paris leaves at eight o'clock."),
    ("Nous parlerons du budget de la ville.", "We will talk about the city budget."),
    ("La réunion se termine à midi.", "The meeting ends at noon."),
)


def synthesize(text: str, ffmpeg: str, work: Path) -> np.ndarray[Any, Any]:
    """espeak-ng → 16 kHz mono int16, trimmed to the audible span plus MARGIN_S each side (as make_script)."""
    raw, resampled = work / "raw.wav", work / "16k.raw"
    cmd = ["espeak-ng", "-v", VOICE, "-s", str(WPM), *ESPEAK_ARGS, "-w", str(raw), text]
    subprocess.run(cmd, check=True)
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(raw), "-af", f"aresample={RATE}"]
    subprocess.run([*cmd, "-ac", "1", "-f", "s16le", str(resampled)], check=True)
    pcm = np.fromfile(resampled, dtype=np.int16)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > THRESHOLD)
    margin = round(MARGIN_S * RATE)
    clip = np.zeros(loud[-1] + 1 - loud[0] + 2 * margin, dtype=np.int16)
    clip[margin:-margin] = pcm[loud[0] : loud[-1] + 1]
    return clip


def build(ffmpeg: str, bitrate: str = BITRATE) -> dict[str, Any]:
    margin = round(MARGIN_S * RATE)
    pcm = np.zeros(round(DURATION_S * RATE), dtype=np.int16)
    sentences: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for (text, english), offset in zip(SENTENCES, OFFSETS_S, strict=True):
            clip = synthesize(text, ffmpeg, Path(tmp))
            start = round(offset * RATE)
            end = start + len(clip) - 2 * margin  # one past the last audible sample
            pcm[start - margin : end + margin] = clip
            sentences.append(
                {
                    "text": text,
                    "english": english,
                    "start_s": round(start / RATE, 2),
                    "end_s": round(end / RATE, 2),
                }
            )
        for a, b in itertools.pairwise(sentences):
            assert b["start_s"] - a["end_s"] >= MIN_GAP_S, (a, b)
        assert sentences[-1]["end_s"] + MIN_GAP_S / 2 <= DURATION_S, sentences[-1]
        wav = Path(tmp) / "french.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm.tobytes())
        out = HERE / "french.m4a"
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav), "-map_metadata", "-1"]
        cmd += ["-c:a", "aac", "-b:a", bitrate, "-ac", "1", "-ar", str(RATE)]
        subprocess.run([*cmd, "-fflags", "+bitexact", "-movflags", "+faststart", str(out)], check=True)
    data = {"language": "fr", "sentences": sentences}
    verify(out, pcm, data, ffmpeg)
    (HERE / "french.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def verify(m4a: Path, original: np.ndarray[Any, Any], data: dict[str, Any], ffmpeg: str) -> None:
    """The encoded file decodes to the same length, in step with the source, silent between sentences."""
    pcm = decode(m4a, ffmpeg)
    assert abs(len(pcm) - len(original)) <= RATE // 100, (len(pcm), len(original))
    n = min(len(pcm), len(original))
    a, b = original[:n].astype(np.float64), pcm[:n].astype(np.float64)
    lags = range(-80, 81)
    corr = [float(np.dot(a[max(0, -k) : n - max(0, k)], b[max(0, k) : n - max(0, -k)])) for k in lags]
    lag = lags[int(np.argmax(corr))]
    assert abs(lag) <= 16, f"decoded audio is {lag} samples off the source"
    guard = round(0.1 * RATE)  # AAC pre-echo spreads a little around each sentence
    bounds = [0.0] + [x for s in data["sentences"] for x in (s["start_s"], s["end_s"])] + [len(pcm) / RATE]
    for lo, hi in zip(bounds[::2], bounds[1::2], strict=True):  # the silences around the sentences
        quiet = np.abs(pcm[round(lo * RATE) + guard : round(hi * RATE) - guard].astype(np.int32))
        assert quiet.size == 0 or quiet.max() < 200, (lo, hi, quiet.max())
    print(f"{m4a.name}: {m4a.stat().st_size} bytes, {len(pcm) / RATE:.2f} s, decoded lag {lag} samples")


def check(data: dict[str, Any], ffmpeg: str) -> None:
    """Transcribe (and translate) the file with the bundled multilingual Whisper base; print what it heard."""
    from faster_whisper import WhisperModel

    from whisperbatch.engines.local import bundled_model_dir

    model_dir = bundled_model_dir("base", Path(tempfile.gettempdir()) / "make-french-cache")
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
    audio = decode(HERE / "french.m4a", ffmpeg).astype(np.float32) / 32768.0
    options = {"word_timestamps": True, "condition_on_previous_text": False}  # as the local engine runs it
    segments, info = model.transcribe(audio, language=None, **options)
    segments = list(segments)
    print(f"base: language {info.language} (p={info.language_probability:.2f})")
    for s in segments:
        print(f"  [{s.start:6.2f} -> {s.end:6.2f}] {s.text.strip()}")
    for e in data["sentences"]:
        near = [s for s in segments if s.start < e["end_s"] and s.end > e["start_s"]]
        first = near[0].start if near else None
        ok = first is not None and abs(first - e["start_s"]) <= 1.0
        at = "none" if first is None else f"{first:.2f}"
        print(f"  {'ok ' if ok else 'BAD'} {e['start_s']:6.2f}: first segment at {at}  {e['text']!r}")
    translated, _ = model.transcribe(audio, language=None, task="translate", **options)
    print("base, task translate:")
    for s in translated:
        print(f"  [{s.start:6.2f} -> {s.end:6.2f}] {s.text.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="transcribe the file with Whisper base")
    parser.add_argument("--check-only", action="store_true", help="check the committed files, build nothing")
    parser.add_argument("--bitrate", default=BITRATE, help=f"AAC bitrate (default {BITRATE})")
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    data = json.loads((HERE / "french.json").read_text()) if args.check_only else build(ffmpeg, args.bitrate)
    if args.check or args.check_only:
        check(data, ffmpeg)


if __name__ == "__main__":
    main()
