"""The web page at `/`: the queue with live progress, failures and their retry, recordings added by
dropping files, a transcript viewer, the spend and the set-up check.

The server renders one page (or, when keys are required and the browser holds no session, the sign-in
form); a small script with no build step fills it from the same JSON API any client uses, so the page
can show nothing a client could not ask for. Signing in trades a key, posted once, for a random
session id in an HttpOnly, SameSite=Strict cookie: the key is never in the page, a URL or the script's
reach, and another site cannot make the browser use the session. The page allows only its own scripts
and styles (Content-Security-Policy), and the script inserts recording names and transcripts as text.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .. import __version__
from ..audio import AUDIO_SUFFIXES
from .auth import SESSION_COOKIE, open_session, require_key
from .context import Server
from .errors import ApiError
from .outputs import FORMATS
from .submit import UPLOAD_FORMATS

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The page's stylesheet and script, served at /static (nothing in them is secret or per user)."""
    return StaticFiles(directory=HERE / "static")


def signed_in(request: Request) -> bool:
    """Whether the request may see the page: no key needed, or a live key or session presented."""
    try:
        require_key(request)
    except ApiError:
        return False
    return True


def same_origin(request: Request) -> bool:
    """Whether a form was posted from this server's own page (browsers send Origin with every POST; a
    request without one is not a browser's, and has nothing to forge)."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _sign_in(request: Request, *, refused: bool) -> Response:
    return TEMPLATES.TemplateResponse(
        request,
        "sign_in.html",
        {"version": __version__, "refused": refused},
        status_code=401 if refused else 200,
        headers=SECURITY_HEADERS,
    )


@router.get("/")
def index(request: Request) -> Response:
    server: Server = request.app.state.server
    if not signed_in(request):
        return _sign_in(request, refused=False)
    context = {
        "version": __version__,
        "keys_required": server.keys_required,
        "work": server.runner is not None,
        "accept": ",".join(sorted(AUDIO_SUFFIXES)),
        "formats": FORMATS,
        "checked": UPLOAD_FORMATS.split(","),
    }
    return TEMPLATES.TemplateResponse(request, "page.html", context, headers=SECURITY_HEADERS)


@router.post("/login")
async def login(request: Request) -> Response:
    """Open a session for a live key posted in the form field `key` (401 and the form again if not)."""
    server: Server = request.app.state.server
    if not server.keys_required:
        return RedirectResponse("/", status_code=303)
    if not same_origin(request):
        raise ApiError(403, "sign in from the server's own page", code="cross_origin")
    async with request.form(max_files=0, max_fields=5) as form:
        key = form.get("key")
    session = open_session(server, key.strip()) if isinstance(key, str) and key.strip() else None
    if session is None:
        return _sign_in(request, refused=True)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    server: Server = request.app.state.server
    server.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
