"""Settings, the one place that decides their precedence, and the one place that hands them out.

flags > `WHISPERBATCH_*` / `OPENAI_*` environment (and a `.env` file) > config.toml > defaults.
Every setting is a field of `Settings`; its environment name is `WHISPERBATCH_<FIELD>` and its
config-file key is the field name in any section, so adding a setting is adding a field
(config_sources.py reads and checks the values). The API key is kept out of `repr()` so it cannot
leak into a log or a traceback by accident.

Only configuration and the CLI see the whole `Settings`: each stage takes its own small options
record (`engine_options()`, `translation_options()`, `store_options()`, `retry_policy()`,
`cue_style`, `cut_options()`, `stage_options()`, `runner_options()`), built here, so a stage's inputs
are named where it is declared and nowhere else. A job's options are settings too: `run_setup` copies
them into a run's jobs and `job_setup` lays a job's over this host's settings, wherever it was made.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs
from dotenv import dotenv_values

from .catalog import ModelOverride, chat_model_info
from .config_sources import APP, RANGES, find_config_file, from_env, read_config_file
from .cues import CueStyle
from .engines import EngineOptions
from .engines.base import Engine
from .errors import ConfigError, keep_secret
from .jobs import JobOptions, JobSetup, RunMode, RunnerOptions
from .jobs.options import SETTINGS_FIELDS, TRANSLATION_FIELDS
from .languages import language_code
from .pipeline import (
    AskOptions,
    ChunkOptions,
    CutOptions,
    GateOptions,
    OutputOptions,
    StageOptions,
    TranslateOptions,
)
from .policy import RetryPolicy
from .speakers import SpeakerOptions
from .store import StoreOptions
from .translate import TranslationOptions
from .writers import parse_formats

ENGINES = ("auto", "openai", "local")
LOCAL_DEVICES = ("auto", "cpu", "cuda")
# The local engine decodes one chunk at a time: more files at once only hold more jobs claimed (which
# other workers on a shared queue could have taken) without finishing any sooner. Two let one file's
# translation requests to a chat model overlap the next file's transcription.
LOCAL_CONCURRENCY = 2


@dataclass(frozen=True)
class Settings:
    # run
    engine: str = "auto"
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    format: str = "txt,srt"
    out_dir: Path | None = None
    # Requests (API) or files (local engine) at once. 8 keeps a tier-1 OpenAI key (500 requests a
    # minute for whisper-1) under its limit with answers as quick as 1 s; `bench/speed.py` measures
    # what each step up gains. Left unset with the local engine it is LOCAL_CONCURRENCY.
    concurrency: int = 8
    budget_usd: float | None = None
    condition_on_previous: bool = False
    # openai
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    # A transcription request waits `timeout_min_s` plus `timeout_per_audio_s` for each second of audio
    # it carries, and never more than `timeout_s` (the limit for every other request too): a server
    # that took a 40-s chunk and never answers is given up on after some seconds, not minutes.
    timeout_s: float = 300.0
    timeout_min_s: float = 30.0
    timeout_per_audio_s: float = 1.0
    wait_notice_s: float = 30.0  # an unanswered request says so this long after, and as its wait doubles
    max_attempts: int = 6
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    max_upload_bytes: int = 26_214_400
    keywords: str | None = None  # comma-separated terms for models that take `keywords` (gpt-transcribe)
    # translate: a chat model on any OpenAI-compatible server (by default the transcription server and key)
    translate_to: str = "en"
    translate_model: str = "gpt-5.4-mini"
    translate_base_url: str | None = None
    translate_api_key: str | None = field(default=None, repr=False)
    translate_batch_size: int = 20  # subtitle cues per request
    translate_context: int = 3  # neighbouring cues sent either side, not translated
    # local
    local_model: str = "base"
    local_device: str = "auto"  # CUDA where a GPU is present, else the CPU
    local_compute_type: str = "auto"  # float16 on CUDA, int8 on the CPU
    local_threads: int = 0
    local_batch_size: int = 8  # speech windows decoded side by side; 1: one after another
    beam_size: int = 5
    # audio
    chunk_target_s: float = 600.0
    # Without carried context a server is asked for a recording's chunks side by side (up to
    # `concurrency`): shorter chunks then finish together instead of waiting on the longest one.
    parallel_chunk_s: float = 40.0
    utterance_max_s: float = 30.0
    min_silence_s: float = 0.5
    skip_silence_s: float = 5.0
    silence_threshold_dbfs: float | None = None
    vad_threshold: float = 0.5
    word_timestamps: bool = True
    # Speaker labels (speakers/): who said what, found offline after the transcript.
    diarize: bool = False
    num_speakers: int | None = None  # exactly this many; or between min_speakers and max_speakers
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_models: Path | None = None  # a folder with the speaker models; default: those shipped
    # subtitles (names as in the whisper CLI)
    max_line_width: int = 42
    max_line_count: int = 2
    max_words_per_line: int | None = None
    max_cue_s: float = 7.0
    max_chars_per_s: float = 20.0
    # service
    settle_s: float = 2.0
    rescan_s: float = 60.0
    lease_s: float = 30.0
    job_max_attempts: int = 3
    pause_s: float = 300.0
    shutdown_grace_s: float = 5.0
    # `serve`'s webhooks: the URLs told of each job's end, and the secret each body is signed with
    webhooks: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    # where state and caches live: `database` is a postgresql:// URL or an SQLite file (default: in home)
    database: str | None = field(default=None, repr=False)
    home: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir(APP)))
    cache_dir: Path = field(default_factory=lambda: Path(platformdirs.user_cache_dir(APP)))
    models: Mapping[str, ModelOverride] = field(default_factory=dict)

    @property
    def has_api_config(self) -> bool:
        return bool(self.api_key or self.base_url)

    @property
    def engine_name(self) -> str:
        """`auto` means the API when a key or base URL is configured, else the offline engine."""
        if self.engine != "auto":
            return self.engine
        return "openai" if self.has_api_config else "local"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no output may show: the API keys, the webhook secret, and a database URL's password
        (with the URL)."""
        found = [self.api_key, self.translate_api_key, self.webhook_secret]
        if self.database and (password := urlsplit(self.database).password):
            found += [self.database, password]
        return tuple(s for s in found if s)

    @property
    def cue_style(self) -> CueStyle:
        return CueStyle(
            max_line_width=self.max_line_width,
            max_line_count=self.max_line_count,
            max_words_per_line=self.max_words_per_line,
            max_cue_s=self.max_cue_s,
            max_chars_per_s=self.max_chars_per_s,
        )

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            kind=self.engine_name,
            model=self.model,
            overrides=self.models,
            word_timestamps=self.word_timestamps,
            api_key=self.api_key,
            base_url=self.base_url,
            timeout_s=self.timeout_s,
            timeout_min_s=self.timeout_min_s,
            timeout_per_audio_s=self.timeout_per_audio_s,
            max_upload_bytes=self.max_upload_bytes,
            keywords=tuple(k.strip() for k in (self.keywords or "").split(",") if k.strip()),
            local_model=self.local_model,
            device=self.local_device,
            compute_type=self.local_compute_type,
            threads=self.local_threads,
            beam_size=self.beam_size,
            batch_size=self.local_batch_size,
            cache_dir=self.cache_dir,
        )

    def translation_options(self) -> TranslationOptions:
        """A chat model on its own server or key, else on the transcription server with its key."""
        return TranslationOptions(
            to=self.translate_to,
            model=chat_model_info(self.translate_model, self.models),
            api_key=self.translate_api_key or self.api_key,
            base_url=self.translate_base_url or self.base_url,
            timeout_s=self.timeout_s,
            batch_size=self.translate_batch_size,
            context=self.translate_context,
        )

    def store_options(self) -> StoreOptions:
        """The SQLite file is `database` when that is a path or sqlite:///path, else one in `home`."""
        sqlite_path = self.home / "whisperbatch.sqlite3"
        if self.database:
            sqlite_path = Path(self.database.removeprefix("sqlite://")).expanduser()
        return StoreOptions(database=self.database, sqlite_path=sqlite_path)

    def retry_policy(self, *, job_max_attempts: int | None = None) -> RetryPolicy:
        """Requests' and jobs' retries; `job_max_attempts` overrides the setting (1: a file runs once)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_s=self.retry_base_s,
            max_s=self.retry_max_s,
            job_max_attempts=self.job_max_attempts if job_max_attempts is None else job_max_attempts,
        )

    def cut_options(self) -> CutOptions:
        return CutOptions(
            target_s=self.chunk_target_s,
            parallel_s=self.parallel_chunk_s,
            utterance_max_s=self.utterance_max_s,
            condition_on_previous=self.condition_on_previous,
            min_silence_s=self.min_silence_s,
            skip_silence_s=self.skip_silence_s,
            vad_threshold=self.vad_threshold,
            energy_dbfs=self.silence_threshold_dbfs,
        )

    def stage_options(self, *, translating: bool) -> StageOptions:
        """Each stage's options; the translation's only when a chat model translates."""
        ask = AskOptions(self.language, self.prompt, self.condition_on_previous)
        glossary = ", ".join(x for x in (self.prompt, self.keywords) if x) or None
        translation = TranslateOptions(self.translate_to, self.cue_style, glossary) if translating else None
        speakers = self.speaker_options()
        outputs = OutputOptions(
            out_dir=self.out_dir,
            formats=parse_formats(self.format, speakers=self.diarize),
            style=self.cue_style,
            translate_to=self.translate_to if translating else None,
            speakers=speakers,
        )
        return StageOptions(
            chunks=ChunkOptions(ask, self.cut_options(), self.concurrency),
            outputs=outputs,
            translation=translation,
            speakers=speakers,
        )

    def speaker_options(self) -> SpeakerOptions | None:
        """Speaker labels' options; None when no labels are asked for."""
        if not self.diarize:
            return None
        models = None if self.speaker_models is None else str(self.speaker_models)
        return SpeakerOptions(self.num_speakers, self.min_speakers, self.max_speakers, models)

    def runner_options(self, mode: RunMode) -> RunnerOptions:
        return RunnerOptions(
            gate=GateOptions(concurrency=self.concurrency, wait_notice_s=self.wait_notice_s),
            policy=self.retry_policy(job_max_attempts=mode.job_max_attempts),
            budget_usd=self.budget_usd,
            pause_s=self.pause_s,
            lease_s=self.lease_s,
            shutdown_grace_s=self.shutdown_grace_s,
        )

    def run_setup(self, engine: Engine, translate_to: str | None = None) -> JobSetup:
        """A run's own jobs: the options each is kept with (`engine`'s name and model, these settings'
        job options, and the translation's when a chat model translates into `translate_to`), and
        what these settings make of them."""
        copied = {name: getattr(self, name) for name in SETTINGS_FIELDS if name not in TRANSLATION_FIELDS}
        copied["out_dir"] = None if self.out_dir is None else str(self.out_dir.absolute())
        options = JobOptions(
            engine=engine.name,
            model=engine.model,
            translate_to=translate_to,
            translate_model=self.translate_model if translate_to else None,
            **copied,
        )
        return self._setup(options)

    def overridden(self, values: Mapping[str, Any], *, source: str) -> Settings:
        """These settings with `values` laid over them and checked as a flag's would be (a request to
        `serve` sets its own options this way); a bad value is a ConfigError naming it and `source`."""
        given = {k: v for k, v in values.items() if v is not None}
        sources = dict.fromkeys(given, source)
        settings = dataclasses.replace(self, **_languages(given, sources))
        _validate(settings, sources)
        return settings

    def job_setup(self, options: JobOptions) -> JobSetup:
        """What a job made with `options` (by any host) is run with here."""
        return self.with_job(options)._setup(options)

    def with_job(self, options: JobOptions) -> Settings:
        """These settings (this host's key, URL, concurrency, paths) with a job's own options."""
        fields = dataclasses.asdict(options)
        fields["out_dir"] = None if options.out_dir is None else Path(options.out_dir)
        for name in TRANSLATION_FIELDS:  # the host's own unless the job translates
            if fields[name] is None:
                del fields[name]
        return dataclasses.replace(self, **fields)

    def _setup(self, options: JobOptions) -> JobSetup:
        translating = options.translate_to is not None
        return JobSetup(
            options,
            self.stage_options(translating=translating),
            self.engine_options(),
            self.translation_options() if translating else None,
        )


