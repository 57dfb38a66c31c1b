"""whisper-asr-webservice's protocol, served: `POST /asr` and `POST /detect-language`, as Bazarr's Whisper
provider (and other clients of that service) send them.

Each request is a durable job, as everywhere on this server: Bazarr waits synchronously, so `/asr`
waits for its job and answers the subtitles; asked again with the same audio (a timeout, a restarted
server), it gets the stored job, not a second bill. With `encode=false` the multipart `audio_file` is
raw 16 kHz mono s16le, which is wrapped as a WAV (`audio.wav`) before it is stored; otherwise it is any
recording with its real name.

Language detection costs one short job: the first 30 seconds (where Whisper itself looks for the
language) transcribed by the server's own engine with the language left open, and the language that
engine reports is the answer. That is the one honest way that works with every engine (an API has no
detection of its own), it is billed and kept like any job (asking again is free), and it costs 30
seconds of audio, not the recording. A model that reports no language (json-only API models) gets a
422 saying so.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
from pathlib import Path
from typing import Annotated, Any, BinaryIO, cast

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from ..audio import SAMPLE_RATE, find_ffmpeg
from ..errors import WhisperbatchError
from ..languages import LANGUAGES, language_code
from ..store import Job
from .auth import require_key
from .context import Server
from .errors import ApiError, bad_field
from .openai_api import document, finished, served_model, whisper_segments, whisper_words
from .outputs import MEDIA_TYPES, output
from .submit import Received, Submission, check_name, receive_upload, submit, wait_finished

router = APIRouter(dependencies=[Depends(require_key)], tags=["whisper-asr-webservice"])

RAW_NAME = "audio.wav"  # raw PCM (encode=false) is stored as this WAV
DETECT_WINDOW_S = 30
PCM_BYTES_PER_S = SAMPLE_RATE * 2
MEDIA = {**MEDIA_TYPES, "tsv": "text/tab-separated-values; charset=utf-8"}

Encode = Annotated[bool, Query(description="false: audio_file is raw 16 kHz mono s16le PCM")]
AudioFile = Annotated[UploadFile, File(description="The recording (raw PCM with encode=false)")]


@router.post("/asr", summary="Transcribe or translate a recording and answer its text (waits)")
async def asr(
    request: Request,
    audio_file: AudioFile,
    encode: Encode = True,
    task: Annotated[str, Query(pattern="^(transcribe|translate)$")] = "transcribe",
    language: str | None = None,
    initial_prompt: str | None = None,
    output_format: Annotated[str, Query(alias="output", pattern="^(txt|vtt|srt|tsv|json)$")] = "txt",
    word_timestamps: bool = False,
    vad_filter: Annotated[bool, Query(description="ignored: silence is always skipped")] = False,
    diarize: bool = False,
) -> Response:
    server: Server = request.app.state.server
    fields: dict[str, Any] = {"language": language, "prompt": initial_prompt, "diarize": diarize or None}
    if task == "translate":
        fields["to"] = "en"  # whisper-asr-webservice translates into English only
    submission = Submission.of(fields, task=task)
    submission.plan(server, upload=True)
    received = await asyncio.to_thread(stored_audio, server, audio_file, encode=encode)
    job = await _finished_job(server, received, submission)
    text = await asyncio.to_thread(_asr_text, server, job, output_format, word_timestamps)
    disposition = f'attachment; filename="{received.target.stem}.{output_format}"'
    headers = {"Asr-Engine": "whisperbatch", "Content-Disposition": disposition}
    return Response(text, media_type=MEDIA[output_format], headers=headers)


@router.post("/detect-language", summary="The language spoken in a recording's first 30 seconds")
async def detect_language(request: Request, audio_file: AudioFile, encode: Encode = True) -> JSONResponse:
    server: Server = request.app.state.server
    submission = Submission.of({"language": "auto"}, task="transcribe")
    submission.plan(server, upload=True)
    clip = await asyncio.to_thread(_opening, server, audio_file, encode=encode)
    job = await _finished_job(server, clip, submission)
    heard = job.transcript.language if job.transcript is not None else None
    code = language_code(heard) if heard else None
    if code is None:
        raise ApiError(
            422,
            f"no language found: the server's model ({served_model(server.settings)}) reported none "
            "for the first 30 seconds",
            code="no_language",
        )
    return JSONResponse({"detected_language": LANGUAGES[code], "language_code": code})


async def _finished_job(server: Server, received: Received, submission: Submission) -> Job:
    job, _ = await asyncio.to_thread(submit, server, received, submission)
    return finished(await wait_finished(server, job.key))


def stored_audio(server: Server, upload: UploadFile, *, encode: bool) -> Received:
    """The upload, received: a recording under its own name, or raw PCM as a WAV."""
    if encode:
        return receive_upload(server, upload.file, _name(upload.filename))
    size = _pcm_size(upload.file)
    return receive_upload(server, cast(BinaryIO, _Joined(wav_header(size), upload.file)), RAW_NAME)


def _opening(server: Server, upload: UploadFile, *, encode: bool) -> Received:
    """The first 30 seconds of the upload as a WAV (named by its content, so the same audio is the same
    detection job); the whole upload is not kept."""
    window = DETECT_WINDOW_S * PCM_BYTES_PER_S
    if encode:
        whole = receive_upload(server, upload.file, _name(upload.filename))
        try:
            pcm = _decode_opening(whole.temp)
        finally:
            whole.discard()
    else:
        _pcm_size(upload.file)
        pcm = upload.file.read(window)
    pcm = pcm[: len(pcm) // 2 * 2]
    if not pcm:
        raise bad_field("audio_file", "no audio in it")
    return receive_upload(server, io.BytesIO(wav_header(len(pcm)) + pcm), "opening.wav")


def _decode_opening(path: Path) -> bytes:
    try:
        ffmpeg = find_ffmpeg()
    except WhisperbatchError as e:
        raise ApiError(503, str(e)) from None
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-t", str(DETECT_WINDOW_S), "-vn"]
    cmd += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "-"]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise bad_field("audio_file", "cannot decode it as audio")
    return done.stdout


def _name(filename: str | None) -> str:
    try:
        return check_name(filename)
    except ApiError as e:
        raise bad_field("audio_file", e.message.removeprefix("file: ")) from None


def _pcm_size(stream: BinaryIO) -> int:
    """The size of raw PCM in `stream` (which is left at its start): whole 16-bit samples, not none."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    if size == 0:
        raise bad_field("audio_file", "the upload is empty")
    if size % 2:
        raise bad_field("audio_file", "raw PCM (encode=false) must be whole 16-bit samples")
    return size


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a 16 kHz mono 16-bit PCM WAV holding `data_bytes` of samples."""
    fmt = struct.pack("<HHIIHH", 1, 1, SAMPLE_RATE, PCM_BYTES_PER_S, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class _Joined:
    """A header, then a stream: read as one (for `receive_upload`, which hashes as it copies)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = io.BytesIO(head), rest

    def read(self, size: int = -1) -> bytes:
        return self.head.read(size) or self.rest.read(size)


def _asr_text(server: Server, job: Job, fmt: str, words: bool) -> str:
    """The job's text as whisper-asr-webservice writes each output."""
    if fmt in ("txt", "srt", "vtt"):
        return output(server, job, fmt).text
    doc = document(server, job)
    if fmt == "tsv":
        rows = [
            f"{round(s['start_s'] * 1000)}\t{round(s['end_s'] * 1000)}\t{' '.join(s['text'].split())}\n"
            for s in doc["segments"]
        ]
        return "start\tend\ttext\n" + "".join(rows)
    segments = whisper_segments(doc)
    if words:
        for segment, source in zip(segments, doc["segments"], strict=True):
            segment["words"] = whisper_words({"segments": [source]})
    return json.dumps({"text": doc["text"], "segments": segments, "language": doc.get("language")})
