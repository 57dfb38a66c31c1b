"""The test server's model list: `GET /v1/models` and `GET /v1/models/{id}`, answered as the API answers
them, so a client can ask, without paying for anything, whether its key is accepted and a model is
served (`whisperbatch doctor` does)."""

from __future__ import annotations

from typing import Protocol

from ..catalog import CHAT_MODELS, MODELS
from .faults import UNAUTHORIZED, error_body, model_not_found
from .wire import Reply, json_reply

MODELS_ENDPOINT = "/v1/models"
# What the server lists unless a test says otherwise: the transcription and chat models it serves.
SERVED_MODELS = (*MODELS, *CHAT_MODELS)
_CREATED = 1677628800  # 2023-03-01, a fixed `created` time


class ModelListing(Protocol):
    """What a test sets on the server to shape the list (see `FakeOpenAI`)."""

    listed_models: list[str]
    missing_models: set[str]
    models_endpoint: bool


def answer_models(server: ModelListing, path: str, authorized: bool) -> Reply:
    """The list, or one model; a wrong key is 401 as for every other request, and a model that is not
    listed (or is in `missing_models`) is 404 model_not_found. Without `models_endpoint` the paths are
    unknown URLs (404), as on servers that do not implement them."""
    if not server.models_endpoint or not (path == MODELS_ENDPOINT or path.startswith(MODELS_ENDPOINT + "/")):
        return json_reply(404, error_body(f"Invalid URL (GET {path})", "invalid_request_error"))
    if not authorized:
        return json_reply(401, UNAUTHORIZED)
    served = [m for m in server.listed_models if m not in server.missing_models]
    if path == MODELS_ENDPOINT:
        return json_reply(200, {"object": "list", "data": [_model(m) for m in served]})
    name = path.removeprefix(MODELS_ENDPOINT + "/")
    if name not in served:
        return json_reply(404, model_not_found(name))
    return json_reply(200, _model(name))


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": _CREATED, "owned_by": "whisperbatch-testing"}
