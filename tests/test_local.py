"""The local backend over real HTTP, driven by the official openai client, checked with openai's own types."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import openai
import pytest
from conftest import wait_job
from openai.types import Batch, FileDeleted, FileObject, Model
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from emotune.core import prompts as examples
from emotune.core.taxonomy import get_taxonomy
from emotune.local import LocalServer
from emotune.stages import data

GOEMOTIONS = get_taxonomy("goemotions")

BASE = "gpt-4.1-mini-2025-04-14"


def strict(model_type, payload: dict):
    """Validate with openai's pydantic type, and allow no field the type does not know."""
    obj = model_type.model_validate(payload)
    extra = set(payload) - set(model_type.model_fields)
    assert not extra, f"{model_type.__name__} has unknown fields {extra}"
    return obj


def jsonl(rows: list[tuple[str, list[str]]], **kw) -> bytes:
    return "".join(
        json.dumps(examples.render_example(t, labs, **kw)) + "\n" for t, labs in rows
    ).encode()


TOY = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
    ("thanks, love it", ["gratitude", "love"]),
    ("haha funny", ["amusement"]),
    ("furious and angry", ["anger"]),
    ("ok then", ["neutral"]),
    ("many thanks", ["gratitude"]),
    ("so funny lol", ["amusement"]),
    ("angry about this", ["anger"]),
    ("it is what it is", ["neutral"]),
]


def wait_batch(client, batch_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b = client.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "cancelled", "expired"):
            return b
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {b.status}")


def test_files_endpoints(client, server):
    raw = client.files.with_raw_response.create(
        file=("train.jsonl", jsonl(TOY)), purpose="fine-tune"
    )
    f = strict(FileObject, raw.http_response.json())
    assert f.bytes == len(jsonl(TOY)) and f.filename == "train.jsonl" and f.status == "processed"
    listed = client.files.with_raw_response.list().http_response.json()
    assert [strict(FileObject, x).id for x in listed["data"]] == [f.id]
    assert (
        strict(FileObject, client.files.with_raw_response.retrieve(f.id).http_response.json()).id
        == f.id
    )
    assert client.files.content(f.id).content == jsonl(TOY)
    assert strict(
        FileDeleted, client.files.with_raw_response.delete(f.id).http_response.json()
    ).deleted
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(f.id)
    assert info.value.body["code"] == "file_not_found" and set(info.value.body) == {
        "message",
        "type",
        "param",
        "code",
    }
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("x.jsonl", b"{}"), purpose="nonsense")


def test_upload_over_the_limit_is_413(tmp_path):
    with LocalServer(tmp_path / "s", max_upload_bytes=1000) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            c.files.create(file=("big.jsonl", b"x" * 5000), purpose="fine-tune")
        assert info.value.status_code == 413 and info.value.body["code"] == "file_too_large"


def test_models_and_chat(client):
    models = client.models.with_raw_response.list().http_response.json()["data"]
    assert BASE in {strict(Model, m).id for m in models}
    strict(Model, client.models.with_raw_response.retrieve(BASE).http_response.json())
    raw = client.chat.completions.with_raw_response.create(
        model=BASE,
        messages=examples.prompt_messages("so grateful, and amused"),
        temperature=0,
        seed=1,
    )
    chat = strict(ChatCompletion, raw.http_response.json())
    assert chat.system_fingerprint == "emotune-local-zero-shot"
    assert examples.parse_answer(chat.choices[0].message.content).labels == (
        "amusement",
        "gratitude",
    )
    from emotune.core.tokens import count_chat_tokens, encoding_for

    enc = encoding_for(BASE)
    assert chat.usage.prompt_tokens == count_chat_tokens(
        examples.prompt_messages("so grateful, and amused"), enc
    )
    assert chat.usage.completion_tokens == len(enc.encode(chat.choices[0].message.content))
    short = client.chat.completions.create(
        model=BASE,
        messages=examples.prompt_messages("grateful and amused"),
        max_completion_tokens=1,
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 1
    js = client.chat.completions.create(
        model=BASE,
        messages=examples.prompt_messages("grateful"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "labels", "schema": {"type": "object"}},
        },
    )
    assert json.loads(js.choices[0].message.content) == {"labels": ["gratitude"]}
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="ft:gpt-4o:nobody::x", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=BASE, messages=[])


