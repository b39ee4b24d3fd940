"""Attack the local backend: random request bodies never get a 5xx, always OpenAI's error shape, and write
nothing outside the state directory; a slow request does not stall the others; a running job cancels."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import httpx
import pytest
from conftest import wait_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotune.core.prompts import render_example
from emotune.local import LocalServer

ROUTES = ["/v1/chat/completions", "/v1/fine_tuning/jobs", "/v1/batches"]
FIELDS = [
    "model",
    "messages",
    "training_file",
    "validation_file",
    "suffix",
    "seed",
    "metadata",
    "hyperparameters",
    "method",
    "n",
    "max_completion_tokens",
    "response_format",
    "stream",
    "input_file_id",
    "endpoint",
    "completion_window",
    "role",
    "content",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=20,
)
BODIES = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8)
PATHS = st.sampled_from(ROUTES) | st.builds(
    lambda k, i: f"/v1/{k}/{quote(i, safe='')}",
    st.sampled_from(["files", "batches", "fine_tuning/jobs", "models"]),
    st.text(min_size=1, max_size=300),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    with LocalServer(root / "state") as srv:
        yield srv, root


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(ROUTES), body=BODIES)
def test_random_bodies_never_5xx(fuzz_server, path, body):
    srv, root = fuzz_server
    _check(
        httpx.post(srv.base_url.removesuffix("/v1") + path, content=json.dumps(body), timeout=30)
    )
    assert {p.name for p in root.iterdir()} == {
        "state"
    }  # nothing written beside the state directory


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=PATHS, raw=st.binary(max_size=200))
def test_random_paths_and_raw_bytes_never_5xx(fuzz_server, path, raw):
    srv, _ = fuzz_server
    url = srv.base_url.removesuffix("/v1") + path
    _check(httpx.post(url, content=raw, timeout=30))
    _check(httpx.get(url, timeout=30))


def test_a_slow_request_does_not_stall_the_others(tmp_path):
    """A huge chat request is answered off the event loop: a models request sent after it returns first."""
    with LocalServer(tmp_path / "s") as srv:
        big = {  # near the prompt limits (MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS): answered, slowly
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "thanks " * 120_000}],
        }
        order: list[str] = []
        slow = threading.Thread(
            target=lambda: (
                httpx.post(f"{srv.base_url}/chat/completions", json=big, timeout=120),
                order.append("chat"),
            )
        )
        slow.start()
        while srv.stats().get("POST /v1/chat/completions", 0) == 0:  # the big request is in
            threading.Event().wait(0.01)
        assert httpx.get(f"{srv.base_url}/models", timeout=30).status_code == 200
        order.append("models")
        slow.join(timeout=120)
        assert order == ["models", "chat"]


def test_a_running_job_is_cancelled(client):
    lines = "".join(
        json.dumps(render_example(f"thanks so much {i}", ["gratitude"])) + "\n" for i in range(400)
    )
    f = client.files.create(file=("t.jsonl", lines.encode()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=f.id, hyperparameters={"n_epochs": 50, "batch_size": 1}
    )
    for _ in range(2000):
        if client.fine_tuning.jobs.retrieve(job.id).status == "running":
            break
        threading.Event().wait(0.01)
    client.fine_tuning.jobs.cancel(job.id)
    assert wait_job(client, job.id, timeout=30).status == "cancelled"


# ids and model names: long, dotted, path-like; each is a 4xx at the door on every route ----------
ID_TEXT = st.text(alphabet="abcXYZ019_:.~-/", min_size=1, max_size=300)
IDS = st.builds(
    lambda prefix, rest, pad: prefix + rest + "a" * pad,
    st.sampled_from(["", "ft:", "file-", "ftjob-", "batch_", "/", "./", "../", "/tmp/"]),
    ID_TEXT,
    st.sampled_from([0, 190, 240, 250, 256]),
)
ID_ROUTES = [
    ("GET", "/v1/files/{}"),
    ("DELETE", "/v1/files/{}"),
    ("GET", "/v1/files/{}/content"),
    ("GET", "/v1/batches/{}"),
    ("POST", "/v1/batches/{}/cancel"),
    ("GET", "/v1/fine_tuning/jobs/{}"),
    ("POST", "/v1/fine_tuning/jobs/{}/cancel"),
    ("GET", "/v1/fine_tuning/jobs/{}/events"),
    ("GET", "/v1/fine_tuning/jobs/{}/checkpoints"),
    ("GET", "/v1/models/{}"),
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rid=IDS)
def test_long_dotted_and_path_like_ids_are_a_4xx_on_every_route(fuzz_server, rid):
    srv, root = fuzz_server
    host = srv.base_url.removesuffix("/v1")
    for method, route in ID_ROUTES:
        _check(httpx.request(method, host + route.format(quote(rid, safe="/:")), timeout=30))
    chat = {"model": rid, "messages": [{"role": "user", "content": "hi"}]}
    for route, body in (
        ("/v1/chat/completions", chat),
        ("/v1/fine_tuning/jobs", {"model": rid, "training_file": "file-x"}),
        ("/v1/fine_tuning/jobs", {"model": "stand-in", "training_file": rid}),
        ("/v1/batches", {"input_file_id": rid, "endpoint": "/v1/chat/completions"}),
    ):
        response = httpx.post(host + route, json=body, timeout=30)
        _check(response)
        assert response.status_code >= 400  # no id or model here names anything the server has
    assert {p.name for p in root.iterdir()} == {"state"}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=st.text(alphabet="ab.-_/:", max_size=64))
def test_a_suffix_is_refused_at_the_door_or_its_job_succeeds(fuzz_server, suffix):
    srv, _ = fuzz_server
    c = __import__("openai").OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
    lines = "".join(
        json.dumps(render_example(f"thank you {i}", ["gratitude"])) + "\n" for i in range(12)
    )
    train = c.files.create(file=("t.jsonl", lines.encode()), purpose="fine-tune").id
    response = httpx.post(
        f"{srv.base_url}/fine_tuning/jobs",
        json={"model": "stand-in", "training_file": train, "suffix": suffix},
        timeout=30,
    )
    _check(response)
    if response.status_code == 200:  # accepted: it trains and publishes under its name
        job = wait_job(c, response.json()["id"])
        assert job.status == "succeeded", job.error
        assert c.models.retrieve(job.fine_tuned_model).id == job.fine_tuned_model
    else:
        assert response.json()["error"]["param"] == "suffix"


# records on disk: any field missing or of another type is moved aside, never a 500 ---------------
RECORD_ROUTES = {
    "jobs": ("/v1/fine_tuning/jobs", "ftjob-fuzz"),
    "batches": ("/v1/batches", "batch_fuzz"),
    "files": ("/v1/files", "file-fuzz"),
    "models": ("/v1/models", "ft:fuzz"),
}
GOOD = {
    "jobs": {
        "id": "ftjob-fuzz",
        "object": "fine_tuning.job",
        "created_at": 1,
        "error": None,
        "fine_tuned_model": None,
        "finished_at": None,
        "hyperparameters": {"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
        "model": "stand-in",
        "organization_id": "org",
        "result_files": [],
        "seed": 0,
        "status": "succeeded",
        "trained_tokens": None,
        "training_file": "file-x",
        "validation_file": None,
    },
    "batches": {
        "id": "batch_fuzz",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-x",
        "completion_window": "24h",
        "status": "completed",
        "created_at": 1,
    },
    "files": {
        "id": "file-fuzz",
        "object": "file",
        "bytes": 1,
        "created_at": 1,
        "filename": "x",
        "purpose": "batch",
        "status": "processed",
    },
    "models": {"id": "ft:fuzz", "object": "model", "created": 1, "owned_by": "emotune-local"},
}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(sorted(GOOD)),
    drop=st.lists(st.text(min_size=1, max_size=20), max_size=3),
    change=st.dictionaries(
        st.sampled_from(["_seq", "_restarts", "_suffix", "_checkpoints", "created_at", "status"])
        | st.text(min_size=1, max_size=20),
        JSON,
        max_size=3,
    ),
    data=st.data(),
)
def test_damaged_records_on_disk_never_5xx(fuzz_server, kind, drop, change, data):
    srv, _ = fuzz_server
    record = dict(GOOD[kind])
    drop = drop + data.draw(st.lists(st.sampled_from(sorted(record)), max_size=3))
    for key in drop:
        record.pop(key, None)
    record |= {k: v for k, v in change.items() if k != "id"}
    route, rid = RECORD_ROUTES[kind]
    folder = srv.engine.store.root / kind
    for leftover in folder.glob("*fuzz*"):
        leftover.unlink()
    (folder / f"{rid.replace(':', '~')}.json").write_text(json.dumps(record))
    host = srv.base_url.removesuffix("/v1")
    _check(httpx.get(host + route, timeout=30))
    _check(httpx.get(host + f"{route}/{rid}", timeout=30))
    if kind == "jobs":
        _check(httpx.get(host + f"{route}/{rid}/checkpoints", timeout=30))
        _check(httpx.get(host + f"{route}/{rid}/events", timeout=30))
