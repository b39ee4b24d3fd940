"""Every request to the local backend does bounded work, decided before the work starts (#25 items 1
and 2), shown against the real server: schema bombs, n x max tokens, huge prompts, oversized and
chunked bodies, and the rate limiter's charge."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest
from schema_shapes import nested, ref_dag

from emotune.local import LocalServer
from emotune.local.schemas import (
    MAX_OUTPUT_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_REQUEST_OUTPUT_TOKENS,
    STRUCTURED_COMPLETION_TOKENS,
)
from emotune.local.structured import MAX_ENUM_VALUES, MAX_NESTING, MAX_PROPERTIES

BASE = "gpt-4.1-mini-2025-04-14"
MESSAGES = [{"role": "user", "content": "so grateful and amused, thanks"}]
LIMIT = 1 << 20  # the body and upload limits of the small server below
SOCKET_SLACK = 16 << 20  # what the kernel's socket buffers may take in before the server answers


def _ref_cycle(width: int) -> dict:
    props = {f"p{i:04d}_{'x' * 20}": {"$ref": "#/$defs/a"} for i in range(width)}
    a = {"type": "object", "properties": props, "additionalProperties": False}
    return {"$defs": {"a": a | {"required": list(props)}}, "$ref": "#/$defs/a"}


def _as_format(schema: dict) -> dict:
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": schema}}
    }


def _as_tool(schema: dict) -> dict:
    return {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
        "tool_choice": "required",
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server with 1 MiB body and upload limits."""
    root = tmp_path_factory.mktemp("bounds")
    with LocalServer(root / "state", max_body_bytes=LIMIT, max_upload_bytes=LIMIT) as srv:
        yield srv


def _chat(srv, body: dict, timeout: float = 60) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = httpx.post(
        f"{srv.base_url}/chat/completions",
        json={"model": BASE, "messages": MESSAGES} | body,
        timeout=timeout,
    )
    return r, time.perf_counter() - started


def _refused(r: httpx.Response, status: int, param: str | None) -> dict:
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    return error


BOMBS = [
    pytest.param(_as_format(nested(MAX_NESTING + 5)), "response_format", "nests", id="deep"),
    pytest.param(_as_tool(nested(300)), "tools", "nests", id="deep-tool"),
    pytest.param(_as_format(ref_dag(8, 10)), "response_format", "expands", id="ref-dag"),
    pytest.param(_as_tool(ref_dag(6, 20)), "tools", "expands", id="ref-dag-tool"),
    pytest.param(
        _as_format({"type": "string", "enum": [f"v{i}" for i in range(MAX_ENUM_VALUES + 1)]}),
        "response_format",
        "enum",
        id="enum-values",
    ),
    pytest.param(
        _as_format({"type": "string", "enum": [f"{i:08d}" * 10 for i in range(300)]}),
        "response_format",
        "enum",
        id="enum-text",
    ),
    pytest.param(
        _as_format(
            {"type": "object", "properties": {f"k{i}": {} for i in range(MAX_PROPERTIES + 1)}}
        ),
        "response_format",
        "properties",
        id="properties",
    ),
    pytest.param(
        _as_format({"type": "object", "properties": {"x" * 130_000: {"type": "string"}}}),
        "response_format",
        "characters",
        id="names",
    ),
]


@pytest.mark.parametrize("body, param, names", BOMBS)
def test_schema_bombs_are_refused_before_any_work(server, body, param, names):
    r, _ = _chat(server, body | {"n": 8, "logprobs": True, "top_logprobs": 20})
    error = _refused(r, 400, param)
    assert names in error["message"] and "limit" in error["message"]


@pytest.mark.parametrize("strict", [False, True])
def test_a_wide_ref_cycle_is_answered_within_the_stated_bound(server, strict):
    """A cycle ends at its first repetition (null) and each answer stops at the default limit."""
    body = _as_format(_ref_cycle(300))
    body["response_format"]["json_schema"]["strict"] = strict
    r, _ = _chat(server, body | {"n": 8, "temperature": 1, "logprobs": True, "top_logprobs": 20})
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    assert answer["usage"]["completion_tokens"] <= 8 * STRUCTURED_COMPLETION_TOKENS
    assert all(
        len(c["logprobs"]["content"]) <= STRUCTURED_COMPLETION_TOKENS for c in answer["choices"]
    )
    assert len(r.content) < 8 << 20  # HEAD before the fix: 249 MB in 98 s, 5 GB of server memory
    r, _ = _chat(server, _as_format(_ref_cycle(3)))
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {
        f"p{i:04d}_{'x' * 20}": None for i in range(3)
    }


def test_a_recursive_schema_within_the_limits_still_answers(server):
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "child": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                },
            }
        },
        "$ref": "#/$defs/node",
    }
    r, _ = _chat(server, _as_format(tree))
    assert r.status_code == 200
    answer = json.loads(r.json()["choices"][0]["message"]["content"])
    assert answer["child"] is None and isinstance(answer["labels"], list)  # the cycle ends at null


