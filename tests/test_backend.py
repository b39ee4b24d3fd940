import openai
import pytest

from emotune import ConfigError, backend


@pytest.fixture(autouse=True)
def stop_servers():
    yield
    backend.stop_local_servers()


def test_auto_without_a_key_starts_the_local_backend(tmp_path, capsys):
    conn = backend.connect("auto", state_dir=tmp_path / "s")
    assert conn.backend == "local" and conn.base_url.startswith("http://127.0.0.1:")
    assert "local backend" in capsys.readouterr().out
    assert conn.client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    # one server per state directory per process
    assert backend.connect("local", state_dir=tmp_path / "s", announce=False).server is conn.server


def test_a_real_key_never_reaches_the_local_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-123")
    conn = backend.connect("local", state_dir=tmp_path / "s", announce=False)
    assert conn.client.api_key == backend.LOCAL_API_KEY
    assert "sk-test" not in conn.describe()


def test_openai_backend_needs_a_key_and_honours_base_url(monkeypatch):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        backend.connect("openai", announce=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    conn = backend.connect("auto", announce=False)
    assert conn.backend == "openai" and conn.base_url.startswith("http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="backend must be"):
        backend.connect("azure")


def test_async_client_shares_settings(tmp_path):
    conn = backend.connect("local", state_dir=tmp_path / "s", announce=False)
    aclient = conn.async_client()
    assert isinstance(aclient, openai.AsyncOpenAI) and aclient.max_retries == backend.DEFAULT_MAX_RETRIES


def test_emotune_serve_runs_standalone(tmp_path):
    import subprocess
    import sys
    import time

    import httpx

    from emotune.local.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "emotune.cli", "serve", "--port", str(port),
                             "--state-dir", str(tmp_path / "s")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
