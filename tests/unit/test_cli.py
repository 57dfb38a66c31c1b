"""The CLI's help, its shared options and the README's quick start, read in-process."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import SAMPLES
from whisperbatch.cli import app, wiring
from whisperbatch.cli.options import Options


def test_help_names_each_value_by_what_it_is_not_by_its_python_type() -> None:
    """`PATH...`, `--budget USD`: never `PATH <list[str]>` or `--budget <float>` (choices stay listed)."""
    runner = CliRunner()
    commands = [
        info.name or (info.callback.__name__ if info.callback else "") for info in app.registered_commands
    ]
    assert {"transcribe", "watch", "retry", "estimate"} <= set(commands)
    for command in commands:
        shown = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        python_type = re.search(r"<(str|int|float|bool|path|list\[.*?\])>", shown.output)
        assert python_type is None, (command, shown.output)
    helped = runner.invoke(app, ["transcribe", "--help"], terminal_width=200).output
    assert re.search(r"^  PATH\.\.\. +Files, folders", helped, re.MULTILINE), helped
    assert re.search(r"^  --budget USD +Stop before", helped, re.MULTILINE), helped


def test_shared_options_reach_the_command_as_one_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's class adds the shared options it takes and hands their values over, converted, as
    one `Options` record; a bad value is refused as a command's own option's is (exit 2)."""
    seen: list[Options] = []

    def prepare(out: object, options: Options, task: object) -> None:
        seen.append(options)
        raise typer.Exit(0)

    monkeypatch.setattr(wiring, "prepare", prepare)
    runner = CliRunner()
    given = runner.invoke(app, ["worker", "-j", "3", "--budget", "1.5", "--config", "c.toml", "-q"])
    assert given.exit_code == 0, given.output
    [options] = seen
    fields = {"engine": None, "model": None, "base_url": None, "database": None}
    assert options.flags == {**fields, "concurrency": 3, "budget_usd": 1.5}
    assert (options.config, options.quiet, options.verbose) == (Path("c.toml"), True, False)
    bad = runner.invoke(app, ["worker", "--budget", "abc"])
    assert bad.exit_code == 2, bad.output
    assert "Invalid value for '--budget'" in bad.output


def test_every_path_the_readme_quick_start_names_exists() -> None:
    """The Quick start's lines run as written from a checkout: each recording, folder or glob they
    name is there (`samples/`), read the way the CLI itself parses the line."""
    import typer.main

    root = SAMPLES.parent
    section = (root / "README.md").read_text().split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL) for ln in block.splitlines()]
    group = typer.main.get_command(app)
    named = []
    for line in lines:
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before the command
            words.pop(0)
        if words[:1] != ["whisperbatch"]:
            continue
        command = group.get_command(None, words[1])  # type: ignore[attr-defined]
        ctx = command.make_context(words[1], words[2:], resilient_parsing=True)
        named += [(line, path) for path in ctx.params.get("paths") or ()]
    assert len(named) >= 5
    for line, path in named:
        assert glob.glob(str(root / path), recursive=True), f"{path} does not exist: {line}"
