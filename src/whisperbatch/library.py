"""The library call under the CLI: `whisperbatch.transcribe(path)` returns a typed `Transcript`.

It is a one-off run like `whisperbatch transcribe`, through the same session, job runner and store, so
a script gets what the command line gets: settings from config.toml and the environment (arguments
win), the offline engine without a key, chunks cut at pauses, nothing billed twice, a run stopped any
way resumed by the next call, and the cost in the ledger (`whisperbatch report`). What differs is only
what a library should do: it prints nothing (pass `on_event` to follow progress), raises a
`WhisperbatchError` naming the file and the reason instead of exiting, and writes no files unless
asked to (`output_format`).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import load_settings
from .errors import AudioError, ConfigError, WhisperbatchError
from .jobs import ONE_OFF, JobRunner, run_files
from .jobs.content import file_sha256
from .models import FileResult, Task, Transcript
from .pipeline import Event
from .session import open_session

StrPath = str | os.PathLike[str]


def transcribe(
    path: StrPath,
    *,
    task: str = "transcribe",
    to: str | None = None,
    engine: str | None = None,
    model: str | None = None,
    language: str | None = None,
    prompt: str | None = None,
    translate_model: str | None = None,
    output_format: str | Sequence[str] | None = None,
    output_dir: StrPath | None = None,
    force: bool = False,
    config: StrPath | None = None,
    on_event: Callable[[Event], None] | None = None,
    **settings: Any,
) -> Transcript:
    """Transcribe the recording at `path` and return its transcript (segments with words, in seconds).

    `task="translate"` (as in openai/whisper's `transcribe`) returns its translation instead: into
    English, or into the language `to` names through a chat model (`translate_model`), each segment
    keeping its source's times. `engine` ("auto", "openai", "local"), `model`, `language` and `prompt`
    are the CLI's options of the same names. `output_format` ("srt", "txt,vtt", ["json"], "all") also
    writes those files beside the recording, or into `output_dir`; by default nothing is written. Any
    other setting is a keyword named as in config.toml (`budget_usd=0.5`, `concurrency=4`,
    `base_url=...`, `api_key=...`). A recording done before (under any name) is answered from the
    store with no upload, unless `force`. Raises `WhisperbatchError`.
    """
    if task not in ("transcribe", "translate"):
        raise ConfigError(f"task must be transcribe or translate (got {task!r})")
    if task == "transcribe" and (to or translate_model):
        raise ConfigError('to and translate_model go with task="translate"')
    flags = dict(settings, engine=engine, model=model, language=language, prompt=prompt)
    flags.update(translate_to=to, translate_model=translate_model)
    return _run(Task(task), path, flags, output_format, output_dir, force, config, on_event)


def _run(
    task: Task,
    path: StrPath,
    flags: dict[str, Any],
    output_format: str | Sequence[str] | None,
    output_dir: StrPath | None,
    force: bool,
    config: StrPath | None,
    on_event: Callable[[Event], None] | None,
) -> Transcript:
    source = Path(path)
    if not source.is_file():
        raise AudioError(source, "no such file")
    with tempfile.TemporaryDirectory(prefix="whisperbatch-") as scratch:
        if output_format is None:  # the run's outputs go to a folder dropped on return
            flags.update(format="json", out_dir=Path(scratch))
        else:
            spec = output_format if isinstance(output_format, str) else ",".join(output_format)
            flags.update(format=spec, out_dir=None if output_dir is None else Path(output_dir))
        settings = load_settings(flags, config_path=None if config is None else Path(config))
        with open_session(settings, task) as session:
            runner = session.runner(ONE_OFF, on_event=on_event or (lambda e: None))
            try:
                summary, interruption = run_files(runner, [source], force=force)
                result = summary.results[0]
                if result.ok and result.transcript is None:  # its outputs were up to date: from the store
                    result = _stored(runner, source)
            finally:
                runner.close()
    if interruption is not None:  # Ctrl-C (or SIGTERM) stopped the run: the next call resumes it
        if interruption.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + interruption.signum)
    if summary.stopped_reason:
        raise WhisperbatchError(f"{source}: stopped: {summary.stopped_reason}")
    if result.error is not None:
        raise WhisperbatchError(result.error)
    transcript = result.translation if session.translate_to else result.transcript
    if transcript is None:
        raise WhisperbatchError(f"{source}: no transcript came back")
    return transcript


def _stored(runner: JobRunner, source: Path) -> FileResult:
    """What the store holds for `source` under the runner's options: its transcript, and the
    translation the runner's pipeline makes of it."""
    key = runner.own.options.key(file_sha256(source), runner.task)
    job = runner.store.job(key)
    transcript = None if job is None else job.transcript
    if transcript is None:
        return FileResult(source=source)
    translation = runner.pipeline.stored_translation(key, transcript)
    return FileResult(source=source, transcript=transcript, translation=translation)