def test_n_times_max_tokens_over_the_cap_is_refused(server):
    half = MAX_REQUEST_OUTPUT_TOKENS // 2
    error = _refused(
        _chat(server, {"n": 3, "max_completion_tokens": half})[0], 400, "max_completion_tokens"
    )
    assert f"{MAX_REQUEST_OUTPUT_TOKENS:,}" in error["message"]
    _refused(_chat(server, {"n": 3, "max_tokens": half})[0], 400, "max_completion_tokens")
    _refused(
        _chat(server, {"max_completion_tokens": MAX_OUTPUT_TOKENS + 1})[0],
        400,
        "max_completion_tokens",
    )
    # without a limit, a structured answer's default counts: n x 2048 over the cap
    n = MAX_REQUEST_OUTPUT_TOKENS // STRUCTURED_COMPLETION_TOKENS + 1
    structured = _as_format({"type": "object", "properties": {"labels": {"type": "array"}}})
    _refused(_chat(server, structured | {"n": n})[0], 400, "n")
    assert _chat(server, structured | {"n": n - 1})[0].status_code == 200
    assert _chat(server, {"n": 2, "max_completion_tokens": half})[0].status_code == 200


def test_a_huge_prompt_is_refused_by_its_length_before_it_is_tokenized(server):
    r, _ = _chat(server, {"messages": [{"role": "user", "content": "ab" * 2_000_000}]})
    error = _refused(r, 400, "messages")
    assert error["code"] == "context_length_exceeded" and "characters" in error["message"]
    # under the character limit but over the context window: counted, then refused
    r, _ = _chat(
        server, {"messages": [{"role": "user", "content": "x9" * (MAX_PROMPT_CHARS // 2 - 100)}]}
    )
    error = _refused(r, 400, "messages")
    assert error["code"] == "context_length_exceeded" and "tokens" in error["message"]


def _send_until_answered(port: int, head: bytes, piece: bytes, total: int) -> tuple[int, bytes]:
    """Send ``head`` then chunks of ``piece`` (chunked encoding) until the server answers or
    ``total`` bytes went out; the bytes sent and the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head)
    sent, frame = 0, f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sock.setblocking(False)
    try:
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable or not writable:
                break
            try:
                sent += sock.send(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    return sent, answer


def _status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


@pytest.mark.parametrize(
    "path, content_type, first, param",
    [
        ("/v1/chat/completions", "application/json", b'{"model": "x", "messages": "', None),
        (
            "/v1/files",
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n',
            "file",
        ),
    ],
    ids=["json", "upload"],
)
def test_a_chunked_body_over_the_limit_is_refused_after_about_the_limit(
    small, path, content_type, first, param
):
    total = 256 << 20
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    sent, answer = _send_until_answered(small.port, head, first + b"a" * 65536, total)
    status, error = _status_and_error(answer)
    assert status == 413 and error["param"] == param
    # HEAD before the fix read the whole body (a 100 MB upload over a 1 MB limit: all of it)
    assert sent < LIMIT + SOCKET_SLACK < total


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/files", "/v1/fine_tuning/jobs"])
def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(small, path):
    sock = socket.create_connection(("127.0.0.1", small.port), timeout=30)
    kind = "multipart/form-data; boundary=B" if path == "/v1/files" else "application/json"
    with sock:  # headers only: the answer comes though not one byte of the body was sent
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {300 << 20}\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, error = _status_and_error(answer)
    assert status == 413 and "declared" in error["message"]


def test_a_body_within_the_limit_is_still_read_whole(small):
    padding = "x" * (LIMIT - 4096)
    r, _ = _chat(small, {"user": padding})
    assert r.status_code == 200, r.text[:300]


def test_the_rate_limiter_charges_what_a_request_can_cost_and_settles_after(tmp_path):
    structured = _as_format({"type": "object", "properties": {"labels": {"type": "array"}}})
    with LocalServer(tmp_path / "s", tpm=300) as srv:
        # n x the default and a structured answer's default (HEAD charged the latter prompt + 64,
        # and a 200-property answer then used 1,004 tokens)
        for body in ({"n": 128, "temperature": 1}, structured):
            error = _refused(_chat(srv, body)[0], 429, None)
            assert "Request too large" in error["message"] and error["type"] == "tokens"
        started = time.monotonic()
        r, _ = _chat(srv, structured | {"max_completion_tokens": 200})
        assert r.status_code == 200
        prompt, used = r.json()["usage"]["prompt_tokens"], r.json()["usage"]["total_tokens"]
        assert 300 - int(r.headers["x-ratelimit-remaining-tokens"]) >= prompt + 200 - 1
        # settled: the next request finds only what the first used gone (and its own charge)
        r, _ = _chat(srv, {"max_completion_tokens": 50, "stream": True})
        assert r.status_code == 200 and r.text.strip().endswith("[DONE]")
        left = int(r.headers["x-ratelimit-remaining-tokens"])
        refilled = (time.monotonic() - started) * 300 / 60 + 1
        assert 300 - used - (prompt + 50) - 1 <= left <= 300 - used - (prompt + 50) + refilled
        # the stream was settled when it ended: most of its 50 answer tokens came back
        r, _ = _chat(srv, {"max_completion_tokens": 10})
        assert int(r.headers["x-ratelimit-remaining-tokens"]) >= left - (prompt + 10) + 30


def test_an_integer_of_thousands_of_digits_is_a_400_not_a_500(server):
    raw = '{"model": "%s", "n": %s, "messages": [{"role": "user", "content": "hi"}]}'
    r = httpx.post(f"{server.base_url}/chat/completions", content=raw % (BASE, "9" * 5000))
    _refused(r, 400, None)
