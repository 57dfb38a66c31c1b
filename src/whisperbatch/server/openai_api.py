"""The OpenAI audio API, served: `POST /v1/audio/transcriptions`, `/v1/audio/translations` and
`GET /v1/models`, so the `openai` SDK, whisperbatch itself (`--base-url`) and any OpenAI-compatible app
can use this server, which cuts, checks and pays as a run does.

Every request is a durable job (`submit`): the same file with the same options is the same job, so a
client that retries, or asks again after the server restarted, gets the stored result and the
upstream engine is not paid twice. The request waits for its job, as OpenAI's endpoint does.

Which model runs a request, by one rule: `whisper-1` (what most apps send) and any name the server's
engine does not know mean the server's configured engine and model. With the API engine, a
transcription model of the server's catalog (built in, or a `[models."NAME"]` table in its config) is
honoured; the local engine always runs its own model (loading a second one per request would double
what the server holds in memory).

Responses are OpenAI's shapes: json `{"text", "usage"}`, text/srt/vtt as plain text, verbose_json with
Whisper's segment fields and, when `timestamp_granularities[]` asks, the words. They are made from the
job's json output (the translation's, when the job translated), so every format says the same.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import UploadFile

from ..catalog import MODELS, current_date, default_api_model
from ..config import Settings
from ..languages import LANGUAGES
from ..models import JobState
from ..store import Job
from .auth import require_key
from .context import Server
from .errors import ApiError, bad_field
from .outputs import MEDIA_TYPES, output
from .submit import Submission, check_name, receive_upload, submit, wait_finished

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], tags=["OpenAI audio API"])

ALIAS = "whisper-1"  # what most OpenAI clients send: the server's own engine and model
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
# Fields the SDK sends that the server takes and leaves to its own settings (its decoding, its cuts).
LEFT_TO_THE_SERVER = ("temperature", "chunking_strategy")
FIELDS = (
    "file",
    "model",
    "language",
    "languages[]",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "chunking_strategy",
    "stream",
)

# The multipart body as /docs shows it (the handlers read the form themselves, to name unknown fields).
_FORM_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "model"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "model": {"type": "string", "default": ALIAS},
                        "language": {"type": "string"},
                        "prompt": {"type": "string"},
                        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                        "temperature": {"type": "number", "description": "taken; the server decodes its way"},
                        "timestamp_granularities[]": {
                            "type": "array",
                            "items": {"type": "string", "enum": list(GRANULARITIES)},
                        },
                    },
                }
            }
        },
    }
}


def served_model(settings: Settings) -> str:
    """The model the server's engine runs when a request names none it honours."""
    if settings.engine_name == "openai":
        return settings.model or default_api_model(current_date())
    return settings.model or settings.local_model


def honoured_models(settings: Settings) -> list[str]:
    """The models a request may name, the server's own first: with the API engine, the catalog's
    transcription models (those not shut down yet, and the config's own), never a chat model."""
    own = served_model(settings)
    if settings.engine_name != "openai":
        return [own]
    today = current_date()
    catalog = [name for name, info in MODELS.items() if info.retires is None or today < info.retires]
    configured = [
        name
        for name, o in settings.models.items()
        if o.usd_per_m_input is None and o.usd_per_m_output is None and name != settings.translate_model
    ]
    return list(dict.fromkeys([own, *catalog, *configured]))


def job_model(settings: Settings, asked: str | None) -> str | None:
    """The model a request's job runs with: None (the server's own) unless it names another model
    the server honours."""
    if not asked or asked == ALIAS or asked == served_model(settings):
        return None
    return asked if asked in honoured_models(settings) else None


def listed_models(settings: Settings) -> list[str]:
    """What `GET /v1/models` lists: the models honoured, and the whisper-1 alias."""
    return list(dict.fromkeys([*honoured_models(settings), ALIAS]))


def _model_object(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "whisperbatch"}


@router.get("/models", summary="The models a request may name")
def list_models(request: Request) -> dict[str, Any]:
    server: Server = request.app.state.server
    created = int(server.started_at)
    return {"object": "list", "data": [_model_object(n, created) for n in listed_models(server.settings)]}


@router.get("/models/{model_id:path}", summary="One model")
def get_model(request: Request, model_id: str) -> dict[str, Any]:
    server: Server = request.app.state.server
    if model_id not in listed_models(server.settings):
        raise ApiError(404, f"The model '{model_id}' does not exist", field="model", code="model_not_found")
    return _model_object(model_id, int(server.started_at))


@router.post(
    "/audio/transcriptions", summary="Transcribe a recording (OpenAI's endpoint)", openapi_extra=_FORM_DOC
)
async def transcriptions(request: Request) -> Response:
    return await _answer(request, "transcribe")


@router.post(
    "/audio/translations",
    summary="Translate a recording into English (OpenAI's endpoint)",
    openapi_extra=_FORM_DOC,
)
async def translations(request: Request) -> Response:
    return await _answer(request, "translate")


@dataclass(frozen=True)
class Asked:
    """A request, checked: the job it makes and how it wants its answer."""

    task: str
    submission: Submission
    format: str
    words: bool  # `timestamp_granularities[]` holds "word"


