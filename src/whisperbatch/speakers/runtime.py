"""The two speaker models, loaded once per process on onnxruntime, and the error that says why not.

The models ship inside the package (`models/`, reproduced by `scripts/export_speaker_models.py`);
`speaker_models` in the settings points at another folder holding files of the same names. A file
that is missing or cannot be loaded is a `SpeakerError` naming it: labels are left out, the transcript
is not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WhisperbatchError

BUNDLED = Path(__file__).with_name("models")
SEGMENTATION = "segmentation-3.0.onnx"
EMBEDDING = "campplus-cn-en-common.onnx"


class SpeakerError(WhisperbatchError):
    """Speaker labels could not be made (a model that will not load, too little speech, a bad clip)."""


@dataclass(frozen=True)
class SegmentationSpec:
    """What the segmentation model's frames mean, as the export recorded it."""

    window_samples: int
    frames: int
    frame_step_s: float
    frame_duration_s: float


def models_folder(folder: str | Path | None) -> Path:
    return BUNDLED if folder is None else Path(folder).expanduser()


def segmentation_spec() -> SegmentationSpec:
    meta = json.loads((BUNDLED / "speakers.json").read_text())["segmentation"]
    return SegmentationSpec(
        int(meta["window_samples"]),
        int(meta["frames"]),
        float(meta["frame_step_s"]),
        float(meta["frame_duration_s"]),
    )


_lock = threading.Lock()


@functools.cache
def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    # Inputs change shape from run to run: an arena would keep the largest run's memory for good.
    opts.enable_cpu_mem_arena = False
    # The two models' runs take turns: threads of one spinning for work would hold the cores the other
    # (and ffmpeg, decoding ahead) needs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=opts)


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return trim


def release() -> None:
    """Give the memory a model's run freed back to the system. glibc keeps freed blocks of the sizes a
    run uses for later, so without this each input shape's activations would stay resident for good;
    elsewhere (no glibc) it does nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def run(folder: str | Path | None, name: str, feeds: dict[str, Any]) -> Any:
    """Model `name`'s first output for `feeds`, its run's memory given back."""
    try:
        return session(folder, name).run(None, feeds)[0]
    finally:
        release()


def session(folder: str | Path | None, name: str) -> Any:
    """The loaded model `name` from `folder` (the bundled models when None). Raises SpeakerError."""
    path = models_folder(folder) / name
    if not path.is_file():
        raise SpeakerError(f"speaker model {path} is missing")
    threads = max(1, min(4, os.cpu_count() or 1))
    try:
        with _lock:
            return _session(path.resolve(), threads)
    except Exception as e:  # onnxruntime raises its own exception types for a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpeakerError(f"speaker model {path.name} cannot be loaded ({reason[:200]})") from e
