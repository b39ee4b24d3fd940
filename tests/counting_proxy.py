"""A gateway for tests: forwards every request to an upstream server and counts them.

It stands where a company's LiteLLM proxy, Helicone or internal gateway would: between emotune and
a server that speaks the whole OpenAI API (here ``emotune serve``), so a test can count what a run
really sent (``METHOD path``, query left out) instead of trusting the server's own log.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


class CountingProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=120)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.counts[f"{self.command} {urlsplit(self.path).path}"] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = proxy._client.request(
                    self.command, proxy.upstream + self.path, content=body, headers=headers
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}:
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)

    def posts(self) -> Counter:
        return Counter({k: v for k, v in self.snapshot().items() if k.startswith("POST ")})