def test_fine_tuning_flow_and_restart(tmp_path):
    state = tmp_path / "state"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(TOY * 3)), purpose="fine-tune")
        valid = c.files.create(file=("v.jsonl", jsonl(TOY)), purpose="fine-tune")
        raw = c.fine_tuning.jobs.with_raw_response.create(
            model=BASE,
            training_file=train.id,
            validation_file=valid.id,
            suffix="toy",
            seed=7,
            metadata={"run": "r1"},
            method={
                "type": "supervised",
                "supervised": {
                    "hyperparameters": {
                        "n_epochs": 4,
                        "batch_size": 4,
                        "learning_rate_multiplier": "auto",
                    }
                },
            },
        )
        created = strict(FineTuningJob, raw.http_response.json())
        assert created.status == "validating_files"
        job = wait_job(c, created.id)
        strict(
            FineTuningJob,
            c.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response.json(),
        )
        assert job.status == "succeeded" and job.fine_tuned_model.startswith(
            f"ft:{BASE}:emotune-local-stand-in:toy:"
        )
        assert job.hyperparameters.n_epochs == 4 and job.hyperparameters.batch_size == 4
        assert job.trained_tokens > 0 and job.metadata == {"run": "r1"}
        events = c.fine_tuning.jobs.with_raw_response.list_events(
            job.id, limit=500
        ).http_response.json()
        parsed = [strict(FineTuningJobEvent, e) for e in events["data"]]
        assert parsed[0].message == "The job has successfully completed"  # newest first
        steps = [e.data for e in parsed if e.type == "metrics"]
        assert (
            len(steps) == 4 * 9 and steps[0]["step"] == 36
        )  # 36 examples / batch 4 = 9 steps an epoch
        page = c.fine_tuning.jobs.list_events(job.id, limit=5)
        nxt = c.fine_tuning.jobs.list_events(job.id, limit=5, after=page.data[-1].id)
        assert page.has_more and nxt.data[0].id == parsed[5].id
        ckpts = c.fine_tuning.jobs.checkpoints.with_raw_response.list(job.id).http_response.json()[
            "data"
        ]
        assert [strict(FineTuningJobCheckpoint, x).step_number for x in ckpts] == [36, 27, 18]
        csv = c.files.content(job.result_files[0]).text.splitlines()
        assert (
            csv[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
            and len(csv) == 37
        )
        losses = [float(line.split(",")[1]) for line in csv[1:]]
        assert np.mean(losses[-9:]) < np.mean(losses[:9])  # it learns
        answer = c.chat.completions.create(
            model=job.fine_tuned_model, messages=examples.prompt_messages("thank you!")
        )
        assert answer.system_fingerprint == "emotune-local-fine-tuned"
        assert examples.parse_answer(answer.choices[0].message.content).labels == ("gratitude",)
        ckpt_model = ckpts[1]["fine_tuned_model_checkpoint"]
        c.chat.completions.create(model=ckpt_model, messages=examples.prompt_messages("thank you!"))
        listed = c.fine_tuning.jobs.list(metadata={"run": "r1"})
        assert [j.id for j in listed.data] == [job.id] and c.fine_tuning.jobs.list(
            metadata={"run": "zz"}
        ).data == []
    # a new server on the same state directory finds everything again
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        again = c.fine_tuning.jobs.retrieve(job.id)
        assert again.status == "succeeded" and {f.id for f in c.files.list()} >= {
            train.id,
            valid.id,
        }
        reply = c.chat.completions.create(
            model=job.fine_tuned_model, messages=examples.prompt_messages("thank you!")
        )
        assert reply.choices[0].message.content == answer.choices[0].message.content
        assert job.fine_tuned_model in {m.id for m in c.models.list()}


def test_same_inputs_and_seed_give_the_same_model_and_hyperparameters_matter(client):
    train = client.files.create(file=("t.jsonl", jsonl(TOY * 3)), purpose="fine-tune").id

    def run(**hp):
        job = client.fine_tuning.jobs.create(
            model=BASE, training_file=train, seed=3, hyperparameters=hp
        )
        job = wait_job(client, job.id)
        return client.files.content(job.result_files[0]).text

    a, b = run(n_epochs=2, batch_size=4), run(n_epochs=2, batch_size=4)
    assert a == b
    assert len(run(n_epochs=3, batch_size=4).splitlines()) == 1 + 27
    assert run(n_epochs=2, batch_size=4, learning_rate_multiplier=0.1) != a


def test_malformed_training_file_fails_the_job_naming_the_line(client):
    lines = jsonl(TOY).decode().splitlines()
    lines[4] = '{"messages": [{"role": "user", "content": "no answer here"}]}'
    bad = client.files.create(
        file=("bad.jsonl", ("\n".join(lines) + "\n").encode()), purpose="fine-tune"
    )
    job = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=bad.id).id)
    assert job.status == "failed" and job.error.code == "invalid_training_file"
    assert "line 5" in job.error.message or ":5:" in job.error.message
    few = client.files.create(file=("few.jsonl", jsonl(TOY[:3])), purpose="fine-tune")
    job = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=few.id).id)
    assert job.status == "failed" and "at least 10" in job.error.message
    with pytest.raises(openai.BadRequestError) as info:
        client.fine_tuning.jobs.create(model="gpt-3.5-turbo", training_file=few.id)
    assert info.value.body["code"] == "model_not_available"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_cancel_and_job_list_pagination(client, server):
    train = client.files.create(file=("t.jsonl", jsonl(TOY * 20)), purpose="fine-tune").id
    jobs = [
        client.fine_tuning.jobs.create(
            model=BASE, training_file=train, hyperparameters={"n_epochs": 25, "batch_size": 1}
        )
        for _ in range(3)
    ]
    cancelled = client.fine_tuning.jobs.cancel(jobs[-1].id)  # still queued behind the others
    assert strict(FineTuningJob, cancelled.model_dump(mode="json")).status == "cancelled"
    client.fine_tuning.jobs.cancel(jobs[0].id)
    assert wait_job(client, jobs[0].id).status in ("cancelled", "succeeded")
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == [jobs[2].id, jobs[1].id] and page.has_more
    rest = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id)
    assert [j.id for j in rest.data] == [jobs[0].id] and not rest.has_more
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(jobs[-1].id)
    client.fine_tuning.jobs.cancel(jobs[1].id)
    wait_job(client, jobs[1].id)


