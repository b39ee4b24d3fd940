"""Serving the local backend: in a thread on a free port (for notebooks and tests) or standalone."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from ..core.errors import BackendError, ConfigError
from .app import create_app
from .store import NotRegularFile, open_regular

HOST = "127.0.0.1"  # loopback only: the local backend is never reachable from another machine


LOCK_FILE = "server.lock"


class StateLock:
    """One server per state directory: an exclusive lock file holding the owner's pid and URL.

    The operating system releases the lock when the owning process ends, however it ends, so a lock
    held means a live server.
    """

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, url: str) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        except NotRegularFile:
            raise BackendError(
                f"{self.path.name} in the state directory {self.path.parent} is not a regular "
                "file (a link "
                "or a FIFO was put there); remove it"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = holder(self.path.parent) or {}
            raise BackendError(
                f"the state directory {self.path.parent} is in use by another emotune server "
                f"(pid {owner.get('pid', '?')}, {owner.get('url', '?')}); stop it or use another "
                "state directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "url": url}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def holder(state_dir: str | Path) -> dict | None:
    """The pid and URL of the live server holding ``state_dir``'s lock, or None when no server
    holds it."""
    path = Path(state_dir) / LOCK_FILE
    if not path.exists():
        return None
    try:
        fd = open_regular(path, os.O_RDONLY)
    except NotRegularFile:
        return None  # not a lock any server wrote; acquiring it says what is wrong
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it
    except BlockingIOError:
        try:
            return json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
        except json.JSONDecodeError:
            return {}
    finally:
        os.close(fd)


def running_server(state_dir: str | Path) -> str | None:
    """The base URL of a live emotune server on ``state_dir`` (in another process), if there is
    one."""
    owner = holder(state_dir)
    return f"{owner['url']}/v1" if owner and owner.get("url") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class LocalServer:
    """The local backend on 127.0.0.1 in a background thread; ``start()`` waits until it answers."""

    def __init__(
        self, state_dir: str | Path, port: int | None = None, *, base_models=(), **app_options
    ):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        # the lock comes first: a second server on this directory must not even recover its jobs
        self._lock = StateLock(self.state_dir).acquire(f"http://{HOST}:{self.port}")
        try:
            self.app = _app(self.state_dir, base_models, app_options)
        except BaseException:
            self._lock.release()
            raise
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=HOST,
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="on",
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def engine(self):
        return self.app.state.engine

    def start(self, timeout: float = 20.0) -> LocalServer:
        self._thread = threading.Thread(
            target=self._server.run, daemon=True, name=f"emotune-local-{self.port}"
        )
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
        raise BackendError(
            f"the local backend did not start on {HOST}:{self.port} within {timeout:.0f} s"
        )

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.engine.close()
        self._lock.release()

    def stats(self) -> dict:
        return dict(self.app.state.stats)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _check_port_free(port: int) -> None:
    """One line instead of uvicorn's error block when another program listens on the port
    already."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on {HOST} is in use ({exc.strerror}); pick another with --port"
            ) from None


def _app(state_dir: Path, base_models, app_options: dict):
    """The app, serving the open-weights bases named here (a folder, GGUF or hub id) besides the
    catalogue, the models emotune knows by name and its own fine-tunes: a request never names a
    path the server was not started with."""
    app = create_app(state_dir, **app_options)
    try:
        for name in base_models:
            app.state.engine.models.register(name)
    except BaseException:
        app.state.engine.close()
        raise
    return app


def serve(port: int, state_dir: str | Path, *, base_models=(), **app_options) -> None:
    """Run the local backend in the foreground until interrupted (``emotune serve``)."""
    lock = StateLock(Path(state_dir)).acquire(
        f"http://{HOST}:{port}"
    )  # a second server exits here, naming the first
    try:
        _check_port_free(port)
    except ConfigError:
        lock.release()
        raise
    try:
        app = _app(Path(state_dir), base_models, app_options)
    except BaseException:
        lock.release()
        raise
    print(
        f"emotune local backend on http://{HOST}:{port}/v1 (state: {state_dir}); any API key is "
        "accepted"
    )
    try:
        uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)
    finally:
        lock.release()
