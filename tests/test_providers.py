"""Providers: which one connect() builds, what each declares it can do, and how each prices a model."""

import json

import openai
import pytest
from conftest import serve_process

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
    with pytest.raises(ConfigError, match="backend must be .* entry point"):
        providers.connect("nonesuch")


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


PLUGIN = """
from emotune.providers.compatible import CompatibleProvider


class TeamProvider(CompatibleProvider):
    \"\"\"A team's own GPU box: an OpenAI-compatible server, found through an entry point.\"\"\"

    kind = "team"

    def describe(self, model=None):
        return f"team server at {self.base_url} (runs {self.runs()})"
"""


def install_plugin(root) -> None:
    """A distribution the way pip leaves one: a module and its dist-info, with an entry point in
    emotune's group; putting ``root`` on the path installs it."""
    (root / "emotune_team.py").write_text(PLUGIN)
    info = root / "emotune_team-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: emotune-team\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[emotune.providers]\nteam = emotune_team:TeamProvider\n"
    )


def test_a_package_adds_a_provider_through_an_entry_point(tmp_path, monkeypatch):
    install_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {"openai", "azure", "compatible", "local", "team"} <= set(providers.provider_names())
    from emotune.local import LocalServer

    with LocalServer(tmp_path / "state") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        team = providers.connect("team")
        assert team.record()["kind"] == "team" and team.fine_tuning and team.batches
        assert "runs fine-tuning jobs and batches" in team.describe()


def test_the_built_in_providers_are_entry_points_of_emotune_itself():
    from importlib.metadata import entry_points

    found = {ep.name: ep.dist.name for ep in entry_points(group=providers.ENTRY_POINT_GROUP)}
    assert {
        name: found[name] for name in ("openai", "azure", "compatible", "local")
    } == dict.fromkeys(("openai", "azure", "compatible", "local"), "emotune")


def test_compatible_asks_what_the_server_runs_once_per_run(tmp_path, monkeypatch):
    """emotune serve elsewhere runs jobs and batches; a re-run reads the answer back."""
    from emotune.local import LocalServer

    with LocalServer(tmp_path / "state") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        run = Run(tmp_path / "run")
        conn = providers.connect("auto", run=run)
        assert isinstance(conn, CompatibleProvider) and (conn.fine_tuning, conn.batches) == (
            True,
            True,
        )
        recorded = run.read(BackendRecord).discovered
        assert recorded["fine_tuning"] == 200 and recorded["batches"] == 200
        assert "gpt-4.1-mini-2025-04-14" in recorded["model_names"]
        before = server.stats()
        again = providers.connect("compatible", run=run)
        assert again.fine_tuning and server.stats() == before  # nothing asked twice


