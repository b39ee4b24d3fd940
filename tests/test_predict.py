"""Prediction against the local backend: concurrency, retries under injected faults, the cache, the Batch
path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from emotune import Run
from emotune import providers as backend
from emotune.core.prompts import prompt_spec
from emotune.providers.compatible import CompatibleProvider
from emotune.stages import batch, predict, ratelimit

BASE = "gpt-4.1-mini-2025-04-14"


def frame(n):
    words = ["grateful", "angry", "sad", "amused", "surprised", "proud", "ok"]
    return pd.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "text": [f"I am {words[i % len(words)]} #{i}" for i in range(n)],
            "labels": [[0]] * n,
        }
    )


@pytest.fixture(autouse=True)
def stop_servers():
    yield
    backend.stop_local_servers()


def conn_for(state, **faults):
    return backend.connect("local", state_dir=state, **faults)


def test_faults_lose_no_prediction_and_failures_never_become_labels(tmp_path):
    conn = conn_for(tmp_path / "s", fail_429=0.2, fail_500=0.1, latency_ms=20, retry_after_s=0.01)
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    out = predict.classify(conn, BASE, frame(300), cache=cache, concurrency=32, progress=False)
    stats = conn.server.stats()
    assert stats["injected 429"] > 20 and stats["injected 500"] > 10
    assert len(out.frame) == 300 and out.failures == [] and (out.frame["status"] == "ok").all()
    assert out.frame.set_index("id").loc["c1", "labels"] == ("anger",)


def test_a_request_that_keeps_failing_is_reported_not_labelled(tmp_path):
    conn = backend.connect("local", state_dir=tmp_path / "s", max_retries=0, fail_500=1.0)
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    out = predict.classify(conn, BASE, frame(5), cache=cache, progress=False)
    assert len(out.frame) == 0 and len(out.failures) == 5 and len(cache) == 0
    assert "InternalServerError" in out.failures[0]["error"]


def test_a_failure_kind_says_whether_the_request_is_asked_again_now_and_in_the_next_round():
    from emotune.stages.requests import FailureKind as K

    assert {k for k in K if not k.next_round} == {K.MALFORMED, K.SERVER_DOWN}
    assert {k for k in K if not k.retry_now} == {K.CLIENT_ERROR, K.MALFORMED, K.SERVER_DOWN}


def test_a_server_error_is_asked_again_in_every_round(tmp_path):
    from emotune.stages.requests import ROUNDS

    conn = backend.connect("local", state_dir=tmp_path / "s", max_retries=0, fail_500=1.0)
    out = predict.classify(
        conn, BASE, frame(4), cache=predict.PredictionCache(tmp_path / "c.jsonl")
    )
    assert out.sent == out.attempts == 4 * ROUNDS == conn.server.stats()["injected 500"]
    assert [f["id"] for f in out.failures] == ["c0", "c1", "c2", "c3"]
    assert all(f["error"].startswith("InternalServerError: ") for f in out.failures)


def test_a_rerun_buys_nothing_twice(tmp_path):
    conn = conn_for(tmp_path / "s")
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    first = predict.classify(conn, BASE, frame(40), cache=cache, seed=3, progress=False)
    cache.close()
    again = predict.classify(
        conn,
        BASE,
        frame(40),
        cache=predict.PredictionCache(tmp_path / "cache.jsonl"),
        seed=3,
        progress=False,
    )
    assert first.sent == 40 and again.sent == 0 and again.frame["cached"].all()
    assert conn.server.stats()["POST /v1/chat/completions"] == 40
    assert again.labels() == first.labels() and again.prompt_tokens == first.prompt_tokens
    other_seed = predict.classify(
        conn,
        BASE,
        frame(40),
        cache=predict.PredictionCache(tmp_path / "cache.jsonl"),
        seed=4,
        progress=False,
    )
    assert other_seed.sent == 40  # another sampling parameter is another prediction


SCRIPT = textwrap.dedent("""
    import sys, pandas as pd
    from emotune.stages import predict
    from emotune import providers as backend
    conn = backend.connect("local", state_dir=sys.argv[1], latency_ms=50)
    cache = predict.PredictionCache(sys.argv[2])
    ids = range(400)
    texts = pd.DataFrame({"id": [f"c{i}" for i in ids], "text": [f"I am grateful #{i}" for i in ids]})
    predict.classify(conn, "gpt-4.1-mini-2025-04-14", texts, cache=cache, concurrency=8, progress=False)
