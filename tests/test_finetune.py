"""Launch, watch and resume against the local backend over HTTP: never an upload or a job twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date

import openai
import pandas as pd
import pytest

from emotune import BudgetError, JobError, LifecycleError, Run, providers
from emotune.core.manifest import EstimateRecord, SamplesRecord
from emotune.core.prompts import render_example
from emotune.local import LocalServer
from emotune.providers.local import LocalProvider
from emotune.providers.openai_api import OpenAIProvider
from emotune.stages import finetune

BASE = "gpt-4.1-mini-2025-04-14"
TOY = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
]


def prepare_run(path, n_repeat=5, estimate_usd=0.5, bad_line=None):
    run = Run(path)
    lines = [
        json.dumps(render_example(f"{t} {i}", labs)) for i in range(n_repeat) for t, labs in TOY
    ]
    if bad_line is not None:
        lines[bad_line] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    run.file("train.jsonl").parent.mkdir(parents=True, exist_ok=True)
    run.file("train.jsonl").write_text("\n".join(lines) + "\n")
    run.file("val.jsonl").write_text("\n".join(lines[:8]) + "\n")
    run.put(
        EstimateRecord(
            model=BASE, pricing="usd", training_usd=estimate_usd, billed_tokens=1000, n_epochs=3
        )
    )
    run.put(SamplesRecord(eval={"rows": 10}))
    return run


def P(client, kind=LocalProvider):
    """The client as a provider of the given kind (the local server answers for all of them here)."""
    return (
        client if not isinstance(client, openai.OpenAI) else kind(client, str(client.base_url), {})
    )


def launch(client, run, backend=LocalProvider, **kw):
    args = dict(base_model=BASE, seed=1, budget_usd=5.0) | kw
    return finetune.launch_or_resume(P(client, backend), run, **args)


def fast_watch(client, job_id, **kw):
    return finetune.watch(
        P(client),
        job_id,
        poll_s=0.02,
        max_poll_s=0.1,
        on_event=lambda m: None,
        progress=False,
        **kw,
    )


def test_running_the_launch_twice_uploads_once_and_creates_one_job(tmp_path, server, client):
    run = prepare_run(tmp_path / "run")
    first = finetune.upload_training_files(P(client), run)
    assert first["action"].tolist() == ["uploaded", "uploaded"]
    job1 = launch(client, run)
    again = finetune.upload_training_files(P(client), run)
    job2 = launch(client, run)
    assert again["action"].tolist() == ["reused (manifest)", "reused (manifest)"]
    assert job1.action == "created" and job2.action == "resumed (manifest)" and job1.id == job2.id
    stats = server.stats()
    assert stats["POST /v1/files"] == 2 and stats["POST /v1/fine_tuning/jobs"] == 1
    done = fast_watch(client, job1.id)
    assert done.status == "succeeded"
    metrics = finetune.step_metrics(P(client), done)
    assert (
        list(metrics.columns[:3]) == ["step", "train_loss", "train_accuracy"] and len(metrics) > 0
    )
    table = finetune.reconcile(run, done)
    assert table.loc[0, "trained_tokens"] == done.trained_tokens
    assert run.get("job", "fine_tuned_model") == done.fine_tuned_model
    ckpts = finetune.checkpoints_frame(P(client), done.id)
    assert ckpts["valid_loss"].notna().all()  # validation measured at every epoch end


def test_a_lost_manifest_adopts_the_remote_job_and_file(tmp_path, server, client):
    run = prepare_run(tmp_path / "run")
    finetune.upload_training_files(P(client), run)
    job = launch(client, run)
    manifest = run.manifest()
    for key in ("job", "uploads"):
        manifest.pop(key)
    run.manifest_path.write_text(json.dumps(manifest))  # the run id survives; the ids are gone
    again = finetune.upload_training_files(P(client), run)
    assert again["action"].tolist() == ["reused (found on server)"] * 2
    adopted = launch(client, run)
    assert adopted.action == "adopted (found on server)" and adopted.id == job.id
    assert (
        server.stats()["POST /v1/fine_tuning/jobs"] == 1 and server.stats()["POST /v1/files"] == 2
    )


def test_changed_file_is_uploaded_again(tmp_path, client, server):
    run = prepare_run(tmp_path / "run")
    finetune.upload_training_files(P(client), run)
    with open(run.file("train.jsonl"), "a") as f:
        f.write(json.dumps(render_example("one more", ["joy"])) + "\n")
    table = finetune.upload_training_files(P(client), run)
    assert table["action"].tolist() == ["uploaded", "reused (manifest)"]


def test_budget_refusal_creates_nothing(tmp_path, server, client):
    run = prepare_run(tmp_path / "run", estimate_usd=12.0)
    finetune.upload_training_files(P(client), run)
    with pytest.raises(BudgetError, match="nothing was spent"):
        launch(client, run, budget_usd=5.0)
    assert server.stats().get("POST /v1/fine_tuning/jobs", 0) == 0 and run.get("job") is None


def test_lifecycle_blocks_openai_jobs_after_the_window(tmp_path, server, client):
    run = prepare_run(tmp_path / "run")
    finetune.upload_training_files(P(client), run)
    with pytest.raises(LifecycleError, match="2027-01-06"):
        launch(client, run, backend=OpenAIProvider, today=date(2027, 1, 10))
    assert server.stats().get("POST /v1/fine_tuning/jobs", 0) == 0


def test_a_403_on_create_is_explained(tmp_path):
    with LocalServer(tmp_path / "state", fine_tuning_closed=True) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        run = prepare_run(tmp_path / "run")
        finetune.upload_training_files(P(c), run)
        with pytest.raises(LifecycleError) as info:
            launch(c, run)
        msg = str(info.value)
        assert (
            "403" in msg
            and "2026-05-07" in msg
            and "backend='local'" in msg
            and run.get("job") is None
        )


def test_a_429_on_create_is_retried_and_creates_exactly_one_job(tmp_path):
    with LocalServer(tmp_path / "state", fail_429=0.5, fault_seed=3, retry_after_s=0.01) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=10)
        run = prepare_run(tmp_path / "run")
        finetune.upload_training_files(P(c), run)
        job = launch(c, run)
        stats = srv.stats()
        assert stats["injected 429"] > 0
        jobs = c.fine_tuning.jobs.list().data
        assert [j.id for j in jobs] == [job.id]


def test_a_malformed_training_file_surfaces_the_jobs_error(tmp_path, client):
    run = prepare_run(tmp_path / "run", bad_line=6)
    finetune.upload_training_files(P(client), run)
    job = launch(client, run)
    with pytest.raises(JobError) as info:
        fast_watch(client, job.id)
    assert "invalid_training_file" in str(info.value) and "line 7" in str(info.value)


def test_cancel_is_reported(tmp_path, client):
    run = prepare_run(tmp_path / "run", n_repeat=100)
    finetune.upload_training_files(P(client), run)
    job = launch(client, run, n_epochs=25, batch_size=1)
    client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(JobError, match="cancelled"):
        fast_watch(client, job.id)


def test_watch_is_one_bounded_loop_with_back_off(tmp_path, client):
    run = prepare_run(tmp_path / "run", n_repeat=100)
    finetune.upload_training_files(P(client), run)
    job = launch(client, run, n_epochs=25, batch_size=1)
    waits = []
    with pytest.raises(JobError, match="keeps running"):
        finetune.watch(
            P(client),
            job.id,
            poll_s=0.01,
            max_poll_s=0.04,
            timeout_s=0.2,
            sleep=waits.append,
            on_event=lambda m: None,
            progress=False,
        )
    assert waits and max(waits) <= 0.04 and sum(waits) >= 0.2
    client.fine_tuning.jobs.cancel(job.id)


SCRIPT = textwrap.dedent("""
    import sys
    from emotune import Run, connect
    from emotune.stages import finetune
    run = Run(sys.argv[1])
    conn = connect("local", state_dir=sys.argv[2])
    finetune.upload_training_files(conn, run)
    rec = finetune.launch_or_resume(conn, run, base_model="gpt-4.1-mini-2025-04-14",
                                    seed=1, budget_usd=5.0, n_epochs=25, batch_size=1)
    finetune.watch(conn, rec.id, poll_s=0.02, on_event=lambda m: print(m, flush=True), progress=False)
