"""What differs between a one-off run and a service, as one object chosen once.

A one-off run (`transcribe`, `translate`) runs only its own jobs, tries each file once, scopes its
budget to itself and ends when a fatal error or the budget stops it; it reports on each input it was
given. The service (`watch`, `worker`) tries a file again later, counts its budget over the whole
ledger, pauses its queue instead of ending, and leaves a failed recording's reason beside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunMode:
    name: str
    # Runs of a whole file before it fails (None: the settings' `job_max_attempts`).
    job_max_attempts: int | None
    # The budget, the jobs claimed and the queue looked at are this run's own; otherwise the whole
    # store's (a worker takes any job, a service's budget spans the ledger's history).
    own_jobs_only: bool
    # A fatal answer ends the run (its queue pauses for good) and a store that fails stops it at once;
    # otherwise the queue pauses for a while and requests are held back while the store is retried.
    ends_on_fatal: bool
    # Reports on each input it was given: keeps each job's result for a summary, says an input whose
    # outputs are up to date was skipped, and tries a failed recording asked for again.
    reports_inputs: bool
    # Says how its queue changes: a recording picked up, the queue paused.
    tells_queue: bool
    # Writes a failed recording's reason beside it (`<name>.error.txt`), and removes it once done.
    error_files: bool


ONE_OFF = RunMode(
    "one-off",
    job_max_attempts=1,
    own_jobs_only=True,
    ends_on_fatal=True,
    reports_inputs=True,
    tells_queue=False,
    error_files=False,
)
SERVICE = RunMode(
    "service",
    job_max_attempts=None,
    own_jobs_only=False,
    ends_on_fatal=False,
    reports_inputs=False,
    tells_queue=True,
    error_files=True,
)
