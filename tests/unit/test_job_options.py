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
    options = asked.run_setup(StubEngine(), translate_to="fr").options
    again = JobOptions.from_dict(options.as_dict())
    assert again == options
    host = Settings(concurrency=3, translate_model="host-model")
    there = host.with_job(options)
    assert (there.language, there.prompt, there.format, there.out_dir) == ("de", "Namen", "vtt", tmp_path)
    assert (there.max_line_width, there.translate_to, there.concurrency) == (30, "fr", 3)
    assert there.translate_model == asked.translate_model
    plain = host.with_job(asked.run_setup(StubEngine()).options)  # not translating: the host's own
    assert (plain.translate_to, plain.translate_model) == (host.translate_to, "host-model")
    assert options.key("abc", Task.TRANSCRIBE) == dataclasses.replace(asked, format="srt").run_setup(
        StubEngine()
    ).options.key("abc", Task.TRANSCRIBE)  # the format is not part of the job


def test_a_job_is_set_up_with_its_own_options_and_the_hosts_others(tmp_path: Path) -> None:
    asked = Settings(language="de", prompt="Namen", keywords="Kafka", format="vtt", out_dir=tmp_path)
    host = Settings(concurrency=3, wait_notice_s=9.0, translate_model="host-model")
    setup = host.job_setup(asked.run_setup(StubEngine(), translate_to="fr").options)
    assert (setup.stages.chunks.ask.language, setup.stages.chunks.concurrency) == ("de", 3)
    assert (setup.stages.outputs.formats, setup.stages.outputs.out_dir) == (("vtt",), tmp_path)
    assert setup.stages.outputs.translate_to == "fr"
    assert setup.translation is not None and setup.translation.model.name == asked.translate_model
    assert setup.stages.translation is not None
    assert (setup.stages.translation.target, setup.stages.translation.glossary) == ("fr", "Namen")
    assert setup.engine.model == StubEngine().model
    plain = host.job_setup(asked.run_setup(StubEngine()).options)
    assert plain.translation is None and plain.stages.translation is None
    assert plain.stages.outputs.translate_to is None


def test_the_run_modes_differ_in_every_respect() -> None:
    for field in dataclasses.fields(ONE_OFF):
        assert getattr(ONE_OFF, field.name) != getattr(SERVICE, field.name), field.name
