"""The predictor against a hostile server on 127.0.0.1: a body of a gigabyte, a body without end,
an answer a byte at a time, waits of a billion seconds, a reset in 999,999 hours, a budget of one
token a minute. Every run returns within seconds, under a memory limit, with every unanswered item
listed as a failure and nothing cached that the server did not answer properly.

The cases run in one child process (``python tests/test_hostile_server.py FOLDER``) whose address
space is capped, so a predictor that reads a whole endless body dies there instead of taking the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMORY_LIMIT = 1_500_000_000  # bytes of address space for the child (it needs about 600 MB)
N_ITEMS = 12


def completion(content: str = "joy") -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }
    ).encode()


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


class Hostile(socketserver.BaseRequestHandler):
    """Reads one request, then answers it the way ``server.mode`` says."""

    def handle(self) -> None:
        sock, mode = self.request, self.server.mode
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        header, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            body += sock.recv(65536)
        self.server.hits += 1
        with contextlib.suppress(OSError):  # the client hung up, as a hostile answer should make it
            getattr(self, mode)(sock)

    def big(self, sock) -> None:  # a gigabyte, announced
        sock.sendall(
            head("200 OK", {"Content-Length": str(2**30), "Content-Type": "application/json"})
        )
        block = b" " * 2**20
        for _ in range(1024):
            sock.sendall(block)

    def endless(self, sock) -> None:  # no length, never ends
        sock.sendall(head("200 OK", {"Content-Type": "application/json", "Connection": "close"}))
        block = b"[" * 2**20
        while True:
            sock.sendall(block)

    def endless_error(self, sock) -> None:  # a 500 whose body never ends
        sock.sendall(head("500 Internal Server Error", {"Connection": "close"}))
        while True:
            sock.sendall(b"x" * 2**20)

    def slowloris(self, sock) -> None:  # a byte every 0.2 s, well inside any read timeout
        sock.sendall(
            head("200 OK", {"Content-Length": "50000", "Content-Type": "application/json"})
        )
        while True:
            sock.sendall(b" ")
            time.sleep(0.2)

    def _answer(self, sock, headers: dict[str, str], status: str = "200 OK", body=None) -> None:
        body = completion() if body is None else body
        base = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        sock.sendall(head(status, base | headers) + body)

    def retry_huge(self, sock) -> None:
        self._answer(sock, {"retry-after": "1e9"}, "429 Too Many Requests", b"{}")

    def retry_inf(self, sock) -> None:
        self._answer(sock, {"retry-after-ms": "inf"}, "429 Too Many Requests", b"{}")

    def reset_huge(self, sock) -> None:
        self._answer(
            sock,
            {
                "x-ratelimit-limit-requests": "100",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "999999h",
            },
        )

    def tpm_one(self, sock) -> None:
        self._answer(
            sock,
            {
                "x-ratelimit-limit-tokens": "1",
                "x-ratelimit-remaining-tokens": "1",
                "x-ratelimit-reset-tokens": "1m0s",
            },
        )

    def limit_inf(self, sock) -> None:  # numbers that do not fit an int
        self._answer(
            sock, {"x-ratelimit-limit-tokens": "inf", "x-ratelimit-remaining-tokens": "nan"}
        )

    def good(self, sock) -> None:
        self._answer(sock, {})


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str):
        super().__init__(("127.0.0.1", 0), Hostile)
        self.mode, self.hits = mode, 0


MODES = {  # mode: the client's timeout in seconds
    "big": 2.0,
    "endless": 2.0,
    "endless_error": 2.0,
    "slowloris": 2.0,
    "retry_huge": 2.0,
    "retry_inf": 2.0,
    "reset_huge": 2.0,
    "tpm_one": 2.0,
    "limit_inf": 2.0,
    "good": 2.0,
}


def classify_against(mode: str, timeout: float, folder: Path) -> dict:
    """Classify N_ITEMS texts against a hostile server; what came back."""
    import openai
    import pandas as pd

    from emotune.providers.compatible import CompatibleProvider
    from emotune.stages import predict

    server = Server(mode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    options = {"max_retries": 1, "timeout": timeout}
    conn = CompatibleProvider(openai.OpenAI(base_url=url, api_key="k", **options), url, options)
    conn.discovered = {}
    cache_path = folder / f"{mode}.jsonl"
    cache = predict.PredictionCache(cache_path)
    texts = [f"so happy {i}" for i in range(N_ITEMS)]
    frame = pd.DataFrame({"id": [f"c{i}" for i in range(N_ITEMS)], "text": texts})
    t0 = time.monotonic()
    out = predict.classify(conn, "m", frame, cache=cache, progress=False)
    cache.close()
    return {
        "seconds": time.monotonic() - t0,
        "answered": len(out.frame),
        "failures": out.failures,
        "cached": len(cache),
        "cache_lines": len(cache_path.read_text().splitlines()),
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "hits": server.hits,
    }


def child(folder: Path) -> None:
    """Every mode in turn, in this (memory-capped) process; one JSON line of results."""
    print(json.dumps({mode: classify_against(mode, t, folder) for mode, t in MODES.items()}))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    folder = tmp_path_factory.mktemp("hostile")
    done = subprocess.run(
        [sys.executable, __file__, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=cap_memory,
        cwd=ROOT,
        env=os.environ | {"MALLOC_ARENA_MAX": "2"},  # one arena per thread would fill the cap
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def every_item_failed(result: dict, *needles: str) -> None:
    assert result["answered"] == 0 and result["cached"] == 0 and result["cache_lines"] == 0
    assert sorted(f["id"] for f in result["failures"]) == sorted(f"c{i}" for i in range(N_ITEMS))
    for needle in needles:
        assert all(needle in f["error"] for f in result["failures"]), result["failures"][:3]


@pytest.mark.parametrize("mode", ["big", "endless", "endless_error"])
def test_a_body_too_big_or_without_end_is_cut_off_not_read(results, mode):
    result = results[mode]
    every_item_failed(result)
    assert result["peak_rss"] < 800_000_000, result
    if mode != "endless_error":  # an oversized answer is the server's answer: not asked again
        every_item_failed(result, "bytes")
        assert result["hits"] == N_ITEMS


def test_an_answer_a_byte_at_a_time_meets_the_deadline(results):
    result = results["slowloris"]  # a 2 s deadline: given up after timeouts over two of them
    every_item_failed(result)
    errors = [f["error"] for f in result["failures"]]
    assert all("timeout" in e or "no whole answer" in e for e in errors), errors


def test_one_wave_of_timeouts_is_a_stall_not_a_dead_server():
    from emotune.stages.ratelimit import TIMEOUT_SPAN, Limiter

    limiter = Limiter(base_timeout=0.05)
    for _ in range(50):  # everything in flight times out at once
        limiter.on_timeout()
    assert not limiter.down
    limiter.on_success(0.01)
    time.sleep(TIMEOUT_SPAN * limiter.timeout())
    limiter.on_timeout()
    assert not limiter.down  # the run of timeouts starts again after an answer
    for _ in range(limiter.breaker_after):
        time.sleep(limiter.timeout())
        limiter.on_timeout()
    assert limiter.down and "no whole answer" in limiter.gave_up


@pytest.mark.parametrize("mode", ["retry_huge", "retry_inf", "reset_huge", "tpm_one"])
def test_a_wait_the_server_asks_for_is_capped_and_reported(results, mode):
    result = results[mode]
    unanswered = N_ITEMS - result["answered"]
    assert unanswered > 0 and len(result["failures"]) == unanswered
    assert result["cached"] == result["answered"] == result["cache_lines"]
    assert all("wait" in f["error"] for f in result["failures"]), result["failures"][:3]


def test_limits_that_are_not_numbers_change_nothing(results):
    result = results["limit_inf"]
    assert result["answered"] == N_ITEMS and result["failures"] == [], result


def test_a_well_behaved_server_answers_everything(results):
    result = results["good"]
    assert result["answered"] == result["cached"] == N_ITEMS and result["failures"] == []


def test_the_test_server_itself_listens_and_answers():
    server = Server("good")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(server.server_address, timeout=5) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    child(Path(sys.argv[1]))
