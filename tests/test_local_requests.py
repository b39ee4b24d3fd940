"""Typed requests at the local backend: every bad body is an OpenAI-shaped 400 and the queue keeps working."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import wait_job

from emotune.core.prompts import render_example

BASE = "gpt-4.1-mini-2025-04-14"
GOOD = "".join(
    json.dumps(render_example(f"thank you {i}", ["gratitude"])) + "\n" for i in range(12)
).encode()


@pytest.mark.parametrize(
    "path, body, param",
    [
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "suffix": "../../escape"},
            "suffix",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "suffix": "a/b"},
            "suffix",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "suffix": ".."},
            "suffix",
        ),
        ("/v1/fine_tuning/jobs", {"model": BASE, "training_file": "f" * 251}, "training_file"),
        (
            "/v1/chat/completions",
            {"model": "m" * 253, "messages": [{"role": "user", "content": "hi"}]},
            "model",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "hyperparameters": {"n_epochs": 1e999}},
            "hyperparameters.n_epochs",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "hyperparameters": {"n_epochs": 2.5}},
            "hyperparameters.n_epochs",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "seed": "seven"},
            "seed",
        ),
        (
            "/v1/fine_tuning/jobs",
            {"model": BASE, "training_file": "file-x", "metadata": ["a"]},
            "metadata",
        ),
        ("/v1/fine_tuning/jobs", {"model": "m" * 300, "training_file": "file-x"}, "model"),
        (
            "/v1/chat/completions",
            {"model": BASE, "messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            {
                "model": BASE,
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": "json",
            },
            "response_format",
        ),
        (
            "/v1/batches",
            {"input_file_id": ["x"], "endpoint": "/v1/chat/completions"},
            "input_file_id",
        ),
    ],
)
def test_bad_bodies_are_openai_shaped_400s(server, path, body, param):
    r = httpx.post(
        server.base_url.removesuffix("/v1") + path, content=json.dumps(body), timeout=10
    )  # Infinity too
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param


def test_bad_queries_ids_and_bodies_never_500(server):
    root = server.base_url.removesuffix("/v1")
    assert httpx.get(f"{root}/v1/fine_tuning/jobs?limit=abc", timeout=10).status_code == 400
    assert httpx.get(f"{root}/v1/files/{'x' * 400}", timeout=10).status_code == 404
    assert httpx.get(f"{root}/v1/fine_tuning/jobs/..%2F..%2Fetc", timeout=10).status_code == 404
    r = httpx.post(f"{root}/v1/chat/completions", content=b"\xff\xfe not utf-8", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    deep = b"[" * 100_000 + b"]" * 100_000
    assert httpx.post(f"{root}/v1/chat/completions", content=deep, timeout=10).status_code == 400


def test_a_poisoned_batch_does_not_stop_the_next(client):
    bad = client.files.create(file=("bad.jsonl", b"\xff\xfe\x00 not utf-8\n"), purpose="batch")
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": BASE, "messages": [{"role": "user", "content": "thanks a lot"}]},
    }
    good = client.files.create(
        file=("good.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch"
    )
    first = client.batches.create(
        input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    second = client.batches.create(
        input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    for _ in range(400):
        done = [client.batches.retrieve(b.id) for b in (first, second)]
        if all(b.status in ("completed", "failed") for b in done):
            break
        import time

        time.sleep(0.02)
    assert (
        done[0].status == "failed"
        and done[1].status == "completed"
        and done[1].request_counts.completed == 1
    )


def test_jobs_still_run_after_a_bad_one(client):
    bad = client.files.create(
        file=("deep.jsonl", b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"),
        purpose="fine-tune",
    )
    good = client.files.create(file=("good.jsonl", GOOD), purpose="fine-tune")
    failed = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=bad.id).id)
    done = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=good.id).id)
    assert failed.status == "failed" and done.status == "succeeded"


def test_a_negative_seed_with_sampling_is_answered_not_a_500(server):
    body = {
        "model": BASE,
        "messages": [{"role": "user", "content": "thank you"}],
        "seed": -1,
        "n": 2,
        "temperature": 1,
    }
    r = httpx.post(server.base_url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 2


@pytest.mark.parametrize("route", ["/files/", "/fine_tuning/jobs/", "/batches/", "/models/"])
def test_ids_too_long_for_a_file_name_are_a_404_never_a_500(server, route):
    r = httpx.get(server.base_url + route + "x" * 253, timeout=10)
    assert r.status_code in (400, 404), r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
