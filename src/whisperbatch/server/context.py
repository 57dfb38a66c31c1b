"""What a running server holds: its settings and store, the job runner when it works as well as
serves, where uploads go, and the hub its live events go out through. Routes reach it as
`request.app.state.server`."""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..jobs import JobOptions, JobRunner
from ..jobs.runner import new_run_id
from ..models import Task
from ..store import JobStore
from .hub import EventHub

DEFAULT_UPLOAD_MAX_BYTES = 2_000_000_000  # a three-hour WAV at 44.1 kHz stereo is 1.9 GB


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    roots: tuple[Path, ...] = ()  # folders whose recordings a request may name by path
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    queue_max: int = 1000  # jobs waiting; beyond it a submission is refused with 429
    wait_s: float = 3600.0  # how long a synchronous endpoint waits for its job
    poll_s: float = 0.2  # how often a waiting request looks at its job

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost counts as beyond it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    """The state every route shares. `runner` is None with `--no-work` (workers elsewhere run the
    jobs); `keys_required` holds whenever the server listens beyond loopback."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        options: ServerOptions,
        *,
        runner: JobRunner | None = None,
        hub: EventHub | None = None,
    ) -> None:
        self.settings, self.store, self.options, self.runner = settings, store, options, runner
        self.hub = hub or EventHub()
        self.keys_required = not options.loopback
        self.run_id = runner.run_id if runner is not None else new_run_id()
        self.uploads = settings.home / "uploads"
        self.started_at = time.time()  # what /v1/models gives as each model's `created`
        self.admitting = threading.Lock()  # the queue's bound is checked and taken in one step
        # A request's options planned once per day (`submit.Submission.plan`): planning builds an engine.
        self.plans: dict[tuple[object, ...], tuple[JobOptions, Task]] = {}
        self.planning = threading.Lock()
        self.sessions: dict[str, str] = {}  # the page's sessions: id -> the key's hash
