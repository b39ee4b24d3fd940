"""Shared fixtures. Every test runs with the user's OpenAI settings removed and its own run directory."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

# MLflow tracking costs seconds per `emotune run`: only the tests about it (test_sweep, test_tracking)
# turn it on; set here, before any fixture, so that runs made by module-scoped fixtures are untracked too
os.environ.setdefault("EMOTUNE_TRACKING", "off")
MIRROR = os.environ.get("EMOTUNE_DATA_DIR", "")
SEED_TUTORIAL = os.environ.get("EMOTUNE_SEED_TUTORIAL_DIR", "")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees a real key or writes into the user's runs/."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "EMOTUNE_BACKEND",
        "EMOTUNE_LOCAL_LATENCY_MS",
        "EMOTUNE_LOCAL_FAIL_429",
        "EMOTUNE_LOCAL_FAIL_500",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMOTUNE_RUN_DIR", str(tmp_path / "run"))
    yield


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline GoEmotions mirror (EMOTUNE_DATA_DIR, set by .ci/run)."""
    if not MIRROR or not Path(MIRROR).is_dir():
        pytest.skip("EMOTUNE_DATA_DIR is not set to the GoEmotions mirror")
    return Path(MIRROR)


@pytest.fixture(scope="session")
def seed_tutorial() -> Path:
    """The hand-made tutorial JSONL pair (EMOTUNE_SEED_TUTORIAL_DIR, set by .ci/run)."""
    if not SEED_TUTORIAL or not Path(SEED_TUTORIAL).is_dir():
        pytest.skip("EMOTUNE_SEED_TUTORIAL_DIR is not set")
    return Path(SEED_TUTORIAL)


@pytest.fixture(scope="session")
def loaded_mirror(mirror):
    """The mirror loaded once for the session."""
    from emotune.stages import data

    return data.load_local(mirror)


def write_tsv(folder: Path, rows_by_split: dict[str, list[str]]) -> Path:
    """Write a tiny release-format folder: one TSV per split from raw lines."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
    for split, lines in rows_by_split.items():
        (folder / names[split]).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return folder


@pytest.fixture
def server(tmp_path):
    """A local backend on a free port over a fresh state directory, stopped after the test."""
    from emotune.local import LocalServer

    with LocalServer(tmp_path / "state") as srv:
        yield srv


@pytest.fixture
def client(server):
    """The official client pointed at ``server``, with the client's own retries off."""
    import openai

    return openai.OpenAI(base_url=server.base_url, api_key="anything", max_retries=0)


def wait_job(client, job_id: str, timeout: float = 60):
    """Poll a fine-tuning job until it ends (tests only; the product's loop is finetune.watch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")


@contextmanager
def serve_process(state_dir: Path, *options: str, timeout: float = 60):
    """``emotune serve`` in its own process on a free port, answering ``/health``: yields its root
    URL (``http://127.0.0.1:PORT``) and stops it afterwards."""
    import subprocess
    import sys

    import httpx

    from emotune.local.server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "emotune.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--state-dir", str(state_dir), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"emotune serve did not answer on {root}") from None
                time.sleep(0.1)
        yield root
    finally:
        proc.terminate()
        proc.wait(timeout=30)
