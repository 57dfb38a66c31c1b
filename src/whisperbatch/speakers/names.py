"""Putting registered names to a recording's voices.

A voice registered once (`whisperbatch voices add`) is an embedding in the store; a recording's
speaker whose voice is close enough to one is labelled with that name. Each name goes to one speaker
at most and each speaker gets one name at most (the best matching overall), so two similar people in
one meeting are not both called by the name of one of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .cluster import assign
from .diarize import Diarization

# Cosine similarity from which a speaker is taken to be a registered voice: one voice's clip against its
# speaker in a recording scores about 0.95, two different people (on one telephone line) up to about 0.7.
NAME_THRESHOLD = 0.75


class NamedVoice(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def embedding(self) -> tuple[float, ...]: ...


def name_speakers(
    diarization: Diarization, voices: Sequence[NamedVoice], threshold: float = NAME_THRESHOLD
) -> Diarization:
    """`diarization` with each speaker that matches a registered voice renamed to it."""
    labels = list(diarization.voiceprints)
    if not labels or not voices:
        return diarization
    heard = np.array([diarization.voiceprints[label] for label in labels], dtype=np.float32)
    known = np.array([v.embedding for v in voices], dtype=np.float32)
    similarity = heard @ known.T
    names = {
        labels[row]: voices[col].name
        for row, col in assign(similarity).items()
        if similarity[row, col] >= threshold
    }
    if not names:
        return diarization
    return Diarization(
        tuple(dataclasses.replace(t, speaker=names.get(t.speaker, t.speaker)) for t in diarization.turns),
        {names.get(label, label): print_ for label, print_ in diarization.voiceprints.items()},
    )
