"""`real_conversation` reads the call and its reference out of the wheel, from the folder it is told."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from whisperbatch.testing.recordings import PYANNOTE_WHEEL, real_conversation

RTTM = """SPEAKER sample 1 0.500 2.000 <NA> <NA> spk_a <NA> <NA>
SPEAKER sample 1 2.750 1.250 <NA> <NA> spk_b <NA> <NA>
"""
STM = """sample 1 Ann 0.5 2.5 Good morning, Bob.
sample 1 Bob 2.75 4.0 Morning!
"""


def test_the_call_is_read_from_a_wheel_in_the_named_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / PYANNOTE_WHEEL, "w") as z:
        z.writestr("pyannote/audio/sample/sample.wav", b"RIFF-not-checked")
        z.writestr("pyannote/audio/sample/sample.rttm", RTTM)
        z.writestr("pyannote/audio/sample/sample.stm", STM)
    monkeypatch.setenv("WHISPERBATCH_TEST_WHEELS", str(wheels))
    cache = tmp_path / "cache"
    call = real_conversation(cache)
    assert call.wav == cache / "sample.wav" and call.wav.read_bytes() == b"RIFF-not-checked"
    assert call.turns == ((0.5, 2.5, "spk_a"), (2.75, 4.0, "spk_b"))
    assert call.speakers == ("spk_a", "spk_b")
    assert call.words == (("Good", "Ann"), ("morning,", "Ann"), ("Bob.", "Ann"), ("Morning!", "Bob"))
    (wheels / PYANNOTE_WHEEL).unlink()  # read from the cache from now on
    assert real_conversation(cache) == call
