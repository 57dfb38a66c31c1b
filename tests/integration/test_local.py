"""The bundled model (multilingual base) is joined once into the cache."""

from __future__ import annotations

from pathlib import Path

from whisperbatch.engines.local import bundled_model_dir


def test_bundled_model_is_joined_once(model_cache: Path) -> None:
    first = bundled_model_dir("base", model_cache)
    stamp = (first / "model.bin").stat().st_mtime_ns
    again = bundled_model_dir("base", model_cache)
    assert again == first and (again / "model.bin").stat().st_mtime_ns == stamp
    assert {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"} <= {
        p.name for p in first.iterdir()
    }
