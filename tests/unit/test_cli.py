"""The CLI's help and the README's quick start, read in-process."""

from __future__ import annotations

import glob
import re
import shlex

from conftest import SAMPLES
from whisperbatch.cli import app


def test_help_names_each_value_by_what_it_is_not_by_its_python_type() -> None:
    """`PATH...`, `--budget USD`: never `PATH <list[str]>` or `--budget <float>` (choices stay listed)."""
    from typer.testing import CliRunner

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
