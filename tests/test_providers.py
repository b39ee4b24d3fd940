"""Providers: which one connect() builds, what each declares it can do, and how each prices a model."""

import json
import subprocess
import sys
import time

import httpx
import openai
import pytest

from emotune import ConfigError, Run, providers
from emotune.core.manifest import BackendRecord
from emotune.providers.compatible import CompatibleProvider
from emotune.providers.local import LOCAL_API_KEY, LocalProvider
from emotune.providers.openai_api import OpenAIProvider


@pytest.fixture(autouse=True)
def stop_servers():
    yield
    providers.stop_local_servers()


def test_auto_without_a_key_starts_the_local_backend_and_records_it(tmp_path, capsys):
    run = Run(tmp_path / "run")
    conn = providers.connect("auto", state_dir=tmp_path / "s", run=run)
    assert (
        isinstance(conn, LocalProvider)
        and conn.backend == "local"
        and conn.base_url.startswith("http://127.0.0.1:")
    )
    assert capsys.readouterr().out == ""  # connect prints nothing; describe() says what answers
    assert "local backend" in conn.describe()
    assert conn.client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    assert run.read(BackendRecord).kind == "local" and run.read(BackendRecord).fine_tuning is True
    # one server per state directory per process
    assert providers.connect("local", state_dir=tmp_path / "s").server is conn.server


def test_an_exported_key_alone_never_picks_the_paid_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-456")
    conn = providers.connect("auto", state_dir=tmp_path / "s")
    assert isinstance(conn, LocalProvider) and conn.client.api_key == LOCAL_API_KEY


def test_a_real_key_never_reaches_the_local_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-123")
    conn = providers.connect("local", state_dir=tmp_path / "s")
    assert conn.client.api_key == LOCAL_API_KEY
    assert "sk-test" not in conn.describe() and "sk-test" not in json.dumps(conn.record())


def test_openai_needs_a_key_and_another_base_url_is_a_compatible_server(monkeypatch):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        providers.connect("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    assert isinstance(providers.connect("openai"), OpenAIProvider)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    conn = providers.connect("auto")
    assert isinstance(conn, CompatibleProvider) and conn.base_url.startswith(
        "http://127.0.0.1:9/v1"
    )
    gateway = providers.connect("openai")  # named: OpenAI through that gateway, priced
    assert isinstance(gateway, OpenAIProvider) and gateway.base_url.startswith(
        "http://127.0.0.1:9/v1"
    )
    with pytest.raises(ConfigError, match="backend must be"):
        providers.connect("azure")


def test_capabilities_and_pricing_by_provider():
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    real = OpenAIProvider(client, "https://api.openai.com/v1")
    other = CompatibleProvider(client, "http://127.0.0.1:9/v1")
    local = LocalProvider(client, "http://127.0.0.1:9/v1")
    assert (real.fine_tuning, real.batches, real.lifecycle_applies) == (True, True, True)
    assert (other.fine_tuning, other.batches, other.lifecycle_applies) == (False, False, False)
    assert (
        real.pricing("gpt-4o-mini").unit == "usd"
        and "billed by OpenAI" in real.pricing("gpt-4o-mini").note
    )
    assert other.pricing("gpt-4o-mini").unit == "not-priced"
    assert "would charge" in local.pricing("gpt-4o-mini").note
    assert local.pricing("Qwen/Qwen2.5-0.5B-Instruct").unit == "compute-seconds"
    assert "label-name matcher" in local.describe("gpt-4.1-mini") and "LoRA" in local.describe(
        "ft:Qwen/Qwen2.5-0.5B:x"
    )
    with pytest.raises(ConfigError, match="runs no fine-tuning jobs"):
        other.check_can_fine_tune("gpt-4o-mini")


def test_async_client_shares_settings(tmp_path):
    conn = providers.connect("local", state_dir=tmp_path / "s")
    aclient = conn.async_client()
    assert (
        isinstance(aclient, openai.AsyncOpenAI)
        and aclient.max_retries == providers.DEFAULT_MAX_RETRIES
    )


def test_a_provider_added_by_catalogue_entry(tmp_path, monkeypatch):
    (tmp_path / "my_provider.py").write_text(
        "from emotune.providers.compatible import CompatibleProvider\n"
        "class Mine(CompatibleProvider):\n    kind = 'mine'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = tmp_path / "providers.json"
    entries.write_text(json.dumps({"mine": "my_provider:Mine"}))
    monkeypatch.setenv("EMOTUNE_PROVIDERS", str(entries))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert "mine" in providers.provider_names()
    assert providers.connect("mine").record()["kind"] == "mine"


def test_emotune_serve_runs_standalone(tmp_path):
    from emotune.local.server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotune.cli",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "s"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="whatever")
        assert c.models.retrieve("gpt-4.1").owned_by == "system"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_where_the_stand_in_answers_an_openai_name_the_shown_name_says_so():
    local = LocalProvider(None, "")
    assert local.display_name("gpt-4.1-mini-2025-04-14") == "stand-in for gpt-4.1-mini-2025-04-14"
    tuned = "ft:gpt-4.1-mini-2025-04-14:emotune-local:x:1"
    assert local.display_name(tuned).startswith("stand-in for ft:")
    for named in ("stand-in", "ft:stand-in:emotune-local:x:1", "smollm2-135m-instruct"):
        assert local.display_name(named) == named  # the name already says what answers
    assert "classical stand-in, not an LLM" in local.model_kind(tuned)
    assert OpenAIProvider(None, "").display_name("gpt-4.1-mini") == "gpt-4.1-mini"
