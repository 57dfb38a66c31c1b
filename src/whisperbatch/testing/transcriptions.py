"""The test server's audio endpoints: `/v1/audio/transcriptions` and `/v1/audio/translations`.

Requests are checked the way the real API checks them (model, response format per model, file type,
language), so a client that sends what OpenAI would refuse is refused here too; answers are shaped as the
API shapes them, with the `usage` it reports (seconds, or tokens for the gpt-4o transcribers).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, Protocol

from .asr import LANGUAGE_NAMES, SAMPLE_RATE, Heard, Whisper, decode_pcm, energy_segments, recognise
from .faults import DECODE_FAILED, UNAUTHORIZED, error_body, invalid_url, model_not_found
from .wire import Edit, Reply, Segments, Transcriber, Upload, json_reply

SUPPORTED_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
ALL_FORMATS = frozenset({"json", "text", "srt", "vtt", "verbose_json"})
# Prefixes, so dated snapshots (gpt-4o-mini-transcribe-2025-03-20) match too.
JSON_ONLY_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe")
TOKEN_BILLED_MODELS = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
AUDIO_TOKENS_PER_S = 1000 / 60  # an estimate: 1000 audio tokens a minute (≈ $0.006/min at $6 per 1M)
ENDPOINTS = {"/v1/audio/transcriptions": "transcribe", "/v1/audio/translations": "translate"}


class AudioBehaviour(Protocol):
    """What a test sets on the server to shape audio answers (see `FakeOpenAI`)."""

    whisper: Whisper | None
    heard: Heard | None
    asr: bool
    edit: Edit | None
    transcriber: Transcriber
    speech_threshold_dbfs: float
    hallucinate_on_silence: bool
    missing_models: set[str]
    translations_endpoint: bool


def answer_transcription(
    server: AudioBehaviour,
    upload: Upload,
    authorized: bool,
    fields: dict[str, list[tuple[str | None, bytes]]],
) -> tuple[Reply, Upload]:
    """Validate like the real API, then "transcribe"; returns the reply and the completed record."""
    if not authorized:
        return json_reply(401, UNAUTHORIZED), upload
    task = ENDPOINTS.get(upload.endpoint)
    if task is None or (task == "translate" and not server.translations_endpoint):
        return json_reply(404, invalid_url(upload.endpoint)), upload
    bad = "invalid_request_error"
    fmt, model = upload.response_format, upload.model
    if "file" not in fields:
        return json_reply(400, error_body("Missing required parameter: 'file'.", bad, "file")), upload
    if not model:
        return json_reply(400, error_body("you must provide a model parameter", bad, "model")), upload
    if model in server.missing_models:
        return json_reply(404, model_not_found(model)), upload
    if fmt not in ALL_FORMATS:
        msg = f"Invalid value: '{fmt}'. Supported values are: {sorted(ALL_FORMATS)}."
        return json_reply(400, error_body(msg, bad, "response_format", "invalid_value")), upload
    if model.startswith(JSON_ONLY_MODELS):
        if task == "translate":
            msg = f"The model '{model}' is not supported for translations. Use 'whisper-1'."
            return json_reply(400, error_body(msg, bad, "model", "unsupported_value")), upload
        if fmt not in ("json", "text"):
            msg = f"response_format '{fmt}' is not compatible with model '{model}'. Use 'json' or 'text'."
            return json_reply(400, error_body(msg, bad, "response_format", "unsupported_value")), upload
    if model.startswith("gpt-transcribe") and upload.language and upload.languages:
        msg = "Send either 'language' or 'languages', not both."
        return json_reply(400, error_body(msg, bad, "language", "invalid_value")), upload
    suffix = PurePosixPath(upload.filename).suffix.lower()
    if suffix.lstrip(".") not in SUPPORTED_EXTENSIONS:
        msg = f"Invalid file format. Supported formats: {list(SUPPORTED_EXTENSIONS)}"
        return json_reply(400, error_body(msg, bad, "file", "invalid_value")), upload
    unknown = [x for x in (upload.language, *upload.languages) if x and x not in LANGUAGE_NAMES]
    if server.whisper is not None and unknown:
        param = "language" if unknown[0] == upload.language else "languages"
        msg = f"Invalid language '{unknown[0]}': use an ISO-639-1 code such as 'en'."
        return json_reply(400, error_body(msg, bad, param, "invalid_value")), upload
    if not server.asr:  # instant mode: no decoding; the length is read off the size (64 kbps MP3)
        duration, pcm = max(1.0, upload.size_bytes * 8 / 64_000), None
    else:
        pcm = decode_pcm(fields["file"][0][1], suffix)
        if pcm is None:
            return json_reply(400, DECODE_FAILED), upload
        duration = len(pcm) / SAMPLE_RATE
    upload = replace(upload, duration_s=duration)
    upload = replace(upload, status=200)
    if server.whisper is not None and pcm is not None:
        segments, code = recognise(server.whisper, upload, pcm, task, server.heard)
        language = LANGUAGE_NAMES.get(code, code)
    else:
        segments = energy_segments(
            upload,
            pcm,
            duration,
            server.transcriber,
            threshold_dbfs=server.speech_threshold_dbfs,
            hallucinate_on_silence=server.hallucinate_on_silence,
        )
        language = upload.language or "english"
        given = upload.languages[:1] or [x for x in (upload.language,) if x in LANGUAGE_NAMES]
        code = given[0] if given else "en"
    if server.edit is not None:
        segments = server.edit(upload, [dict(s, words=list(s["words"])) for s in segments])
    segments = [dict(s, id=i) for i, s in enumerate(segments)]
    return _reply(upload, task, duration, segments, language, code), upload


def _reply(upload: Upload, task: str, duration: float, segments: Segments, language: str, code: str) -> Reply:
    """The answer in the requested format, shaped as the API shapes it (`language` the name verbose_json
    gives, `code` the detected language gpt-transcribe lists)."""
    fmt = upload.response_format
    joined = " ".join(t for s in segments if (t := s["text"].strip()))
    usage = _usage(upload, duration, joined)
    if fmt == "json":
        languages = {"languages": [{"code": code}]} if upload.model.startswith("gpt-transcribe") else {}
        return json_reply(200, {"text": joined} | languages | ({"usage": usage} if usage else {}))
    if fmt == "text":
        return Reply(200, (joined + "\n").encode(), "text/plain; charset=utf-8")
    if fmt in ("srt", "vtt"):
        return Reply(200, render_subtitles(segments, fmt).encode(), "text/plain; charset=utf-8")
    verbose: dict[str, Any] = {
        "task": task,
        "language": "english" if task == "translate" else language,
        "duration": round(duration, 2),
        "text": joined,
        "segments": [{k: v for k, v in s.items() if k != "words"} for s in segments],
    }
    if "word" in upload.granularities:
        verbose["words"] = [w for s in segments for w in s.get("words", ())]
    if usage:
        verbose["usage"] = usage
    return json_reply(200, verbose)


def _usage(upload: Upload, duration: float, text: str) -> dict[str, Any] | None:
    """Transcriptions report what was billed: seconds (rounded up), or tokens for the gpt-4o models
    (audio tokens estimated from the duration, text tokens as characters / 4). Translations: nothing."""
    if upload.endpoint != "/v1/audio/transcriptions":
        return None
    if not upload.model.startswith(TOKEN_BILLED_MODELS):
        return {"type": "duration", "seconds": math.ceil(duration)}
    audio = math.ceil(duration * AUDIO_TOKENS_PER_S)
    prompt = math.ceil(len(upload.prompt or "") / 4)
    output = math.ceil(len(text) / 4)
    return {
        "type": "tokens",
        "input_tokens": audio + prompt,
        "input_token_details": {"audio_tokens": audio, "text_tokens": prompt},
        "output_tokens": output,
        "total_tokens": audio + prompt + output,
    }


def _timestamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def render_subtitles(segments: list[dict[str, Any]], fmt: str) -> str:
    sep = "," if fmt == "srt" else "."
    cues = [
        (f"{i + 1}\n" if fmt == "srt" else "")
        + f"{_timestamp(s['start'], sep)} --> {_timestamp(s['end'], sep)}\n{s['text'].strip()}\n"
        for i, s in enumerate(segments)
    ]
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues)
