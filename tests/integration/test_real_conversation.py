"""The recorded two-person call the speaker-label acceptance runs on is there, with its reference."""

from __future__ import annotations

import wave

from whisperbatch.testing.recordings import RealConversation
from whisperbatch.testing.scoring import der, word_attribution


def test_the_real_call_has_two_speakers_over_thirty_seconds(real_conversation: RealConversation) -> None:
    with wave.open(str(real_conversation.wav)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1)
        assert abs(w.getnframes() / w.getframerate() - 30.0) < 0.01
    assert len(real_conversation.speakers) == 2
    assert len(real_conversation.turns) == 10
    assert all(0 <= s < e <= 30.0 for s, e, _ in real_conversation.turns)
    speakers_in_words = {speaker for _, speaker in real_conversation.words}
    assert speakers_in_words == {"Diane", "Sheila"}
    assert real_conversation.words[:3] == (("Hello?", "Diane"), ("Hello?", "Sheila"), ("Oh,", "Diane"))


def test_the_real_call_scores_itself_perfectly(real_conversation: RealConversation) -> None:
    """Its own reference, relabelled, is a perfect hypothesis: the scores read the files right."""
    renamed = [(s, e, {"speaker90": "x", "speaker91": "y"}[who]) for s, e, who in real_conversation.turns]
    report = der(real_conversation.turns, renamed, collar_s=0.0)
    assert report.der == 0.0 and report.total_s > 20
    words = real_conversation.words
    assert word_attribution(words, [(w, who.upper()) for w, who in words]) == 1.0
