"""Prediction against the local backend: concurrency, retries under injected faults, the cache, the Batch path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from emotune import Run
from emotune import providers as backend
from emotune.stages import predict

BASE = "gpt-4.1-mini-2025-04-14"


def frame(n):
    words = ["grateful", "angry", "sad", "amused", "surprised", "proud", "ok"]
    return pd.DataFrame({"id": [f"c{i}" for i in range(n)], "text": [f"I am {words[i % len(words)]} #{i}" for i in range(n)],
                         "labels": [[0]] * n})


@pytest.fixture(autouse=True)
def stop_servers():
    yield
    backend.stop_local_servers()


def conn_for(state, **faults):
    return backend.connect("local", state_dir=state, announce=False, **faults)


def test_faults_lose_no_prediction_and_failures_never_become_labels(tmp_path):
    conn = conn_for(tmp_path / "s", fail_429=0.2, fail_500=0.1, latency_ms=20, retry_after_s=0.01)
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    out = predict.classify(conn, BASE, frame(300), cache=cache, concurrency=32, progress=False)
    stats = conn.server.stats()
    assert stats["injected 429"] > 20 and stats["injected 500"] > 10
    assert len(out.frame) == 300 and out.failures == [] and (out.frame["status"] == "ok").all()
    assert out.frame.set_index("id").loc["c1", "labels"] == ("anger",)


def test_a_request_that_keeps_failing_is_reported_not_labelled(tmp_path):
    conn = backend.connect("local", state_dir=tmp_path / "s", announce=False, max_retries=0, fail_500=1.0)
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    out = predict.classify(conn, BASE, frame(5), cache=cache, progress=False)
    assert len(out.frame) == 0 and len(out.failures) == 5 and len(cache) == 0
    assert "InternalServerError" in out.failures[0]["error"]


def test_a_rerun_buys_nothing_twice(tmp_path):
    conn = conn_for(tmp_path / "s")
    cache = predict.PredictionCache(tmp_path / "cache.jsonl")
    first = predict.classify(conn, BASE, frame(40), cache=cache, seed=3, progress=False)
    cache.close()
    again = predict.classify(conn, BASE, frame(40), cache=predict.PredictionCache(tmp_path / "cache.jsonl"), seed=3,
                             progress=False)
    assert first.sent == 40 and again.sent == 0 and again.frame["cached"].all()
    assert conn.server.stats()["POST /v1/chat/completions"] == 40
    assert again.labels() == first.labels() and again.prompt_tokens == first.prompt_tokens
    other_seed = predict.classify(conn, BASE, frame(40), cache=predict.PredictionCache(tmp_path / "cache.jsonl"),
                                  seed=4, progress=False)
    assert other_seed.sent == 40  # another sampling parameter is another prediction


SCRIPT = textwrap.dedent("""
    import sys, pandas as pd
    from emotune.stages import predict
    from emotune import providers as backend
    conn = backend.connect("local", state_dir=sys.argv[1], announce=False, latency_ms=50)
    cache = predict.PredictionCache(sys.argv[2])
    texts = pd.DataFrame({"id": [f"c{i}" for i in range(400)], "text": [f"I am grateful #{i}" for i in range(400)]})
    predict.classify(conn, "gpt-4.1-mini-2025-04-14", texts, cache=cache, concurrency=8, progress=False)
""")


def test_after_a_kill_mid_run_only_the_missing_predictions_are_requested(tmp_path):
    cache_path = tmp_path / "cache.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "s1"), str(cache_path)],
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache_path.exists() and len(cache_path.read_text().splitlines()) >= 60:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = len({json.loads(x)["key"] for x in cache_path.read_text().splitlines() if x.endswith("}")})
    assert 60 <= done_before < 400
    conn = conn_for(tmp_path / "s2")
    texts = pd.DataFrame({"id": [f"c{i}" for i in range(400)], "text": [f"I am grateful #{i}" for i in range(400)]})
    out = predict.classify(conn, BASE, texts, cache=predict.PredictionCache(cache_path), concurrency=8, progress=False)
    assert len(out.frame) == 400
    assert conn.server.stats()["POST /v1/chat/completions"] == 400 - done_before == out.sent


def test_batch_and_online_give_the_same_predictions_and_the_batch_resumes(tmp_path):
    conn = conn_for(tmp_path / "s")
    run = Run(tmp_path / "run")
    texts = frame(30)
    online = predict.classify(conn, BASE, texts, cache=predict.PredictionCache(tmp_path / "online.jsonl"), progress=False)
    batch_cache = predict.PredictionCache(tmp_path / "batch.jsonl")
    via_batch = predict.classify_batch(conn, run, BASE, texts, key="base", cache=batch_cache, sleep=lambda s: None)
    assert via_batch.labels() == online.labels() and list(via_batch.frame.columns) == list(online.frame.columns)
    assert via_batch.sent == 30 and run.get("batches", "base", "status") == "completed"
    again = predict.classify_batch(conn, run, BASE, texts, key="base", cache=batch_cache, sleep=lambda s: None)
    assert again.sent == 0 and conn.server.stats()["POST /v1/batches"] == 1
    # the batch filled the cache: the online path now buys nothing
    after = predict.classify(conn, BASE, texts, cache=batch_cache, progress=False)
    assert after.sent == 0


def test_cache_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"key": "a", "content": "joy", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
                    + '\n{"key": "b", "cont')
    cache = predict.PredictionCache(path)
    assert len(cache) == 1 and cache.get("a")["content"] == "joy" and cache.get("b") is None
