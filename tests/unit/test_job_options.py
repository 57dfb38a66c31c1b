"""A job's options are settings of the same name: kept with the job, laid over the running host's own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from whisperbatch.config import Settings
from whisperbatch.jobs import ONE_OFF, SERVICE, JobOptions
from whisperbatch.jobs.options import SETTINGS_FIELDS
from whisperbatch.models import Task
from whisperbatch.testing import StubEngine


def test_every_job_option_but_the_engine_is_the_setting_of_that_name_with_its_default() -> None:
    settings = {f.name: f for f in dataclasses.fields(Settings)}
    for option in dataclasses.fields(JobOptions):
        if option.name in ("engine", "model"):
            continue
        assert option.name in SETTINGS_FIELDS and option.name in settings, option.name
        default = settings[option.name].default
        if option.name not in (
            "out_dir",
            "translate_to",
            "translate_model",
        ):  # kept as text, or only to translate
            assert option.default == default, option.name


def test_options_made_from_settings_give_those_settings_back_on_another_host(tmp_path: Path) -> None:
    asked = Settings(language="de", prompt="Namen", format="vtt", out_dir=tmp_path, max_line_width=30)
    options = JobOptions.of(asked, StubEngine(), translate_to="fr")
    again = JobOptions.from_dict(options.as_dict())
    assert again == options
    host = Settings(concurrency=3, translate_model="host-model")
    there = options.settings(host)
    assert (there.language, there.prompt, there.format, there.out_dir) == ("de", "Namen", "vtt", tmp_path)
    assert (there.max_line_width, there.translate_to, there.concurrency) == (30, "fr", 3)
    assert there.translate_model == asked.translate_model
    plain = JobOptions.of(asked, StubEngine()).settings(host)  # not translating: the host's own
    assert (plain.translate_to, plain.translate_model) == (host.translate_to, "host-model")
    assert options.key("abc", Task.TRANSCRIBE) == JobOptions.of(
        dataclasses.replace(asked, format="srt"),
        StubEngine(),
    ).key("abc", Task.TRANSCRIBE)  # the format is not part of the job


def test_the_run_modes_differ_in_every_respect() -> None:
    for field in dataclasses.fields(ONE_OFF):
        assert getattr(ONE_OFF, field.name) != getattr(SERVICE, field.name), field.name