""")


def test_killing_the_process_mid_job_and_running_again_resumes_the_same_job(tmp_path):
    run = prepare_run(tmp_path / "run", n_repeat=25)
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(run.path), str(state)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in proc.stdout:
            if line.strip() == "status: running":
                break
        else:
            pytest.fail("the job never reached running")
        proc.send_signal(signal.SIGKILL)  # no clean shutdown: the kernel died mid-job
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    job_id = run.get("job", "id")
    assert (
        job_id
        and json.loads((state / "jobs" / f"{job_id}.json").read_text())["status"] == "running"
    )
    conn = providers.connect("local", state_dir=state)
    try:
        again = finetune.launch_or_resume(conn, run, base_model=BASE, seed=1, budget_usd=5.0)
        assert again.action == "resumed (manifest)" and again.id == job_id
        done = fast_watch(conn, job_id)
        assert done.status == "succeeded"
        assert conn.server.stats().get("POST /v1/fine_tuning/jobs", 0) == 0
        assert conn.server.stats().get("POST /v1/files", 0) == 0
        assert len(conn.client.fine_tuning.jobs.list().data) == 1
    finally:
        providers.stop_local_servers()


def test_step_metrics_fall_back_to_events(tmp_path, client):
    run = prepare_run(tmp_path / "run")
    finetune.upload_training_files(P(client), run)
    done = fast_watch(client, launch(client, run).id)
    from_events = finetune.step_metrics(P(client), done.model_copy(update={"result_files": []}))
    from_csv = finetune.step_metrics(P(client), done)
    assert len(from_events) == len(from_csv)
    pd.testing.assert_series_equal(
        from_events["train_loss"], from_csv["train_loss"], check_dtype=False, atol=1e-4
    )


def test_a_server_file_is_read_only_up_to_its_cap(tmp_path, client):
    """The job's results file is read through the same capped reader as a batch's output: within
    the cap it is the CSV, over it one error naming the file, and never read whole."""
    from emotune.core.errors import BackendError
    from emotune.stages.batch import server_file_text

    run = prepare_run(tmp_path / "run")
    finetune.upload_training_files(P(client), run)
    done = fast_watch(client, launch(client, run).id)
    text = server_file_text(client, done.result_files[0], 1024 * 1024)
    assert text.splitlines()[0].startswith("step,")
    with pytest.raises(BackendError, match=f"{done.result_files[0]} is larger than the 64 bytes"):
        server_file_text(client, done.result_files[0], 64)