""")


def test_after_a_kill_mid_run_only_the_missing_predictions_are_requested(tmp_path):
    cache_path = tmp_path / "cache.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "s1"), str(cache_path)],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache_path.exists() and len(cache_path.read_text().splitlines()) >= 60:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = len(
        {json.loads(x)["key"] for x in cache_path.read_text().splitlines() if x.endswith("}")}
    )
    assert 60 <= done_before < 400
    conn = conn_for(tmp_path / "s2")
    texts = pd.DataFrame(
        {"id": [f"c{i}" for i in range(400)], "text": [f"I am grateful #{i}" for i in range(400)]}
    )
    out = predict.classify(
        conn, BASE, texts, cache=predict.PredictionCache(cache_path), concurrency=8, progress=False
    )
    assert len(out.frame) == 400
    assert conn.server.stats()["POST /v1/chat/completions"] == 400 - done_before == out.sent


def test_batch_and_online_give_the_same_predictions_and_the_batch_resumes(tmp_path):
    conn = conn_for(tmp_path / "s")
    run = Run(tmp_path / "run")
    texts = frame(30)
    online = predict.classify(
        conn, BASE, texts, cache=predict.PredictionCache(tmp_path / "online.jsonl"), progress=False
    )
    batch_cache = predict.PredictionCache(tmp_path / "batch.jsonl")
    via_batch = batch.classify_batch(
        conn, run, BASE, texts, key="base", cache=batch_cache, sleep=lambda s: None
    )
    assert via_batch.labels() == online.labels() and list(via_batch.frame.columns) == list(
        online.frame.columns
    )
    assert via_batch.sent == 30 and run.get("batches", "base", "status") == "completed"
    again = batch.classify_batch(
        conn, run, BASE, texts, key="base", cache=batch_cache, sleep=lambda s: None
    )
    assert again.sent == 0 and conn.server.stats()["POST /v1/batches"] == 1
    # the batch filled the cache: the online path now buys nothing
    after = predict.classify(conn, BASE, texts, cache=batch_cache, progress=False)
    assert after.sent == 0


def test_cache_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps(
            {"key": "a", "content": "joy", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        )
        + '\n{"key": "b", "cont'
    )
    cache = predict.PredictionCache(path)
    assert len(cache) == 1 and cache.get("a")["content"] == "joy" and cache.get("b") is None


# --- a server that answers garbage, a server that is down, a server with rate limits (issues 13 and 16) ---

GOOD = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "system_fingerprint": "fp",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "joy"}}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
GARBAGE = {  # model name -> (content type, body)
    "html": ("text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "empty": ("application/json", b""),
    "list": ("application/json", b"[1, 2, 3]"),
    "no-choices": ("application/json", json.dumps({**GOOD, "choices": []}).encode()),
    "no-usage": (
        "application/json",
        json.dumps({k: v for k, v in GOOD.items() if k != "usage"}).encode(),
    ),
    "number-content": (
        "application/json",
        json.dumps(
            {
                **GOOD,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": 5},
                    }
                ],
            }
        ).encode(),
    ),
    "huge": (
        "application/json",
        json.dumps(
            {
                **GOOD,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "joy, " * 2_000_000},
                    }
                ],
            }
        ).encode(),
    ),
    "good": ("application/json", json.dumps(GOOD).encode()),
}


@pytest.fixture
def garbage_url():
    """A real HTTP server (uvicorn, in a thread) whose chat answer depends on the requested model."""
    import threading

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from emotune.local.server import free_port

    async def chat(request):
        kind, body = GARBAGE[(await request.json())["model"]]
        return Response(body, media_type=kind)

    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/v1"
    srv.should_exit = True
    thread.join(timeout=10)


def conn_at(url, max_retries=2):
    import openai

    options = {"max_retries": max_retries, "timeout": 10.0}
    return CompatibleProvider(openai.OpenAI(base_url=url, api_key="x", **options), url, options)


@pytest.mark.parametrize("model", [m for m in GARBAGE if m != "good"])
def test_a_garbage_answer_is_a_reported_failure_never_a_crash_or_a_cache_entry(
    tmp_path, garbage_url, model
):
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    out = predict.classify(conn_at(garbage_url), model, frame(3), cache=cache, progress=False)
    assert len(out.frame) == 0 and len(out.failures) == 3 and len(cache) == 0
    assert all(f["error"].startswith("malformed answer") for f in out.failures)
    assert out.attempts == 3  # garbage is not retried: the server would answer it again
    good = predict.classify(conn_at(garbage_url), "good", frame(3), cache=cache, progress=False)
    assert good.failures == [] and len(cache) == 3


def test_a_non_string_answer_cached_by_an_older_run_is_asked_again(tmp_path, garbage_url):
    path = tmp_path / "c.jsonl"
    messages = prompt_spec().messages("I am grateful #0")
    key = predict.PredictionCache.key(
        "good", messages, predict.sampling_params(0, spec=prompt_spec())
    )
    path.write_text(
        json.dumps(
            {"key": key, "content": 7, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        )
        + "\n"
    )
    cache = predict.PredictionCache(path)
    assert len(cache) == 0
    out = predict.classify(conn_at(garbage_url), "good", frame(1), cache=cache, progress=False)
    assert out.sent == 1 and out.frame["answer"].tolist() == ["joy"]


def test_a_stopped_server_is_reported_down_after_a_few_attempts_and_the_cache_is_kept(tmp_path):
    from emotune.local.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    kept = frame(200).iloc[:2]
    for text in kept["text"]:
        key = predict.PredictionCache.key(
            BASE, prompt_spec().messages(text), predict.sampling_params(0, spec=prompt_spec())
        )
        cache.put(
            key,
            {
                "model": BASE,
                "content": "joy",
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            },
        )
    out = predict.classify(
        conn_at(url, max_retries=5), BASE, frame(200), cache=cache, progress=False
    )
    assert len(out.frame) == 2 and len(out.failures) == 198 and len(cache) == 2
    assert all("refused" in f["error"] for f in out.failures)
    assert any(f["error"].startswith("server down") for f in out.failures)
    assert out.attempts <= 3 * ratelimit.START_CONCURRENCY  # not 198 items x 6 attempts


def test_the_predictor_runs_at_a_servers_rate_limit_without_losing_anything(tmp_path):
    from emotune.local import LocalServer

    with LocalServer(tmp_path / "s", rpm=1200, tpm=1_000_000, latency_ms=20) as srv:
        conn = conn_at(srv.base_url, max_retries=2)
        out = predict.classify(
            conn,
            BASE,
            frame(150),
            cache=predict.PredictionCache(tmp_path / "c.jsonl"),
            progress=False,
        )
    assert out.failures == [] and len(out.frame) == 150
    assert out.rate["rpm limit"] == 1200 and out.rate.get("429s", 0) <= 0.05 * out.attempts


def test_rate_limit_headers_and_429s_steer_the_limiter():
    assert [
        ratelimit.parse_duration(x) for x in ("1s", "6m0s", "120ms", "1h2m3.5s", "2", "soon", "")
    ] == [
        1.0,
        360.0,
        0.12,
        3723.5,
        2.0,
        None,
        None,
    ]
    assert ratelimit.retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert ratelimit.retry_after({"retry-after": "3"}) == 3.0 and ratelimit.retry_after({}) is None
    lim = ratelimit.Limiter()
    lim.observe_headers(
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "2s",
            "x-ratelimit-limit-tokens": "90000",
        }
    )
    assert (
        lim.requests.limit == 600
        and lim.tokens.limit == 90000
        and lim._blocked_for(time.monotonic()) > 1.5
    )
    first = lim._reserve(100, 0.0)  # booked send times keep both budgets at SAFETY
    second = lim._reserve(100, 0.0)
    assert second - first == pytest.approx(
        max(60 / (600 * ratelimit.SAFETY), 60 * 100 / (90000 * ratelimit.SAFETY))
    )
    before = lim.concurrency
    lim.on_throttled(0.5, {})
    assert lim.concurrency == before / 2 and lim.throttled == 1 and not lim.slow_start
    for _ in range(ratelimit.BREAKER_AFTER):
        lim.on_connection_error()
    assert lim.down


def test_a_slow_backend_gets_fewer_requests_in_flight_and_longer_timeouts():
    lim = ratelimit.Limiter(concurrency=16, base_timeout=10)
    lim.on_success(1.0)
    for _ in range(200):  # answers queue behind each other: latency grows with what is in flight
        lim.on_success(1.0 + 0.5 * lim.concurrency)
    assert lim.concurrency < 4 and lim.timeout() > 10
    batching = ratelimit.Limiter(concurrency=8, base_timeout=10)
    batching.observe_headers(
        {"x-emotune-batch-size": "32"}
    )  # the backend answers 32 requests in one pass
    assert batching.concurrency == 32
    batching.on_success(1.0)
    for _ in range(
        200
    ):  # a batch's latency grows with its size, yet fewer in flight would only leave it part empty
        batching.on_success(1.0 + 0.5 * batching.concurrency)
    assert batching.concurrency == 32 and batching.timeout() > 10


def test_the_base_model_is_asked_with_every_label_and_answers_from_the_comment(
    tmp_path, monkeypatch
):
    from emotune.core.runs import open_run
    from emotune.local.chat import Chat
    from emotune.stages import evaluate

    received = []
    answer = Chat.answer

    def recording(self, req):  # what the local backend receives, before it answers
        received.append((req.model, req.messages_as_dicts()))
        return answer(self, req)

    monkeypatch.setattr(Chat, "answer", recording)
    conn = conn_for(tmp_path / "s")
    specs = evaluate.prompt_specs(prompt_spec("compact", "comma", "goemotions"))
    texts = frame(14)
    run = open_run(tmp_path / "run")
    out = evaluate.predict_models(
        conn,
        run,
        {"base": BASE, evaluate.BASE_ON_TRAINING_PROMPT: BASE},
        texts,
        cache=predict.PredictionCache(tmp_path / "cache.jsonl"),
        specs=specs,
        seed=1,
    )
    labels = specs["base"].taxonomy.labels
    zero_shot = [m for _, m in received if m[0]["content"] != "Label the emotions (goemotions)."]
    compact = [m for _, m in received if m[0]["content"] == "Label the emotions (goemotions)."]
    assert len(zero_shot) == len(compact) == 14
    assert all(
        all(lab in m[0]["content"] for lab in labels) and m[1]["content"] in set(texts["text"])
        for m in zero_shot
    )
    # the label list in the prompt is not read as the comment: one or two labels per answer, not 28
    assert max(len(labs) for labs in out["base"].labels()) <= 2
    assert out["base"].labels() == out[evaluate.BASE_ON_TRAINING_PROMPT].labels()


def test_each_answer_records_when_it_came_so_a_cached_pass_keeps_its_pace(tmp_path):
    from emotune.stages.predict import PredictionCache, _assemble

    cache = PredictionCache(tmp_path / "c.jsonl")
    items = [(str(i), [], f"k{i}") for i in range(5)]
    for i, (_, _, key) in enumerate(items):
        cache.put(
            key,
            {
                "model": "m",
                "content": "joy",
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                "answered_at": 1000.0 + 2.5 * i,
            },
        )
    cache.close()
    again = PredictionCache(tmp_path / "c.jsonl")  # a re-run reads the pace back from the cache
    assert (
        _assemble("m", items, again, {k for *_, k in items}, {}, "goemotions", 0).seconds_per_answer
        == 2.5
    )
    again.put(
        "old",
        {"model": "m", "content": "joy", "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    )
    assert (
        _assemble(
            "m", items + [("5", [], "old")], again, set(), {}, "goemotions", 0
        ).seconds_per_answer
        is None
    )
