"""Providers as users meet them, each through all five notebooks against a real ``emotune serve``
on another port, with a counting gateway in front that sees every request:

- ``backend=openai`` with ``OPENAI_BASE_URL`` at a gateway: OpenAI through the gateway (priced,
  jobs, batches), one upload of each file, one job, and no new request bought on a re-run;
- ``backend=compatible`` (what ``auto`` picks for that URL): the server is asked what it runs and
  its fine-tuning job trains there;
- ``backend=azure``: the official ``AzureOpenAI`` client on Azure's URL shapes.

The classical stand-in answers (OpenAI model names and ``stand-in`` are answered by it), so each
series takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from conftest import serve_process
from counting_proxy import CountingProxy

from emotune.core.pricing import load_catalog

pytestmark = pytest.mark.slow  # three whole series and a re-run

SIZES = ["-p", "n_train=300", "-p", "n_validation=60", "-p", "n_eval=100", "-p", "seed=7"]
KEY = "sk-gateway-sentinel-7c1f"  # must reach the gateway and nothing else
UPLOADS = "POST /v1/files"
JOBS = "POST /v1/fine_tuning/jobs"


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """``emotune serve`` in its own process on its own port: the server "elsewhere"."""
    with serve_process(tmp_path_factory.mktemp("elsewhere")) as root:
        yield root


def emotune_run(run_dir: Path, env: dict, *params: str) -> str:
    """``emotune run`` with only the given environment for providers; returns its console."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "EMOTUNE_BACKEND"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "emotune.cli", "run", "--run-dir", str(run_dir), *SIZES, *params],
        capture_output=True,
        text=True,
        env=clean | {"TQDM_DISABLE": "1"} | env,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_openai_through_a_gateway_uploads_once_launches_once_and_rebuys_nothing(serve, tmp_path):
    run_dir = tmp_path / "gateway"
    if date.today() > load_catalog().no_new_jobs_after:
        pytest.skip("OpenAI creates no fine-tuning jobs after its wind-down date")
    with CountingProxy(serve) as gateway:
        env = {"OPENAI_BASE_URL": f"{gateway.url}/v1", "OPENAI_API_KEY": KEY}
        console = emotune_run(run_dir, env, "-p", "backend=openai")
        first = gateway.posts()
        emotune_run(run_dir, env, "-p", "backend=openai")
        second, everything = gateway.posts(), gateway.snapshot()
    record = manifest(run_dir)["backend"]
    assert record["kind"] == "openai" and record["gateway"] == f"{gateway.url}/v1/"
    assert "bills in dollars" in console and "budget_usd" in console
    assert first[UPLOADS] == 3 and first[JOBS] == 1  # training, validation, the batch's input
    assert second == first, f"a re-run sent new requests: {second - first}"
    estimate = manifest(run_dir)[
        "estimate"
    ]  # priced from the catalogue, checked against the budget
    assert estimate["pricing"] == "usd" and estimate["pricing_note"] == "billed by OpenAI"
    for path in run_dir.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path
    print("gateway requests, first run + re-run:", dict(everything))


def test_compatible_finds_jobs_on_emotune_serve_and_trains_there(serve, tmp_path):
    run_dir = tmp_path / "compatible"
    with CountingProxy(serve) as gateway:
        emotune_run(run_dir, {"OPENAI_BASE_URL": f"{gateway.url}/v1"}, "-p", "base_model=stand-in")
        seen = gateway.snapshot()
    m = manifest(run_dir)
    assert m["backend"]["kind"] == "compatible"
    assert m["backend"]["discovered"]["fine_tuning"] == 200
    assert seen[JOBS] == 1 and seen["GET /v1/fine_tuning/jobs"] >= 1
    assert m["job"]["status"] == "succeeded" and m["job"]["fine_tuned_model"].startswith("ft:")
    print("compatible requests:", dict(seen))


def test_azure_runs_the_series_on_azures_routes(serve, tmp_path):
    run_dir = tmp_path / "azure"
    with CountingProxy(serve) as gateway:
        env = {
            "AZURE_OPENAI_ENDPOINT": gateway.url,
            "AZURE_OPENAI_API_KEY": KEY,
            "OPENAI_API_VERSION": "2024-10-21",
        }
        emotune_run(run_dir, env, "-p", "backend=azure")
        seen = gateway.snapshot()
    m = manifest(run_dir)
    assert m["backend"]["kind"] == "azure" and m["backend"]["api_version"] == "2024-10-21"
    assert seen["POST /openai/files"] >= 2 and seen["POST /openai/fine_tuning/jobs"] == 1
    chats = sum(n for k, n in seen.items() if k.endswith("/chat/completions"))
    assert chats >= 2 * 100
    assert all(k.startswith(("GET /openai/", "POST /openai/")) for k in seen), seen
    assert all("/deployments/" in k for k in seen if k.endswith("/chat/completions")), (
        "chat goes to a deployment"
    )
    for path in run_dir.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path
    print("azure requests:", dict(seen))