def asked(fields: Mapping[str, list[str]], task: str, settings: Settings) -> Asked:
    """A request's form fields (each with its values), checked: an unknown field or a bad value is a
    400 naming it, before anything is kept or queued."""
    for name in fields:
        if name not in FIELDS and name != "timestamp_granularities":
            raise bad_field(name, f"not a field of this endpoint; the fields are {', '.join(FIELDS)}")
    one = {name: values[-1] for name, values in fields.items() if values}
    fmt = one.get("response_format") or "json"
    if fmt not in RESPONSE_FORMATS:
        raise bad_field("response_format", f"must be one of {', '.join(RESPONSE_FORMATS)}")
    if one.get("stream", "false").lower() not in ("false", "0"):
        raise bad_field("stream", "this server answers whole transcriptions, not streams")
    _check_temperature(one.get("temperature"))
    granularities = [
        g for key in ("timestamp_granularities[]", "timestamp_granularities") for g in fields.get(key, [])
    ]
    if any(g not in GRANULARITIES for g in granularities):
        raise bad_field("timestamp_granularities[]", f"each must be one of {', '.join(GRANULARITIES)}")
    languages = fields.get("languages[]", [])
    if len(languages) > 1:
        raise bad_field("languages[]", "this server takes one language")
    values: dict[str, Any] = {
        "language": one.get("language") or (languages[0] if languages else None),
        "prompt": one.get("prompt"),
        "model": job_model(settings, one.get("model")),
    }
    if task == "translate":
        values["to"] = "en"  # OpenAI's translations endpoint translates into English only
    return Asked(task, Submission.of(values, task=task), fmt, "word" in granularities)


def _check_temperature(raw: str | None) -> None:
    if raw is None or raw == "":
        return
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise bad_field("temperature", "must be a number from 0 to 1")


async def _answer(request: Request, task: str) -> Response:
    server: Server = request.app.state.server
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise ApiError(415, "send multipart/form-data with the recording in the field `file`", field="file")
    async with request.form(max_files=1, max_fields=50) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise bad_field("file", "the recording goes in the multipart field `file`")
        fields: dict[str, list[str]] = {}
        for name, value in form.multi_items():
            if name != "file":
                if not isinstance(value, str):
                    raise bad_field(name, "only the field `file` may carry a file")
                fields.setdefault(name, []).append(value)
        wanted = asked(fields, task, server.settings)
        name = check_name(file.filename)
        wanted.submission.plan(server, upload=True)  # every option checked before a byte is kept
        received = await asyncio.to_thread(receive_upload, server, file.file, name)
    job, _ = await asyncio.to_thread(submit, server, received, wanted.submission)
    job = await wait_finished(server, job.key)
    return await asyncio.to_thread(_response, server, finished(job), wanted)


def finished(job: Job) -> Job:
    """A done job; a failed one is a 422 with its reason (nothing a client retries into success)."""
    if job.state is JobState.FAILED:
        raise ApiError(422, f"job {job.id} failed: {job.error}", code="job_failed")
    return job


def document(server: Server, job: Job) -> dict[str, Any]:
    """The job's json output, as written (or rendered from its stored transcript)."""
    data: dict[str, Any] = json.loads(output(server, job, "json").text)
    return data


def whisper_segments(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The json output's segments in Whisper's (and OpenAI's verbose_json) shape. `seek` is the
    segment's start in 10-ms frames; `tokens` are not kept, so they are empty; a score the engine did
    not report is 0."""
    return [
        {
            "id": index,
            "seek": round(segment["start_s"] * 100),
            "start": segment["start_s"],
            "end": segment["end_s"],
            "text": " " + segment["text"],
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": segment.get("avg_logprob", 0.0),
            "compression_ratio": segment.get("compression_ratio", 0.0),
            "no_speech_prob": segment.get("no_speech_prob", 0.0),
        }
        for index, segment in enumerate(doc["segments"])
    ]


def whisper_words(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"word": word["text"], "start": word["start_s"], "end": word["end_s"]}
        for segment in doc["segments"]
        for word in segment.get("words", ())
    ]


def _response(server: Server, job: Job, wanted: Asked) -> Response:
    fmt = wanted.format
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(output(server, job, fmt).text, media_type=MEDIA_TYPES[fmt])
    doc = document(server, job)
    if wanted.format == "text":
        return PlainTextResponse(doc["text"] + "\n")
    usage = {"type": "duration", "seconds": math.ceil(doc["duration_s"])}
    if wanted.format == "json":
        return JSONResponse({"text": doc["text"], "usage": usage})
    language = doc.get("language") or ""
    verbose: dict[str, Any] = {
        "task": wanted.task,
        "language": LANGUAGES.get(language, language),
        "duration": doc["duration_s"],
        "text": doc["text"],
        "segments": whisper_segments(doc),
    }
    if wanted.words:
        verbose["words"] = whisper_words(doc)
    verbose["usage"] = usage
    return JSONResponse(verbose)