# Each setting's type, by name: what text from a file or the environment is turned into.
_HINTS = {k: v for k, v in typing.get_type_hints(Settings).items() if k != "models"}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults, config file, `.env`, environment and flags (later wins) and validate.

    `flag_names` maps a setting to the option that set it (`budget_usd` -> `--budget`), for messages.
    """
    cwd = cwd or Path.cwd()
    environ: dict[str, str] = dict(os.environ if env is None else env)
    dotenv_file = cwd / ".env"
    if dotenv_file.is_file():
        # The real environment wins over .env, as with docker compose and python-dotenv's default.
        dot = {k: v for k, v in dotenv_values(dotenv_file).items() if v is not None}
        environ = {**dot, **environ}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    models: dict[str, ModelOverride] = {}
    path = find_config_file(config_path, environ, cwd)
    if path is not None:
        values, models = read_config_file(path, _HINTS)
        sources = dict.fromkeys(values, str(path))
    in_env, env_names = from_env(environ, _HINTS)
    values.update(in_env)
    sources.update(env_names)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    values.update(given)
    sources.update({k: (flag_names or {}).get(k, "--" + k.replace("_", "-")) for k in given})
    settings = Settings(**_languages(values, sources), models=models)
    keep_secret(*settings.secrets)
    if "concurrency" not in values and settings.engine_name == "local":
        settings = dataclasses.replace(settings, concurrency=LOCAL_CONCURRENCY)
    _validate(settings, sources)
    return settings


def _languages(values: dict[str, Any], sources: Mapping[str, str]) -> dict[str, Any]:
    """`values` with the spoken language and the translation's target as Whisper's codes."""
    if values.get("language") is not None:
        values["language"] = _language(values["language"], sources["language"], "language")
    if values.get("translate_to") is not None:
        target = _language(values["translate_to"], sources["translate_to"], "translate_to")
        if target is None:
            raise ConfigError(f"translate_to (from {sources['translate_to']}): needs a language, such as de")
        values["translate_to"] = target
    return values


def _language(value: str, source: str, name: str) -> str | None:
    """A language code or name as Whisper knows it, as its code; "auto" (or empty) detects it."""
    if value.strip().lower() in ("", "auto"):
        return None
    code = language_code(value)
    if code is None:
        raise ConfigError(
            f"{name} = {value!r} (from {source}): not a language Whisper knows; "
            "give a code such as en, de, fr, zh or a name such as German"
        )
    return code


def _validate(s: Settings, sources: Mapping[str, str]) -> None:
    """Every setting against what it may be; the first violation is one line naming its source."""

    def bad(name: str, allowed: str) -> ConfigError:
        value = getattr(s, name)
        return ConfigError(f"{name} = {value!r} (from {sources.get(name, 'the default')}): must be {allowed}")

    if s.engine not in ENGINES:
        raise bad("engine", f"one of {', '.join(ENGINES)}")
    if s.local_device not in LOCAL_DEVICES:
        raise bad("local_device", f"one of {', '.join(LOCAL_DEVICES)}")
    for name, allowed in RANGES.items():
        value = getattr(s, name)
        if value is not None and not allowed.admits(value):
            raise bad(name, str(allowed))
    if s.min_speakers is not None and s.max_speakers is not None and s.min_speakers > s.max_speakers:
        raise bad("min_speakers", f"at most max_speakers ({s.max_speakers})")
    hooks_from = sources.get("webhooks", "the default")
    for url in s.webhooks:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"webhooks: {url!r} (from {hooks_from}): must be an http:// or https:// URL")
    if s.webhooks and not s.webhook_secret:
        raise ConfigError(
            f"webhooks (from {hooks_from}) need a secret to sign with: set WHISPERBATCH_WEBHOOK_SECRET, "
            "or webhook_secret in config.toml"
        )
    try:
        parse_formats(s.format, speakers=s.diarize)
    except ConfigError as e:
        raise ConfigError(f"format = {s.format!r} (from {sources.get('format', 'the default')}): {e}") from e
