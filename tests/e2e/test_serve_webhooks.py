"""`serve --webhook URL`: a job submitted over HTTP and done by the server's runner is told to a receiver,
signed with the configured secret (checked with the README's recipe), again after a refusal; the
secret appears nowhere in the server's log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from conftest import wait_for
from e2e.serve_support import finished, module_env, telling
from e2e.serve_support import upstream as upstream  # the module's OpenAI server
from integration.test_webhooks import SECRET, Receiver
from integration.test_webhooks import hook as hook  # the module's receiver, emptied
from integration.test_webhooks import receiver as receiver
from unit.test_webhooks import recipe
from whisperbatch.testing import FakeOpenAI
from whisperbatch.testing.recordings import SAMPLES
from whisperbatch.testing.serving import Served


def test_a_job_done_by_the_server_is_told_to_the_webhook_signed(
    tmp_path: Path, model_cache: Path, upstream: FakeOpenAI, hook: Receiver
) -> None:
    env = module_env(tmp_path, model_cache, upstream, WHISPERBATCH_WEBHOOK_SECRET=SECRET)
    hook.answers.append(503)  # the first delivery is refused: it comes again
    with Served(["--webhook", hook.url], env, cwd=tmp_path) as served, telling(served):
        client = httpx.Client(base_url=served.url, timeout=30)
        with (SAMPLES / "fox.wav").open("rb") as fh:
            job = client.post("/api/v1/jobs", files={"file": ("fox.wav", fh)}).raise_for_status().json()
        assert finished(client, job["id"])["state"] == "done"
        wait_for(lambda: bool(hook.accepted("job.done")), "the job.done delivery", timeout=60)
        log = served.log
    delivered = hook.accepted("job.done")[0]
    assert [r.status for r in hook.got][:2] == [503, 200]
    assert recipe()(SECRET, delivered.headers["Whisperbatch-Signature"], delivered.body)
    assert not recipe()(SECRET, delivered.headers["Whisperbatch-Signature"], delivered.body + b" ")
    event = json.loads(delivered.body)
    told = event["data"]["job"]
    assert event["type"] == "job.done" and told["id"] == job["id"] and told["recording"] == "fox.wav"
    assert told["state"] == "done" and told["usd"] is not None and told["error"] is None
    assert sorted(Path(p).suffix for p in told["outputs"]) == [".json", ".srt", ".txt", ".vtt"]
    assert SECRET not in log and "webhooks: job.done and job.failed go to 1 receiver(s)" in log
