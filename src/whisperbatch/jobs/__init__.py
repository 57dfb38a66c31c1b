"""Every run is jobs: a recording becomes a job in the store, and one runner's workers run jobs.

`transcribe`, `translate`, `watch` and `worker` differ only in where jobs come from, when the process
exits, and their run mode (`mode.py`):

- **A job is its content and options.** Its key is the recording's SHA-256 plus task, engine, model,
  language and prompt: the same recording under two names, dropped again or run again, is one job,
  transcribed once; other names of it get their outputs from the stored transcript, with no upload
  (`admission.py`). The job also keeps its output options (`options.py`), so a worker on another
  host runs it alike. The language a chat model translates into is an option, not part of the key:
  translating one recording into three languages transcribes it once (a done job is queued again to
  translate).
- **Nothing paid for is lost.** Each chunk's result is stored as it arrives, before anything else can
  fail, so a run stopped any way at all (Ctrl-C, `kill -9`, a quota stop) resumes by uploading only
  the chunks still missing, and says how many it kept.
- **Leases.** A worker holds a lease on each job it runs and renews it (`runner.py`).
- **Progress and cancel where every host sees them.** A running job's chunks done, and the audio they
  cover, are kept in its row as they are answered; a cancel asked of it from anywhere stops it before
  its next request, keeping what it paid for (`progress.py`).
- **One policy.** One `RetryPolicy`, one `Budget`, one stop signal, one request gate per process; the
  run mode sets what differs between a one-off run and the service.
- **Outputs are a job's.** The store records which recording and job wrote each output, so outputs are
  up to date only when this very recording (content and options) wrote them, and a recording that
  changed while it was transcribed gets none (`SourceChanged`) and keeps nothing of that run.
"""

from .admission import error_file
from .loop import Interruption, serve
from .mode import ONE_OFF, SERVICE, RunMode
from .oneoff import run_files
from .options import JobOptions, JobSetup
from .runner import JobRunner, RunnerOptions
from .watch import Service

__all__ = [
    "ONE_OFF",
    "SERVICE",
    "Interruption",
    "JobOptions",
    "JobRunner",
    "JobSetup",
    "RunMode",
    "RunnerOptions",
    "Service",
    "error_file",
    "run_files",
    "serve",
]
