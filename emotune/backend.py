"""One place that builds the OpenAI client: pointed at OpenAI or at emotune's local backend.

``connect(backend)`` chooses, in this order: the ``backend`` argument, ``EMOTUNE_BACKEND``, then ``auto``
(OpenAI when ``OPENAI_API_KEY`` is set, otherwise the local backend). ``OPENAI_BASE_URL`` points the
OpenAI path at any OpenAI-compatible server. The key is read from the environment by this module and
handed to the client only; it is never printed, stored or sent to the local backend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .errors import ConfigError

LOCAL_API_KEY = "emotune-local"  # the local backend accepts any key; this keeps a real one from reaching it
DEFAULT_MAX_RETRIES = 5  # 429s and 5xx are retried with back-off that honours Retry-After (openai client)
DEFAULT_TIMEOUT_S = 60.0

_servers: dict[Path, object] = {}
_servers_lock = threading.Lock()


@dataclass
class Connection:
    """A configured client and what it talks to."""

    client: object  # openai.OpenAI
    backend: str  # "openai" or "local"
    base_url: str
    server: object | None = None  # LocalServer for the local backend
    options: dict = field(default_factory=dict)

    def async_client(self):
        """An ``openai.AsyncOpenAI`` with the same endpoint, key, retries and timeout.

        It runs on aiohttp (``openai[aiohttp]``): at 64 requests in flight the default httpx transport
        spends about twice the CPU per request (benchmarks/bench_local.py).
        """
        import openai

        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.client.api_key,
                                  http_client=openai.DefaultAioHttpClient(), **self.options)

    def describe(self) -> str:
        if self.backend == "local":
            return ("local backend: emotune's OpenAI-compatible stand-in on 127.0.0.1 "
                    "(free, offline; a classical learner, not an LLM)")
        return f"OpenAI backend: {self.base_url}"


def _local_server(state_dir: Path, **options):
    from .local import LocalServer

    key = state_dir.resolve()
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            server = LocalServer(key, **options).start()
            _servers[key] = server
        return server


def stop_local_servers() -> None:
    """Stop every local backend this process started."""
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


def connect(backend: str | None = "auto", *, state_dir: str | Path | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
            timeout: float = DEFAULT_TIMEOUT_S, announce: bool = True, run=None, **local_options) -> Connection:
    """A client for the chosen backend; the local one is started (once per state directory) if needed.

    ``state_dir`` is where the local backend keeps files, jobs and models (default: the run
    directory's ``local-backend/``). ``local_options`` go to the local server (fault injection:
    ``latency_ms``, ``fail_429``, ``fail_500``; defaults from ``EMOTUNE_LOCAL_*``). With ``run``, the
    backend (kind and URL, never the key) is recorded in the run's manifest.
    """
    import openai

    choice = config.backend_choice(backend)
    key = config.openai_key()
    if choice == "auto":
        choice = "openai" if key else "local"
    options = {"max_retries": max_retries, "timeout": timeout}
    if choice == "openai":
        if not key:
            raise ConfigError("backend 'openai' needs OPENAI_API_KEY in the environment (never as a parameter); "
                              "or use backend='local' to run offline for free")
        client = openai.OpenAI(api_key=key, base_url=config.openai_base_url(), **options)
        conn = Connection(client, "openai", str(client.base_url), options=options)
    else:
        state = Path(state_dir) if state_dir else (run.file("local-backend") if run is not None else config.run_dir() / "local-backend")
        server = _local_server(state, **(config.fault_settings() | local_options))
        client = openai.OpenAI(api_key=LOCAL_API_KEY, base_url=server.base_url, **options)
        conn = Connection(client, "local", server.base_url, server=server, options=options)
    if run is not None:
        run.update(backend={"kind": conn.backend, "base_url": conn.base_url, "max_retries": max_retries,
                            "timeout_s": timeout})
    if announce:
        print(conn.describe())
    return conn