def test_a_chat_only_server_fine_tunes_nowhere_and_says_so_in_one_line(tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class ChatOnly(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = self.path.startswith("/v1/models")
            body = b'{"object": "list", "data": [{"id": "my-vllm-model"}]}' if found else b"{}"
            self.send_response(200 if found else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        conn = providers.connect("auto", run=Run(tmp_path / "run"))
    finally:
        server.shutdown()
        server.server_close()
    assert (conn.fine_tuning, conn.batches) == (False, False)
    assert conn.discovered["model_names"] == ["my-vllm-model"]
    assert "chat only" in conn.describe()
    with pytest.raises(
        ConfigError, match=r"runs no fine-tuning jobs \(asked: GET .* answered 404\)"
    ):
        conn.check_can_fine_tune("my-vllm-model")


def test_discovery_reads_a_bounded_answer_from_a_hostile_server(tmp_path, monkeypatch):
    """An endless list of models and a server that never finishes its answer cost a bounded read
    and a bounded wait: the capabilities are "not here", and the run goes on."""
    import threading
    import time as _time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from emotune.providers import compatible

    class Hostile(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            try:
                while True:  # models: endless bytes; the others: one byte a second, forever
                    self.wfile.write(b"x" * 65536 if "models" in self.path else b" ")
                    self.wfile.flush()
                    if "models" not in self.path:
                        _time.sleep(1)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(compatible, "PROBE_TIMEOUT_S", 2.0)
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        conn = providers.connect("auto")  # each probe ends by its own byte cap or deadline
    finally:
        server.shutdown()
        server.server_close()
    assert (conn.fine_tuning, conn.batches) == (False, False)
    assert "over 1048576 bytes" in conn.discovered["models"]
    assert "still coming" in conn.discovered["fine_tuning"]


def test_azure_reaches_the_local_server_through_azures_url_shapes(tmp_path, monkeypatch):
    from counting_proxy import CountingProxy

    from emotune.local import LocalServer
    from emotune.providers.azure import AzureProvider

    with (
        LocalServer(tmp_path / "state") as server,
        CountingProxy(server.base_url.removesuffix("/v1")) as proxy,
    ):
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", proxy.url)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-test-key")
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENTS", "stand-in=stand-in")
        conn = providers.connect("azure")
        assert isinstance(conn, AzureProvider) and conn.api_version == "2024-10-21"
        answer = conn.client.chat.completions.create(
            model="stand-in", messages=[{"role": "user", "content": "I am so happy today"}]
        )
        assert answer.choices[0].message.content
        conn.client.files.list()
        conn.client.fine_tuning.jobs.list(limit=1)
        seen = proxy.snapshot()
    assert seen["POST /openai/deployments/stand-in/chat/completions"] == 1
    assert seen["GET /openai/files"] == 1 and seen["GET /openai/fine_tuning/jobs"] == 1
    assert "azure-test-key" not in json.dumps(conn.record())
    with pytest.raises(ConfigError, match="AZURE_OPENAI_DEPLOYMENTS"):
        monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENTS", "no-equals-sign")
        providers.connect("azure")


def test_azure_without_a_deployment_stops_with_what_to_deploy():
    from emotune.providers.azure import AzureProvider

    conn = AzureProvider(None, "https://x.openai.azure.com/openai", deployments={"a": "b"})
    assert conn.serving_name("a") == "b" and conn.serving_name("c") == "c"
    with pytest.raises(ConfigError, match="deploy it .* AZURE_OPENAI_DEPLOYMENTS='m.ft-1="):
        conn.explain_failures("m.ft-1", {"r1": "NotFoundError: {'code': 'DeploymentNotFound'}"})
    conn.explain_failures("m.ft-1", {"r1": "BadRequestError: too long"})  # row by row, as before
    assert "OpenAI's wind-down dates do not apply" in conn.lifecycle_note("gpt-4.1-mini-2025-04-14")


def test_spending_is_announced_before_the_first_request(monkeypatch):
    assert providers.spending_notice("local") == "backend local: nothing is billed in dollars"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-789")
    assert "nothing is billed" in providers.spending_notice("auto")  # a key alone never pays
    notice = providers.spending_notice("openai", 2.5)
    assert "bills in dollars" in notice and "budget_usd=2.5" in notice


def test_emotune_serve_runs_standalone(tmp_path):
    with serve_process(tmp_path / "s") as root:
        c = openai.OpenAI(base_url=f"{root}/v1", api_key="whatever")
        assert c.models.retrieve("gpt-4.1").owned_by == "system"


def test_where_the_stand_in_answers_an_openai_name_the_shown_name_says_so():
    local = LocalProvider(None, "")
    assert local.display_name("gpt-4.1-mini-2025-04-14") == "stand-in for gpt-4.1-mini-2025-04-14"
    tuned = "ft:gpt-4.1-mini-2025-04-14:emotune-local:x:1"
    assert local.display_name(tuned).startswith("stand-in for ft:")
    for named in ("stand-in", "ft:stand-in:emotune-local:x:1", "smollm2-135m-instruct"):
        assert local.display_name(named) == named  # the name already says what answers
    assert "classical stand-in, not an LLM" in local.model_kind(tuned)
    assert OpenAIProvider(None, "").display_name("gpt-4.1-mini") == "gpt-4.1-mini"
