"""Speaker labels: a stage after the transcript, before its translation.

Labels are made from the recording itself, on this host (`speakers.diarize`), whatever engine made the
transcript, so adding them to a recording transcribed before uploads nothing and pays nothing. What
diarization found (turns and each voice's print) is stored under the job and the speaker options, so a
run again, or another name of the same recording, labels without listening again; registered names
are put to the voices each time, so a voice registered later names its speaker in the next outputs.

Labels never cost the transcript: when they cannot be made (a damaged model, too little speech), the
transcript goes on without them and says why (`Transcript.unlabelled`), and the file is done with
warnings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading

from ..errors import Stopped, WhisperbatchError, mask
from ..models import SpeakerTurn, Transcript
from ..speakers import Diarization, SpeakerOptions, diarize, name_speakers
from ..speakers.assign import label_transcript
from ..store import JobStore
from .recording import Draft, Recording

TOO_LITTLE = "too little speech to tell voices apart"


def to_json(d: Diarization) -> str:
    return json.dumps(
        {
            "turns": [[t.start_s, t.end_s, t.speaker] for t in d.turns],
            "voiceprints": {label: list(print_) for label, print_ in d.voiceprints.items()},
        }
    )


def from_json(text: str) -> Diarization:
    data = json.loads(text)
    return Diarization(
        tuple(SpeakerTurn(float(a), float(b), str(s)) for a, b, s in data["turns"]),
        {str(label): tuple(float(x) for x in p) for label, p in data["voiceprints"].items()},
    )


class SpeakerStage:
    """Adds speaker labels to a recording's transcript."""

    def __init__(
        self,
        options: SpeakerOptions,
        *,
        ffmpeg: str,
        store: JobStore | None,
        stop: threading.Event,
    ) -> None:
        self.options, self.ffmpeg, self.store, self.stop = options, ffmpeg, store, stop

    def key(self, job_key: str) -> str:
        """Where a job's labels are kept: the job, and the speaker counts asked for."""
        o = self.options
        identity = json.dumps([job_key, o.num_speakers, o.min_speakers, o.max_speakers])
        return hashlib.sha256(identity.encode()).hexdigest()

    def __call__(self, rec: Recording, draft: Draft) -> Draft:
        try:
            found = self.stored(rec.key)
            if found is None:
                found = diarize(rec.path, self.options, ffmpeg=self.ffmpeg, stop=self.stop)
                if self.store is not None:
                    self.store.save_speaker_labels(self.key(rec.key), rec.key, to_json(found))
        except Stopped:
            raise
        except WhisperbatchError as e:
            return self._without(draft, str(e).removeprefix(f"{rec.path}: "))
        except Exception as e:  # labels are an addition: whatever stops them, the transcript goes on
            return self._without(
                draft, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            )
        return dataclasses.replace(draft, transcript=self.labelled(draft.transcript, found))

    def stored(self, job_key: str) -> Diarization | None:
        text = None if self.store is None else self.store.speaker_labels(self.key(job_key))
        return None if text is None else from_json(text)

    def labelled(self, transcript: Transcript, found: Diarization) -> Transcript:
        """`transcript` labelled with `found`, registered voices named."""
        if not found.turns:
            return self.unlabelled(transcript, TOO_LITTLE) if transcript.text else transcript
        voices = [] if self.store is None else self.store.voices()
        return label_transcript(transcript, name_speakers(found, voices).turns)

    @staticmethod
    def unlabelled(transcript: Transcript, reason: str) -> Transcript:
        return dataclasses.replace(transcript, unlabelled=mask(reason))

    def _without(self, draft: Draft, reason: str) -> Draft:
        return dataclasses.replace(draft, transcript=self.unlabelled(draft.transcript, reason))
