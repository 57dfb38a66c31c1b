"""Bad and unusual inputs to one-off `whisperbatch transcribe`, beyond test_cli's empty/text/truncated files.

Each batch pairs the odd item with a good recording (samples/talk.m4a) and checks that:
- the exit code is right (0 ok, 1 some file failed, 2 configuration or usage);
- a bad item gives exactly one `error:` line naming it and saying why, and no traceback;
- the good recording still gets its outputs, with text, from exactly one upload;
- nothing is written for the bad item.

All runs use the openai engine against the loopback fake server, which answers at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conftest import SAMPLES, Result, copy_sample, run_cli, run_cli_together
from whisperbatch.testing import FakeOpenAI

GOOD = "talk.m4a"


def _errors(r: Result) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


def _ff(ffmpeg: str, *args: str) -> None:
    subprocess.run([ffmpeg, "-y", "-v", "error", *args], check=True)


def _assert_good(r: Result, fake: FakeOpenAI, *recordings: Path) -> None:
    """No traceback; every good recording has a .txt with text; one upload each (all are one chunk)."""
    assert "Traceback" not in r.output, r.output
    for rec in recordings:
        assert rec.with_suffix(".txt").read_text(encoding="utf-8").strip(), rec
    assert len(fake.successful) == len(recordings), fake.uploads


def _outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in (".txt", ".srt", ".json", ".vtt")}


# ---- one bad item beside a good recording: exit 1, one error line for it, the good one done ----------


def _png_as_m4a(work: Path, ffmpeg: str) -> tuple[Path, str]:
    png = work / "x.png"
    _ff(ffmpeg, "-f", "lavfi", "-i", "color=c=red:s=32x32", "-frames:v", "1", str(png))
    return png.rename(work / "photo.m4a"), "no audio stream in file"


def _dangling_symlink(work: Path, ffmpeg: str) -> tuple[Path, str]:
    link = work / "gone.mp3"
    link.symlink_to(work / "deleted.mp3")
    return link, f"broken link (to {work / 'deleted.mp3'})"


@pytest.mark.parametrize("make_bad", [_png_as_m4a, _dangling_symlink], ids=["image-as-m4a", "dangling-link"])
def test_bad_item_named_on_the_command_line_fails_alone(
    api_env: dict[str, str],
    fake_openai: FakeOpenAI,
    ffmpeg: str,
    tmp_path: Path,
    make_bad: Callable[[Path, str], tuple[Path, str]],
) -> None:
    work = tmp_path / "in"
    good = copy_sample(GOOD, work)
    bad, reason = make_bad(work, ffmpeg)
    r = run_cli(["transcribe", str(bad), str(good)], api_env)
    assert r.code == 1, r.output
    assert _errors(r) == [f"error: {bad}: {reason}"]
    _assert_good(r, fake_openai, good)
    assert _outputs(work) == {"talk.txt", "talk.srt"}


def test_broken_links_and_link_loops_inside_a_folder_are_reported_and_the_rest_is_done(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    # A link to a recording on an unmounted disk must not vanish from a folder run unnoticed, and two
    # links that name each other must not end the run when they are resolved for the duplicate check.
    work = tmp_path / "in"
    good = copy_sample(GOOD, work)
    (work / "gone.mp3").symlink_to(work / "deleted.mp3")
    (work / "a.mp3").symlink_to("b.mp3")
    (work / "b.mp3").symlink_to("a.mp3")
    r = run_cli(["transcribe", str(work)], api_env)
    assert r.code == 1, r.output
    assert _errors(r) == [
        f"error: {work / 'a.mp3'}: symbolic link loop (to b.mp3)",
        f"error: {work / 'b.mp3'}: symbolic link loop (to a.mp3)",
        f"error: {work / 'gone.mp3'}: broken link (to {work / 'deleted.mp3'})",
    ]
    _assert_good(r, fake_openai, good)
    assert _outputs(work) == {"talk.txt", "talk.srt"}


def test_unreadable_file_says_permission_denied(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    work = tmp_path / "in"
    good = copy_sample(GOOD, work)
    bad = copy_sample("fox.wav", work, "secret.wav")
    bad.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        # Root reads mode-000 files through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH. `runuser -u nobody`
        # cannot help where the interpreter lives under /root (mode 700: nobody cannot start it), so
        # stay uid 0 (same HOME, state and tmp dirs as every other test) and drop those two
        # capabilities for the CLI and the ffmpeg it starts: mode 000 then binds root too.
        setpriv = shutil.which("setpriv")
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"] if setpriv else []
        works = bool(prefix) and subprocess.run([*prefix, "true"], check=False).returncode == 0
        if not works or subprocess.run([*prefix, "cat", str(bad)], capture_output=True).returncode == 0:
            pytest.skip("root, and no setpriv that can drop CAP_DAC_OVERRIDE: mode 000 cannot deny a read")
    r = _run_cli_with(prefix, ["transcribe", str(bad), str(good)], api_env)
    assert r.code == 1, r.output
    [line] = _errors(r)
    assert line == f"error: {bad}: permission denied"
    _assert_good(r, fake_openai, good)
    assert _outputs(work) == {"talk.txt", "talk.srt"}


def _run_cli_with(prefix: Sequence[str], args: Sequence[str], env: dict[str, str]) -> Result:
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "whisperbatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# ---- unusual but valid recordings: exit 0 -------------------------------------------------------------


def test_unicode_and_spaces_in_the_name_and_a_folder_named_like_audio(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """A recording named with accents, a dash and spaces, and a folder named like audio (searched, not
    failed) holding another."""
    work = tmp_path / "in"
    rec = copy_sample(GOOD, work, "Grüße aus Köln – take 1.m4a")
    inner = copy_sample("morning.mp3", work / "x.wav")
    r = run_cli(["transcribe", str(work)], api_env)
    assert r.code == 0, r.output
    assert _errors(r) == []
    _assert_good(r, fake_openai, rec, inner)
    assert _outputs(work) == {"Grüße aus Köln – take 1.txt", "Grüße aus Köln – take 1.srt"}
    assert _outputs(work / "x.wav") == {"morning.txt", "morning.srt"}
    assert "Grüße aus Köln – take 1.txt" in r.stderr


def _webm_video_codec(ffmpeg: str) -> str:
    encoders = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    names = {ln.split()[1] for ln in encoders.splitlines() if len(ln.split()) > 1 and ln.startswith(" V")}
    for codec in ("libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1"):
        if codec in names:
            return codec
    pytest.skip("this ffmpeg has no encoder for WebM video")


@pytest.mark.parametrize(
    ("name", "how"),
    [
        ("phone.wav", ["-ar", "8000", "-ac", "1"]),
        ("studio.flac", ["-ar", "96000", "-ac", "6"]),
        ("screen.webm", ["video"]),
    ],
    ids=["8k-mono-wav", "96k-6ch-flac", "webm-with-video"],
)
def test_unusual_formats_are_transcribed(
    api_env: dict[str, str],
    fake_openai: FakeOpenAI,
    ffmpeg: str,
    tmp_path: Path,
    name: str,
    how: list[str],
) -> None:
    work = tmp_path / "in"
    work.mkdir()
    rec = work / name
    fox = str(SAMPLES / "fox.wav")
    if how == ["video"]:
        video = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=5", "-i", fox, "-shortest"]
        _ff(ffmpeg, *video, "-c:v", _webm_video_codec(ffmpeg), "-c:a", "libopus", str(rec))
    else:
        _ff(ffmpeg, "-i", fox, *how, str(rec))
    r = run_cli(["transcribe", str(rec)], api_env)
    assert r.code == 0, r.output
    assert _errors(r) == []
    _assert_good(r, fake_openai, rec)


def test_same_file_named_three_ways_is_done_once(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    work = Path.cwd()  # the env fixture's working folder
    rec = copy_sample(GOOD, work)
    (work / "dir").mkdir()
    r = run_cli(["transcribe", rec.name, f"./{rec.name}", str(work / "dir" / ".." / rec.name)], api_env)
    assert r.code == 0, r.output
    assert _errors(r) == []
    _assert_good(r, fake_openai, rec)
    assert sum(" done -> " in ln for ln in r.stderr.splitlines()) == 1
    assert len((work / "costs.csv").read_text().splitlines()) == 2  # header and one row


def test_truncated_mp3_is_done_with_a_warning(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    work = tmp_path / "in"
    good = copy_sample(GOOD, work)
    cut = work / "cut.mp3"
    cut.write_bytes((SAMPLES / "morning.mp3").read_bytes()[:10_000])
    r = run_cli(["transcribe", str(cut), str(good), "-f", "json"], api_env)
    assert r.code == 0, r.output
    assert _errors(r) == []
    assert "Traceback" not in r.output
    doc = json.loads(cut.with_suffix(".json").read_text())
    assert 0 < doc["decoded_s"] < 3
    assert any("decoded" in w for w in doc["warnings"])
    assert "done with warnings" in r.stderr
    good_doc = json.loads(good.with_suffix(".json").read_text())
    assert good_doc["text"].strip() and good_doc["warnings"] == []
    # one upload each: the 1.2 s that decoded, and the whole of the good recording (8 s)
    assert sorted(round(u.duration_s or 0) for u in fake_openai.successful) == [1, 8]


# ---- configuration and usage errors: exit 2, one line, nothing sent or written --------------------------


# Each setting a run may not take, and the one line that says so.
BAD_SETTINGS = {
    "language-flag": (
        ["--language", "zz"],
        {},
        "language = 'zz' (from --language): not a language Whisper knows; "
        "give a code such as en, de, fr, zh or a name such as German",
    ),
    "skip-silence-env": (
        [],
        {"WHISPERBATCH_SKIP_SILENCE_S": "-1"},
        "skip_silence_s = -1.0 (from WHISPERBATCH_SKIP_SILENCE_S): must be at least 0.5",
    ),
    "local-threads": (
        [],
        {"WHISPERBATCH_LOCAL_THREADS": "-3"},
        "local_threads = -3 (from WHISPERBATCH_LOCAL_THREADS): must be at least 0",
    ),
    "beam-size": (
        [],
        {"WHISPERBATCH_BEAM_SIZE": "0"},
        "beam_size = 0 (from WHISPERBATCH_BEAM_SIZE): must be at least 1 and at most 64",
    ),
    "concurrency": (
        [],
        {"WHISPERBATCH_CONCURRENCY": "2.7"},
        "concurrency = '2.7' (from WHISPERBATCH_CONCURRENCY): must be a whole number",
    ),
}


def test_bad_setting_exits_2_before_anything_is_sent(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Every bad setting above, each its own run (all at once), and one in config.toml where it is found
    (the working folder): one line, exit 2, nothing sent or written."""
    rec = copy_sample(GOOD, tmp_path / "in")
    runs = [
        (["transcribe", str(rec), *args], {**api_env, **extra}) for args, extra, _ in BAD_SETTINGS.values()
    ]
    results = dict(zip(BAD_SETTINGS, run_cli_together(runs), strict=True))
    config_path = Path.cwd() / "config.toml"  # found there: the env fixture's working folder
    config_path.write_text("skip_silence_s = -1\n")
    results["skip-silence-config"] = run_cli(["transcribe", str(rec)], api_env)
    said = {name: message for name, (_, _, message) in BAD_SETTINGS.items()}
    said["skip-silence-config"] = f"skip_silence_s = -1.0 (from {config_path}): must be at least 0.5"
    for name, r in results.items():
        assert r.code == 2, (name, r.output)
        assert r.stderr.splitlines() == ["error: " + said[name]], name
        assert "Traceback" not in r.output, name
    assert fake_openai.count == 0
    assert _outputs(rec.parent) == set()


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_out_dir_that_is_not_a_folder_exits_2(
    api_env: dict[str, str], fake_openai: FakeOpenAI, tmp_path: Path, where: str
) -> None:
    rec = copy_sample(GOOD, tmp_path / "in")
    blocker = tmp_path / "taken"
    blocker.write_text("a regular file\n")
    out = blocker if where == "file" else blocker / "sub"
    r = run_cli(["transcribe", str(rec), "-o", str(out)], api_env)
    assert r.code == 2, r.output
    assert _errors(r) == [f"error: {out}: outputs cannot be written there (not a folder); nothing was sent"]
    assert "Traceback" not in r.output
    assert fake_openai.count == 0
    assert blocker.read_text() == "a regular file\n"
    assert _outputs(rec.parent) == set()
