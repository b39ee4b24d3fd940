"""The local backend's workers and event loop: cancel stops a running job, a job or batch that keeps stopping
the server is failed instead of restarted forever, failures name no server path, slow work never stalls
others."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
from conftest import wait_job

from emotune.core.prompts import render_example
from emotune.local import LocalServer

BASE = "gpt-4.1-mini-2025-04-14"
ROWS = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(render_example(t, labs)) + "\n" for t, labs in rows).encode()


def test_cancel_stops_a_running_job_and_the_next_one_runs(client):
    train = client.files.create(file=("t.jsonl", jsonl(ROWS * 60)), purpose="fine-tune").id
    long = client.fine_tuning.jobs.create(
        model=BASE, training_file=train, hyperparameters={"n_epochs": 50, "batch_size": 1}
    )  # 12,000 steps
    for _ in range(600):
        if any(
            e.type == "metrics" for e in client.fine_tuning.jobs.list_events(long.id, limit=5).data
        ):
            break
        time.sleep(0.02)
    assert client.fine_tuning.jobs.retrieve(long.id).status == "running"
    client.fine_tuning.jobs.cancel(long.id)
    stopped = wait_job(
        client, long.id, timeout=10
    )  # cooperative: the trainer stops at its next step
    assert stopped.status == "cancelled" and stopped.fine_tuned_model is None
    steps = [
        e
        for e in client.fine_tuning.jobs.list_events(long.id, limit=10_000).data
        if e.type == "metrics"
    ]
    assert len(steps) < 12_000
    short = client.fine_tuning.jobs.create(
        model=BASE, training_file=train, hyperparameters={"n_epochs": 1}
    )
    assert wait_job(client, short.id).status == "succeeded"


def test_work_that_keeps_stopping_the_server_is_failed_not_restarted_forever(tmp_path):
    state = tmp_path / "state"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
        job = wait_job(c, c.fine_tuning.jobs.create(model=BASE, training_file=train).id)
        line = {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": BASE, "messages": [{"role": "user", "content": "thanks"}]},
        }
        batch_file = c.files.create(
            file=("b.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch"
        ).id
        batch = c.batches.create(
            input_file_id=batch_file, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while c.batches.retrieve(batch.id).status != "completed":
            time.sleep(0.02)
    # what three crashes in a row leave behind: the records still say running / in progress
    for kind, rid, status in (("jobs", job.id, "running"), ("batches", batch.id, "in_progress")):
        path = state / kind / f"{rid}.json"
        path.write_text(
            json.dumps(json.loads(path.read_text()) | {"status": status, "_restarts": 3})
        )
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        failed = c.fine_tuning.jobs.retrieve(job.id)
        assert (
            failed.status == "failed"
            and failed.error.code == "server_error"
            and "3 times" in failed.error.message
        )
        b = c.batches.retrieve(batch.id)
        assert b.status == "failed" and b.errors.data[0].code == "server_error"
        assert (
            wait_job(c, c.fine_tuning.jobs.create(model=BASE, training_file=train).id).status
            == "succeeded"
        )


def test_failures_name_no_server_path(tmp_path):
    state = tmp_path / "state"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
        batch_file = c.files.create(file=("b.jsonl", b"{}\n"), purpose="batch").id
        for fid in (train, batch_file):
            (state / "blobs" / fid).unlink()  # the content lost on disk, the record kept
        job = wait_job(c, c.fine_tuning.jobs.create(model=BASE, training_file=train).id)
        batch = c.batches.create(
            input_file_id=batch_file, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while (batch := c.batches.retrieve(batch.id)).status not in ("failed", "completed"):
            time.sleep(0.02)
        messages = [job.error.message, batch.errors.data[0].message]
        assert job.status == "failed" and batch.status == "failed"
        assert not any(str(tmp_path) in m or str(tmp_path.resolve()) in m for m in messages), (
            messages
        )


def test_a_slow_request_does_not_stall_the_others(server):
    """A chat request near the prompt limits is worked on off the event loop: a models request
    sent after it is answered first."""
    text = "thanks " * 120_000  # 840,000 characters, about 120,000 tokens: answered, slowly
    order: list[str] = []
    slow = {}

    def big_chat():
        slow["response"] = httpx.post(
            f"{server.base_url}/chat/completions",
            timeout=120,
            json={"model": BASE, "messages": [{"role": "user", "content": text}]},
        )
        order.append("chat")

    worker = threading.Thread(target=big_chat)
    worker.start()
    while server.stats().get("POST /v1/chat/completions", 0) == 0:
        time.sleep(0.005)
    assert httpx.get(f"{server.base_url}/models", timeout=30).status_code == 200
    order.append("models")
    worker.join()
    assert order == ["models", "chat"]
    assert slow["response"].status_code == 200
