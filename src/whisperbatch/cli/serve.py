"""`serve`: the HTTP face (job API, OpenAI and whisper-asr-webservice endpoints, the web page) and the
job runner in one process, over the same store as every other command.

uvicorn serves on a thread of its own, so the main thread runs the one job loop (`jobs.serve`) with
its signals: Ctrl-C or SIGTERM stops new work, lets requests in flight finish for the grace period,
puts unfinished jobs back in the queue, then stops the HTTP server. Listening beyond this machine
needs a key made first (`whisperbatch keys create`); no request is then served without one.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import scratch
from ..config import Settings
from ..errors import ConfigError
from ..jobs import SERVICE, serve
from ..models import Task
from ..pipeline import Event
from ..server.context import DEFAULT_UPLOAD_MAX_BYTES, Server, ServerOptions
from ..server.hub import EventHub
from ..store import JobStore
from . import wiring
from .options import Options
from .output import Output, fail
from .wiring import service_exit

if TYPE_CHECKING:  # the HTTP stack is imported by `serve` alone, not by every command's start
    import uvicorn

    from ..server.webhooks import WebhookSender

_STARTUP_WAIT_S = 30.0


def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", metavar="ADDR", help="Address to listen on (beyond loopback needs a key)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="Port to listen on (0: any free port).")
    ] = 8000,
    no_work: Annotated[
        bool, typer.Option("--no-work", help="Only serve: workers elsewhere run the jobs (shared store).")
    ] = False,
    roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--root", metavar="DIR", help="A folder whose recordings requests may name by path (repeatable)."
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", metavar="MB", help="Largest upload taken, in MB.")
    ] = DEFAULT_UPLOAD_MAX_BYTES / 1e6,
    queue_max: Annotated[
        int, typer.Option("--queue-max", metavar="N", help="Jobs waiting before new ones get 429.")
    ] = 1000,
    webhooks: Annotated[
        list[str] | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="Post job.done and job.failed here, signed with webhook_secret (repeatable).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP job API, the OpenAI and whisper-asr-webservice endpoints and the web page, and run
    the jobs (unless --no-work)."""
    import uvicorn

    from ..server.app import create_app

    options = Options.of(ctx)
    if webhooks:
        options = dataclasses.replace(options, flags={**options.flags, "webhooks": tuple(webhooks)})
    out = Output(quiet=options.quiet, verbose=options.verbose, log=True)
    folders = tuple(r.expanduser().resolve() for r in roots or ())
    for folder in folders:
        if not folder.is_dir():
            raise fail(out, ConfigError(f"--root {folder}: not a folder"))
    if max_upload_mb <= 0 or queue_max < 1:
        raise fail(out, ConfigError("--max-upload-mb and --queue-max must be positive"))
    server_options = ServerOptions(
        host=host, port=port, roots=folders, upload_max_bytes=int(max_upload_mb * 1e6), queue_max=queue_max
    )
    if not server_options.loopback and not wiring.with_store(out, options, _live_key):
        raise fail(
            out,
            ConfigError(
                f"{host} is reachable from other machines, and no key exists: make one first "
                "(whisperbatch keys create NAME), or listen on 127.0.0.1"
            ),
        )
    ready = wiring.prepare(out, options, Task.TRANSCRIBE)
    hub = EventHub()

    def told(event: Event) -> None:
        out.event(event)
        hub.publish(event)

    runner = None if no_work else ready.runner(SERVICE, on_event=told)
    server = Server(ready.settings, ready.store, server_options, runner=runner, hub=hub)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(server),
            host=host,
            port=port,
            log_level="info" if options.verbose else "warning",
            access_log=options.verbose,
            timeout_graceful_shutdown=int(ready.settings.shutdown_grace_s) + 1,
        )
    )
    thread = threading.Thread(target=http.run, name="wb-http", daemon=True)
    sender = _webhooks(out, ready.settings, ready.store)
    with scratch.run_folder():
        thread.start()
        try:
            _await_start(out, http, thread, host, port)
            interruption = None
            if runner is None:
                _serve_only(thread)
            else:
                runner.start()
                with out:
                    interruption = serve(
                        runner, done=lambda: not thread.is_alive(), grace_s=ready.settings.shutdown_grace_s
                    )
        finally:
            http.should_exit = True
            thread.join(timeout=ready.settings.shutdown_grace_s + 5)
            if sender is not None:
                sender.close()
            if runner is not None:
                runner.close()
            ready.store.close()
    if runner is not None:
        service_exit(out, runner, interruption, once=False)


def _live_key(store: JobStore) -> bool:
    return any(k.revoked_at is None for k in store.api_keys())


def _webhooks(out: Output, settings: Settings, store: JobStore) -> WebhookSender | None:
    """The webhook sender, started, when receivers are configured (a secret is then set: settings
    refuse webhooks without one)."""
    if not settings.webhooks:
        return None
    from ..server.webhooks import WebhookSender

    assert settings.webhook_secret is not None
    sender = WebhookSender(store, settings.webhooks, settings.webhook_secret, say=out.info)
    sender.start()
    out.info(f"webhooks: job.done and job.failed go to {len(settings.webhooks)} receiver(s)")
    return sender


def _await_start(out: Output, http: uvicorn.Server, thread: threading.Thread, host: str, port: int) -> None:
    """Wait until uvicorn listens, then say where; a port it could not take is one line, exit 2."""
    waited = threading.Event()
    while not http.started and thread.is_alive() and not waited.wait(0.05):
        pass
    if not http.started:
        raise fail(out, ConfigError(f"cannot listen on {host}:{port} (in use, or not an address here)"))
    bound = http.servers[0].sockets[0].getsockname()[1] if http.servers else port
    shown = f"[{host}]" if ":" in host else host
    out.info(f"serving on http://{shown}:{bound} (API at /api/v1, docs at /docs); Ctrl-C or SIGTERM to stop")


def _serve_only(thread: threading.Thread) -> None:
    """With --no-work, wait for Ctrl-C or SIGTERM (or the HTTP server to end)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while thread.is_alive() and not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