def test_a_job_caught_mid_training_by_a_crash_finishes_after_restart(tmp_path):
    state = tmp_path / "state"
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(TOY * 3)), purpose="fine-tune").id
        job = wait_job(c, c.fine_tuning.jobs.create(model=BASE, training_file=train, seed=1).id)
    # what a crash leaves behind: the record says running, no model was published
    record = json.loads((state / "jobs" / f"{job.id}.json").read_text())
    record.update(status="running", fine_tuned_model=None, finished_at=None, result_files=[])
    (state / "jobs" / f"{job.id}.json").write_text(json.dumps(record))
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        done = wait_job(c, job.id)
        assert done.status == "succeeded" and done.fine_tuned_model == job.fine_tuned_model
        messages = [e.message for e in c.fine_tuning.jobs.list_events(job.id, limit=1000).data]
        assert any("restarted while this job was running" in m for m in messages)


def test_batches(client):
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": BASE, "messages": examples.prompt_messages(text), "temperature": 0},
        }
        for i, (text, _) in enumerate(TOY[:5])
    ]
    lines.append(
        {
            "custom_id": "bad",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "ft:nope:x::y", "messages": [{"role": "user", "content": "hi"}]},
        }
    )
    f = client.files.create(
        file=("b.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch"
    )
    raw = client.batches.with_raw_response.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    created = strict(Batch, raw.http_response.json())
    done = wait_batch(client, created.id)
    strict(Batch, client.batches.with_raw_response.retrieve(created.id).http_response.json())
    assert (
        done.status == "completed"
        and done.request_counts.completed == 5
        and done.request_counts.failed == 1
    )
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    err = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    by_id = {o["custom_id"]: strict(ChatCompletion, o["response"]["body"]) for o in out}
    online = client.chat.completions.create(**lines[0]["body"])
    assert by_id["r0"].choices[0].message.content == online.choices[0].message.content
    assert err[0]["custom_id"] == "bad" and err[0]["response"]["status_code"] == 404
    assert [b.id for b in client.batches.list().data] == [created.id]
    with pytest.raises(openai.APIStatusError) as info:
        client.batches.cancel(created.id)
    assert info.value.status_code == 409


def test_fault_injection_does_what_it_promises(tmp_path):
    with LocalServer(tmp_path / "s", fail_429=1.0, retry_after_s=0.05) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.RateLimitError) as info:
            c.models.list()
        assert (
            info.value.response.headers["retry-after-ms"] == "50"
            and "retry-after" in info.value.response.headers
        )
    with LocalServer(tmp_path / "s", fail_500=1.0) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            c.models.list()
    with LocalServer(tmp_path / "s", fail_429=0.2, fail_500=0.1, fault_seed=1) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        outcomes = []
        for _ in range(300):
            try:
                c.models.list()
                outcomes.append("ok")
            except openai.RateLimitError:
                outcomes.append("429")
            except openai.InternalServerError:
                outcomes.append("500")
        share = {k: outcomes.count(k) / 300 for k in ("429", "500")}
        assert 0.13 < share["429"] < 0.27 and 0.05 < share["500"] < 0.16
        assert srv.stats()["injected 429"] == outcomes.count("429")
        # the official client's retries get through the same faults
        retrying = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=8)
        for _ in range(20):
            retrying.models.list()
    with LocalServer(tmp_path / "s", latency_ms=120) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        t0 = time.perf_counter()
        c.models.list()
        assert (
            time.perf_counter() - t0 >= 0.12
        )  # a lower bound the sleep guarantees, not a speed test


