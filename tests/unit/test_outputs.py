"""A recording's formats are written all or none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whisperbatch.errors import OutputError
from whisperbatch.writers import write_files


def test_a_set_of_files_is_written_all_or_none(tmp_path: Path) -> None:
    """A failure while the set is written (here: one folder cannot be made) leaves every file as it was,
    and no temp file behind; the full-disk case below is the same through the CLI."""
    old = tmp_path / "talk.txt"
    old.write_text("old\n")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        write_files({old: "new\n", tmp_path / "talk.srt": "1\n", blocker / "talk.json": "{}"})
    assert str(info.value).startswith(f"{blocker / 'talk.json'}: cannot write (")
    assert sorted(os.listdir(tmp_path)) == ["not-a-folder", "talk.txt"] and old.read_text() == "old\n"
    assert write_files({old: "new\n", tmp_path / "talk.srt": "1\n"}) == (old, tmp_path / "talk.srt")
    assert sorted(os.listdir(tmp_path)) == ["not-a-folder", "talk.srt", "talk.txt"]
    assert old.read_text() == "new\n"
