"""The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright), against
`whisperbatch serve` run as a process over the tests' fake OpenAI server: a job submitted through the
API shows its progress moving and turns done without a reload; files dropped on the page (or picked)
become jobs whose transcript opens in the viewer, their names shown as text; a job the upstream refuses
shows why, and its Retry button queues it again; the spend and the set-up check show what the API says.

One server, one upstream and one browser serve the module; each test has a fresh page. The upstream
answers at a pace set by the audio's length, so a recording of several chunks is seen part done.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright

from conftest import CANARY_KEY, assemble, distinct_words, wait_for
from e2e.serve_support import module_env
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.faults import DECODE_FAILED, Fault
from whisperbatch.testing.recordings import SAMPLES
from whisperbatch.testing.serving import Served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PACE_S_PER_AUDIO_MIN = 3.0  # a 20-s chunk is answered in a second: progress is seen between chunks
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=CANARY_KEY, s_per_audio_min=PACE_S_PER_AUDIO_MIN) as fake:
        fake.transcriber = distinct_words
        yield fake


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, upstream: FakeOpenAI
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("page")
    # One chunk at a time, chunks as short as they go: a recording's progress moves in steps.
    env = module_env(
        root, model_cache, upstream, WHISPERBATCH_CONCURRENCY="1", WHISPERBATCH_PARALLEL_CHUNK_S="10"
    )
    with Served(["--engine", "openai"], env, cwd=root) as server:
        yield server


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the page's tests drive Debian's Chromium (apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Browser, served: Served) -> Iterator[Page]:
    """A fresh page on the server, marked so that a reload would show (the mark would be gone); no
    script error may happen on it."""
    context = browser.new_context(base_url=served.url)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto("/")
    opened.evaluate("window.notReloaded = true")
    yield opened
    assert opened.evaluate("window.notReloaded === true"), "the page was reloaded"
    context.close()
    assert not errors, errors


def job_named(client: httpx.Client, name: str) -> dict[str, Any]:
    found = [job for job in client.get("/api/v1/jobs").json()["jobs"] if job["recording"] == name]
    assert len(found) == 1, found
    job: dict[str, Any] = found[0]
    return job


def idle(client: httpx.Client) -> bool:
    health = client.get("/api/v1/health").json()
    return bool(health["queued"] == 0 and health["running"] == 0)


def row_of(page: Page, job_id: int) -> Any:
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def test_a_job_from_the_api_shows_progress_moving_and_ends_done(
    page: Page, client: httpx.Client, tmp_path: Path, ffmpeg: str
) -> None:
    recording = tmp_path / "six chunks.wav"
    assemble(recording, [True, False] * 6, ffmpeg)
    made = client.post("/api/v1/jobs", files={"file": (recording.name, recording.read_bytes())})
    assert made.status_code == 201, made.text
    row = row_of(page, made.json()["id"])
    expect(row).to_be_visible()
    expect(row.locator(".recording")).to_contain_text("six chunks.wav")
    seen: list[float] = []
    deadline = time.monotonic() + WAIT_MS / 1000
    while (state := row.get_attribute("data-state")) != "done":
        assert state in ("queued", "running"), state
        shown = row.get_attribute("data-progress")
        if state == "running" and shown is not None and (not seen or seen[-1] != float(shown)):
            seen.append(float(shown))
        assert time.monotonic() < deadline, f"still {state} after {WAIT_MS} ms; progress seen {seen}"
        page.wait_for_timeout(30)
    assert len({value for value in seen if 0 < value < 1}) >= 2, f"progress seen: {seen}"
    assert seen == sorted(seen), f"progress went back: {seen}"
    expect(row.locator(".badge")).to_have_text("done")
    expect(row.locator("progress")).to_have_js_property("value", 1)
    expect(row.locator("button.cancel")).to_have_count(0)


def test_files_picked_or_dropped_become_jobs_and_open_in_the_viewer(page: Page, client: httpx.Client) -> None:
    picked = "<img src=x onerror=window.injected=1>talk & co.m4a"
    talk = (SAMPLES / "talk.m4a").read_bytes()
    page.set_input_files("#files", files=[FilePayload(name=picked, mimeType="audio/mp4", buffer=talk)])
    expect(page.locator("#uploads li").first).to_contain_text("queued as job")
    page.check('#options input[name="diarize"]')  # the dropped one is asked for speaker labels
    page.check('#options input[value="rttm"]')
    dropped = "morning (dropped).mp3"
    page.evaluate(
        """({name, data}) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const carried = new DataTransfer();
            carried.items.add(new File([bytes], name, {type: "audio/mpeg"}));
            for (const kind of ["dragenter", "dragover", "drop"]) {
                const event = new DragEvent(kind, {dataTransfer: carried, bubbles: true, cancelable: true});
                document.querySelector("#queue").dispatchEvent(event);
            }
        }""",
        {"name": dropped, "data": base64.b64encode((SAMPLES / "morning.mp3").read_bytes()).decode()},
    )
    expect(page.locator("#uploads li").first).to_contain_text(f"{dropped}: queued as job")
    for name in (picked, dropped):
        job = job_named(client, name)
        row = row_of(page, job["id"])
        expect(row).to_have_attribute("data-state", "done", timeout=WAIT_MS)
        expect(row.locator("button.open")).to_have_text(name)  # the name as text, not markup
    assert page.locator("#jobs img").count() == 0
    assert page.evaluate("window.injected") is None

    job = job_named(client, picked)
    row_of(page, job["id"]).locator("button.open").click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-name")).to_have_text(picked)
    segments = client.get(f"/api/v1/jobs/{job['id']}/outputs/json").json()["segments"]
    assert segments
    expect(page.locator("#cues tbody tr .text")).to_have_text([s["text"] for s in segments])
    expect(page.locator("#cues tbody tr .time").first).to_contain_text("→")
    expect(page.locator("#viewer-links a")).to_have_text(sorted(job["outputs"]))
    srt = page.locator("#viewer-links a", has_text="srt").get_attribute("href")
    assert srt is not None
    assert client.get(srt).text == client.get(f"/api/v1/jobs/{job['id']}/outputs/srt").text

    job = job_named(client, dropped)
    assert job["diarize"] and "rttm" in job["outputs"]
    row_of(page, job["id"]).locator("button.open").click()
    expect(page.locator("#viewer-name")).to_have_text(dropped)
    segments = client.get(f"/api/v1/jobs/{job['id']}/outputs/json").json()["segments"]
    assert all(s.get("speaker") for s in segments)
    expect(page.locator("#cues tbody tr .speaker")).to_have_text([s["speaker"] for s in segments])
    expect(page.locator("#cues tbody tr .text")).to_have_text([s["text"] for s in segments])


def test_a_failed_job_shows_its_reason_and_retry_queues_it_again(
    page: Page, client: httpx.Client, upstream: FakeOpenAI, served: Served
) -> None:
    wait_for(lambda: idle(client), "the queue to empty", timeout=WAIT_MS / 1000)
    upstream.inject(Fault("respond", 400, DECODE_FAILED))  # the next request: this recording's only chunk
    made = client.post("/api/v1/jobs", files={"file": ("fox.wav", (SAMPLES / "fox.wav").read_bytes())})
    row = row_of(page, made.json()["id"])
    expect(row).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    reason = row.locator(".reason")
    expect(reason).to_contain_text("could not be decoded")
    expect(reason).to_contain_text("fox.wav")
    expect(reason).not_to_contain_text("uploads/")  # the recording's name, not the server's folders
    expect(row.locator("button.cancel")).to_have_count(0)

    upstream.hold_after = upstream.arrived  # the retried request waits: the job is seen running
    try:
        with page.expect_response(lambda r: r.url.endswith("/retry")) as answered:
            row.locator("button.retry").click()
        assert answered.value.ok
        assert answered.value.json()["state"] in ("queued", "running")
        expect(row).to_have_attribute("data-state", "running", timeout=WAIT_MS)
        expect(row.locator(".reason")).to_have_count(0)
        expect(row.locator("button.cancel")).to_be_visible()
        expect(row.locator("button.retry")).to_have_count(0)
    finally:
        upstream.hold_after = None
        upstream.release()
    expect(row).to_have_attribute("data-state", "done", timeout=WAIT_MS)


def test_spend_and_set_up_check_show_what_the_api_says(page: Page, client: httpx.Client) -> None:
    spend = client.get("/api/v1/spend?by=day").json()
    assert spend["total"]["files"] >= 1
    expect(page.locator("#spend-summary")).to_contain_text(f"on {spend['total']['files']} files")
    expect(page.locator("#spend-summary")).to_contain_text("no budget set")
    expect(page.locator("#spend-days tbody tr")).to_have_count(len(spend["items"]))
    expect(page.locator("#spend-chart svg rect")).to_have_count(len(spend["items"]))

    checks = client.get("/api/v1/checks").json()["checks"]
    expect(page.locator("#check-list li strong")).to_have_text([c["name"] for c in checks])
    expect(page.locator("#checks-summary")).to_have_text("all checks pass")
    expect(page.locator("#check-list li.ok .mark")).to_have_count(len(checks))