def test_200_concurrent_async_chats_complete(server):
    async def go():
        c = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        sem = asyncio.Semaphore(64)

        async def one(i):
            async with sem:
                r = await c.chat.completions.create(
                    model=BASE, messages=examples.prompt_messages(f"grateful {i}")
                )
                return r.choices[0].message.content

        results = await asyncio.gather(*(one(i) for i in range(200)))
        await c.close()
        return results

    results = asyncio.run(go())
    assert len(results) == 200 and set(results) == {"gratitude"}
    assert server.stats()["POST /v1/chat/completions"] == 200


def test_learner_beats_the_zero_shot_stand_in_on_held_out_data(loaded_mirror, tmp_path):
    from sklearn.metrics import f1_score

    dd = loaded_mirror.dataset
    train = data.stratified_sample(data.to_frame(dd["train"]), 3000, seed=0, n_labels=28)
    valid = data.stratified_sample(data.to_frame(dd["validation"]), 600, seed=0, n_labels=28)
    test = data.stratified_sample(data.to_frame(dd["test"]), 600, seed=0, n_labels=28)

    def as_rows(f):
        return [(t, GOEMOTIONS.names(ids)) for t, ids in zip(f["text"], f["labels"], strict=True)]

    with LocalServer(tmp_path / "s") as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        tf = c.files.create(file=("t.jsonl", jsonl(as_rows(train))), purpose="fine-tune").id
        vf = c.files.create(file=("v.jsonl", jsonl(as_rows(valid))), purpose="fine-tune").id
        job = wait_job(
            c,
            c.fine_tuning.jobs.create(model=BASE, training_file=tf, validation_file=vf, seed=0).id,
            120,
        )
        scores = {}
        for name, model in (("base", BASE), ("fine-tuned", job.fine_tuned_model)):
            preds = [
                examples.parse_answer(
                    c.chat.completions.create(model=model, messages=examples.prompt_messages(t))
                    .choices[0]
                    .message.content
                ).labels
                for t in test["text"]
            ]
            y_true = data.multi_hot(test["labels"].tolist(), 28)
            y_pred = data.multi_hot([[GOEMOTIONS.index(x) for x in p] for p in preds], 28)
            scores[name] = f1_score(y_true, y_pred, average="macro", zero_division=0)
    assert scores["fine-tuned"] > scores["base"] + 0.03, scores
