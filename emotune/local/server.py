"""Serving the local backend: in a thread on a free port (for notebooks and tests) or standalone."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from ..core.errors import BackendError
from .app import create_app

HOST = "127.0.0.1"  # loopback only: the local backend is never reachable from another machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class LocalServer:
    """The local backend on 127.0.0.1 in a background thread; ``start()`` waits until it answers."""

    def __init__(self, state_dir: str | Path, port: int | None = None, **app_options):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.app = create_app(self.state_dir, **app_options)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=HOST, port=self.port, log_level="warning",
                                                     access_log=False, lifespan="on"))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def engine(self):
        return self.app.state.engine

    def start(self, timeout: float = 20.0) -> LocalServer:
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=f"emotune-local-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                try:
                    if httpx.get(f"http://{HOST}:{self.port}/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            if not self._thread.is_alive():
                break
            time.sleep(0.02)
        self.stop()
        raise BackendError(f"the local backend did not start on {HOST}:{self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.engine.close()

    def stats(self) -> dict:
        return dict(self.app.state.stats)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(port: int, state_dir: str | Path, **app_options) -> None:
    """Run the local backend in the foreground until interrupted (``emotune serve``)."""
    app = create_app(Path(state_dir), **app_options)
    print(f"emotune local backend on http://{HOST}:{port}/v1 (state: {state_dir}); any API key is accepted")
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)
