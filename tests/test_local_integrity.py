"""The local backend keeps its records straight under load, races, crashes and hostile input: events
page cheaply at any length, a batch isolates its lines, a cancel is durable and settles once, ordinary
bad input is a 4xx at the door, and the state directory and the model names of a request cannot be
turned against the server's owner. Every test runs the real server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from conftest import wait_job

from emotune.core.prompts import render_example
from emotune.local import LocalServer
from emotune.local.server import free_port
from emotune.local.store import EVENT_BLOCK

ROWS = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
]
FINAL_BATCH = ("completed", "failed", "cancelled", "expired")


def jsonl(rows) -> bytes:
    return "".join(json.dumps(render_example(t, labs)) + "\n" for t, labs in rows).encode()


def chat_line(custom_id: str, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "stand-in", "messages": [{"role": "user", "content": "thanks"}]} | body,
    }


def batch_of(c: openai.OpenAI, lines: list[dict]):
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    f = c.files.create(file=("b.jsonl", data), purpose="batch")
    return c.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def wait_batch(c: openai.OpenAI, batch_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = c.batches.retrieve(batch_id)
        if b.status in FINAL_BATCH:
            return b
        time.sleep(0.02)
    raise AssertionError(f"batch {batch_id} still {b.status} after {timeout} s")


# events ------------------------------------------------------------------------------------------
def test_the_newest_events_page_reads_the_same_bytes_at_any_length(client, server):
    train = client.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
    short, long = (
        wait_job(client, client.fine_tuning.jobs.create(model="stand-in", training_file=train).id)
        for _ in range(2)
    )
    store = server.engine.store
    for i in range(40_000):  # what a job of 40,000 steps writes: one line per step
        store.add_event(long.id, f"Step {i}", data={"step": i}, type_="metrics")
    assert (store.root / "events" / f"{long.id}.jsonl").stat().st_size > 50 * EVENT_BLOCK

    def bytes_for_newest(job_id: str) -> tuple[int, list]:
        before = store.event_bytes_read
        page = client.fine_tuning.jobs.list_events(job_id, limit=1)
        return store.event_bytes_read - before, page.data

    small_cost, small_page = bytes_for_newest(short.id)
    large_cost, large_page = bytes_for_newest(long.id)
    assert small_cost <= EVENT_BLOCK and large_cost <= EVENT_BLOCK  # one block from the end
    assert large_page[0].message == "Step 39999" and small_page[0].message.startswith("The job")

    # every page after the first follows its cursor: all events, newest first, none twice
    ids, after, pages = [], None, 0
    while True:
        page = client.fine_tuning.jobs.list_events(long.id, limit=5000, after=after)
        ids += [e.id for e in page.data]
        pages += 1
        if not page.has_more:
            break
        after = page.data[-1].id
    written = [
        json.loads(line)["id"]
        for line in (store.root / "events" / f"{long.id}.jsonl").read_text().splitlines()
    ]
    assert ids == written[::-1] and pages == -(-len(written) // 5000)


# batches -----------------------------------------------------------------------------------------
def test_one_poisoned_line_is_that_lines_error_and_the_batch_completes(tmp_path):
    state = tmp_path / "state"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
        tuned = wait_job(c, c.fine_tuning.jobs.create(model="stand-in", training_file=train).id)
    # weights that load but cannot answer: the model's arrays no longer fit its vocabulary
    arrays = state / "weights" / tuned.fine_tuned_model.replace(":", "~") / "model.npz"
    with np.load(arrays) as saved:
        kept = {k: saved[k] for k in saved.files}
    np.savez(arrays, **(kept | {"weights": np.ones((3, 2), dtype=np.float32)}))
    lines = [chat_line(f"good-{i}") for i in range(96)]
    lines.insert(40, chat_line("poisoned", model=tuned.fine_tuned_model))
    lines.insert(70, chat_line("negative-seed", seed=-1, n=2, temperature=1))
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        b = wait_batch(c, batch_of(c, lines).id)
        assert b.status == "completed", b.errors
        assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (
            98,
            97,
            1,
        )
        out = [json.loads(x) for x in c.files.content(b.output_file_id).text.splitlines()]
        [err] = [json.loads(x) for x in c.files.content(b.error_file_id).text.splitlines()]
    assert {r["custom_id"] for r in out} == {f"good-{i}" for i in range(96)} | {"negative-seed"}
    assert err["custom_id"] == "poisoned" and err["response"]["status_code"] == 500
    assert set(err["response"]["body"]["error"]) == {"message", "type", "param", "code"}
    assert str(tmp_path) not in json.dumps(err)


# cancellation ------------------------------------------------------------------------------------
def _serve(state: Path) -> tuple[subprocess.Popen, str]:
    """``emotune serve`` in its own process (the one test kills with SIGKILL)."""
    port, log = free_port(), state.parent / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emotune.cli", "serve", "--port", str(port)]
            + ["--state-dir", str(state)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, f"{url}/v1"
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(log.read_text()[-2000:])


def test_a_cancel_survives_kill_9_and_nothing_cancelled_runs_again(tmp_path):
    state = tmp_path / "state"
    proc, url = _serve(state)
    try:
        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 60)), purpose="fine-tune").id
        job = c.fine_tuning.jobs.create(
            model="stand-in", training_file=train, hyperparameters={"n_epochs": 50, "batch_size": 1}
        )  # 12,000 steps
        busy = batch_of(c, [chat_line(f"busy-{i}") for i in range(20_000)])
        waiting = batch_of(c, [chat_line("never") for _ in range(10)])  # behind the busy one
        for _ in range(600):
            if (
                c.fine_tuning.jobs.retrieve(job.id).status == "running"
                and c.batches.retrieve(busy.id).status == "in_progress"
            ):
                break
            time.sleep(0.02)
        assert c.batches.cancel(waiting.id).status == "cancelling"  # still queued
        c.fine_tuning.jobs.cancel(job.id)
        c.batches.cancel(busy.id)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        time.sleep(1.0)  # time for a wrongly restarted job or batch to show itself
        j = c.fine_tuning.jobs.retrieve(job.id)
        assert j.status == "cancelled" and j.fine_tuned_model is None
        events = [e.message for e in c.fine_tuning.jobs.list_events(job.id, limit=100).data]
        assert not any("training again" in m for m in events)
        for b in (busy, waiting):
            assert c.batches.retrieve(b.id).status == "cancelled"
        assert c.batches.retrieve(waiting.id).request_counts.completed == 0
        assert not list((state / "weights").iterdir())  # nothing trained after the cancel


def test_batches_cancelled_while_completing_settle_once_by_the_rule(client):
    """A cancel the server accepted (200) makes the batch cancelled; one it refused (409) came
    after completion. Either way the final state is written once and never changes."""
    outcomes = []
    for i in range(25):
        b = batch_of(client, [chat_line(f"{i}-{k}") for k in range(40)])
        time.sleep(0.004 * i)  # from before the batch starts to after it completes
        try:
            client.batches.cancel(b.id)
            outcomes.append((b.id, "cancelled"))
        except openai.ConflictError:
            outcomes.append((b.id, "completed"))
    for batch_id, expected in outcomes:
        final = wait_batch(client, batch_id)
        assert final.status == expected, (batch_id, final.status, expected)
    time.sleep(0.5)
    assert [client.batches.retrieve(b).status for b, _ in outcomes] == [e for _, e in outcomes]


def test_jobs_cancelled_while_publishing_settle_once_and_leave_no_orphan_weights(client, server):
    train = client.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
    outcomes = []
    for i in range(12):
        job = client.fine_tuning.jobs.create(model="stand-in", training_file=train)
        time.sleep(0.01 * i)
        try:
            client.fine_tuning.jobs.cancel(job.id)
            outcomes.append((job.id, "cancelled"))
        except openai.BadRequestError:
            outcomes.append((job.id, "succeeded"))
    finals = {jid: wait_job(client, jid) for jid, _ in outcomes}
    assert [finals[jid].status for jid, _ in outcomes] == [e for _, e in outcomes]
    served = {m.id for m in client.models.list().data if m.id.startswith("ft:")}
    tuned = {f.fine_tuned_model for f in finals.values() if f.status == "succeeded"}
    assert {m for m in served if ":ckpt-step-" not in m} == tuned
    on_disk = {p.name.replace("~", ":") for p in (server.engine.store.root / "weights").iterdir()}
    assert on_disk == served  # a cancelled job's weights are removed with it


# bad input at the door ---------------------------------------------------------------------------
@pytest.mark.parametrize("length", [199, 200, 201, 250, 251, 255, 256, 300])
def test_long_ids_and_model_names_are_a_404_or_400_on_every_route(client, server, length):
    u = server.base_url
    for rid in ("a" * length, "ft:" + "b" * length, "file-" + "c" * length):
        calls = [
            ("GET", f"/files/{rid}"),
            ("DELETE", f"/files/{rid}"),
            ("GET", f"/files/{rid}/content"),
            ("GET", f"/batches/{rid}"),
            ("POST", f"/batches/{rid}/cancel"),
            ("GET", f"/fine_tuning/jobs/{rid}"),
            ("POST", f"/fine_tuning/jobs/{rid}/cancel"),
            ("GET", f"/fine_tuning/jobs/{rid}/events"),
            ("GET", f"/fine_tuning/jobs/{rid}/checkpoints"),
            ("GET", f"/models/{rid}"),
        ]
        bodies = [
            ("/chat/completions", {"model": rid, "messages": [{"role": "user", "content": "x"}]}),
            ("/fine_tuning/jobs", {"model": "stand-in", "training_file": rid}),
            ("/fine_tuning/jobs", {"model": rid, "training_file": "file-x"}),
            ("/batches", {"input_file_id": rid, "endpoint": "/v1/chat/completions"}),
        ]
        answers = [httpx.request(m, u + path, timeout=30) for m, path in calls]
        answers += [httpx.post(u + path, json=body, timeout=30) for path, body in bodies]
        assert len(answers) == 14
        for r in answers:
            assert r.status_code in (400, 404), (r.request.url, r.status_code, r.text[:200])
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_a_suffix_that_cannot_name_a_model_is_refused_before_training(client, server):
    train = client.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
    for suffix in ("..", "a..b", "x.." + "y" * 20):
        with pytest.raises(openai.BadRequestError, match="suffix") as caught:
            client.fine_tuning.jobs.create(model="stand-in", training_file=train, suffix=suffix)
        assert caught.value.body["param"] == "suffix"
    assert client.fine_tuning.jobs.list().data == []
    assert not list((server.engine.store.root / "weights").iterdir())
    ok = client.fine_tuning.jobs.create(model="stand-in", training_file=train, suffix="a.b-c_d")
    assert wait_job(client, ok.id).fine_tuned_model.split(":")[3] == "a.b-c_d"


def test_a_negative_seed_with_sampling_is_answered(client):
    r = client.chat.completions.create(
        model="stand-in",
        messages=[{"role": "user", "content": "thanks"}],
        seed=-1,
        n=2,
        temperature=1,
    )
    assert len(r.choices) == 2


# the state directory and model names ---------------------------------------------------------
def test_records_missing_fields_are_moved_aside_and_the_server_starts(tmp_path, caplog):
    state = tmp_path / "s"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
        kept = wait_job(c, c.fine_tuning.jobs.create(model="stand-in", training_file=train).id)
        broken = wait_job(c, c.fine_tuning.jobs.create(model="stand-in", training_file=train).id)
        batch = wait_batch(c, batch_of(c, [chat_line("a")]).id)
    for kind, rid, drop in (("jobs", broken.id, "status"), ("batches", batch.id, "endpoint")):
        path = state / kind / f"{rid}.json"
        record = json.loads(path.read_text())
        del record[drop]
        path.write_text(json.dumps(record))
    (state / "jobs" / "ftjob-half.json").write_text(json.dumps({"id": "ftjob-half"}))
    proc = subprocess.run(  # `emotune serve` starts (and is stopped by its timeout), no traceback
        [sys.executable, "-m", "emotune.cli", "serve", "--port", str(free_port())]
        + ["--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: signal.alarm(8),
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        assert [j.id for j in c.fine_tuning.jobs.list().data] == [kept.id]
        assert c.batches.list().data == []
        with pytest.raises(openai.NotFoundError):
            c.fine_tuning.jobs.retrieve(broken.id)
    assert (state / "jobs" / f"{broken.id}.json.corrupt").exists()
    assert (state / "batches" / f"{batch.id}.json.corrupt").exists()
    assert "status: Field required" in proc.stderr + caplog.text


def test_a_request_cannot_name_a_folder_as_its_model(tmp_path):
    folder = tmp_path / "any-folder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    ask = {"messages": [{"role": "user", "content": "hi"}]}
    with LocalServer(tmp_path / "s") as srv:
        for name in (str(folder), str(tmp_path), "/etc", "../../etc", "./any-folder"):
            r = httpx.get(f"{srv.base_url}/models/{name}", timeout=30)
            assert r.status_code == 404, (name, r.text)
            r = httpx.post(f"{srv.base_url}/chat/completions", json=ask | {"model": name})
            assert r.status_code in (400, 404) and r.json()["error"]["param"] == "model"
            r = httpx.post(
                f"{srv.base_url}/fine_tuning/jobs", json={"model": name, "training_file": "f"}
            )
            assert r.status_code in (400, 404) and r.json()["error"]["param"] == "model"
        assert str(folder) not in {
            m["id"] for m in httpx.get(f"{srv.base_url}/models").json()["data"]
        }
        r = httpx.get(f"{srv.base_url}/models/{folder}", timeout=30)
        assert "--base-model" in r.json()["error"]["message"]  # says how its owner serves one
    with LocalServer(tmp_path / "s2", base_models=[str(folder)]) as srv:  # named by its owner
        r = httpx.get(f"{srv.base_url}/models/{folder}", timeout=30)
        assert r.status_code == 200 and r.json()["owned_by"] == "open-weights"
    from emotune import connect
    from emotune.providers import stop_local_servers

    try:  # the same through connect, which starts the server in this process
        conn = connect("local", state_dir=tmp_path / "s3", base_models=[str(folder)])
        r = httpx.get(f"{conn.base_url}/models/{folder}", timeout=30)
        assert r.status_code == 200 and r.json()["id"] == str(folder)
    finally:
        stop_local_servers()


def test_planted_links_and_fifos_among_the_weights_are_never_opened(tmp_path, caplog):
    state, outside = tmp_path / "s", tmp_path / "outside"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(ROWS * 3)), purpose="fine-tune").id
        names = [
            wait_job(c, c.fine_tuning.jobs.create(model="stand-in", training_file=train).id)
            for _ in range(3)
        ]
    linked, fifo, swapped = (
        state / "weights" / j.fine_tuned_model.replace(":", "~") for j in names
    )
    outside.mkdir()
    for f in swapped.iterdir():
        (outside / f.name).write_bytes(f.read_bytes())
        f.unlink()
    swapped.rmdir()
    swapped.symlink_to(outside)  # the whole folder is a link
    (linked / "model.json").unlink()
    (linked / "model.json").symlink_to(outside / "model.json")  # one file is a link
    (fifo / "model.npz").unlink()
    os.mkfifo(fifo / "model.npz")  # a loader opening it would wait forever
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=20)
        for job in names:
            with pytest.raises(openai.NotFoundError, match="fine-tune it again"):
                c.chat.completions.create(
                    model=job.fine_tuned_model, messages=[{"role": "user", "content": "thanks"}]
                )
    assert caplog.text.count("refused") >= 3


def test_a_state_folder_that_is_a_link_stops_the_start_with_one_line(tmp_path):
    from emotune import BackendError

    state, outside = tmp_path / "s", tmp_path / "elsewhere"
    with LocalServer(state):
        pass
    outside.mkdir()
    for kind in ("blobs", "weights", "events", "jobs"):
        (state / kind).rename(tmp_path / f"{kind}.kept")
        (state / kind).symlink_to(outside)
        with pytest.raises(BackendError, match=f"{kind} in the state directory .* not a folder"):
            LocalServer(state)
        (state / kind).unlink()
        (tmp_path / f"{kind}.kept").rename(state / kind)
    with LocalServer(state):
        pass
    assert not list(outside.iterdir())


def test_the_base_model_a_notebook_names_is_served_by_its_in_process_server(tmp_path):
    """A notebook's own base_model (its configuration, never a request) is served by the server in
    its process: through resolve_base_model (notebooks 01-04) or the run's job record (05)."""
    from emotune import Run, resolve_base_model
    from emotune.core.manifest import JobRecord
    from emotune.local import models

    named, recorded = tmp_path / "named-model", tmp_path / "recorded-model"
    for folder in (named, recorded):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    try:
        with LocalServer(tmp_path / "s") as srv:
            url = f"{srv.base_url}/models/"
            assert httpx.get(url + str(named), timeout=30).status_code == 404
            assert resolve_base_model(str(named), "local") == str(named)
            assert httpx.get(url + str(named), timeout=30).status_code == 200
        run = Run(tmp_path / "run")
        run.put(JobRecord(id="ftjob-x", base_model=str(recorded)))
        from emotune import connect
        from emotune.providers import stop_local_servers

        try:
            conn = connect("local", run=run)
            r = httpx.get(f"{conn.base_url}/models/{recorded}", timeout=30)
            assert r.status_code == 200 and r.json()["owned_by"] == "open-weights"
        finally:
            stop_local_servers()
    finally:
        models.CONFIGURED.difference_update({str(named), str(recorded)})


def test_a_link_planted_where_weights_will_be_saved_fails_the_job_and_leaves_nothing(
    client, server
):
    outside = server.engine.store.root.parent / "outside"
    outside.mkdir()
    train = client.files.create(file=("t.jsonl", jsonl(ROWS * 60)), purpose="fine-tune").id
    blocker = client.fine_tuning.jobs.create(
        model="stand-in", training_file=train, hyperparameters={"n_epochs": 50, "batch_size": 1}
    )
    job = client.fine_tuning.jobs.create(
        model="stand-in", training_file=train, hyperparameters={"n_epochs": 1}
    )
    name = f"ft:stand-in:emotune-local::{job.id.removeprefix('ftjob-')[:8]}"
    weights = server.engine.store.root / "weights"
    (weights / name.replace(":", "~")).symlink_to(outside)  # where the final model will be saved
    client.fine_tuning.jobs.cancel(blocker.id)
    final = wait_job(client, job.id)
    assert final.status == "failed" and final.fine_tuned_model is None
    assert not list(outside.iterdir())  # nothing written through the link
    assert not [p for p in weights.iterdir() if p.name.startswith(name.replace(":", "~"))]
    assert not [m.id for m in client.models.list().data if m.id.startswith(name)]
