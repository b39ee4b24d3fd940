"""Fuzz the chat request surface (streaming, n, stop, logprobs, tools, structured outputs with random
schemas): never a 5xx, errors in OpenAI's shape, and every answer parses as the openai package's own types."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from schema_shapes import nested, ref_dag

from emotune.core.prompts import prompt_messages
from emotune.local import LocalServer

BASE = "gpt-4.1-mini-2025-04-14"
EXAMPLES = 120  # bounded: about 10 s on a laptop core

KEYWORDS = [
    "type",
    "properties",
    "items",
    "enum",
    "required",
    "additionalProperties",
    "$ref",
    "$defs",
    "anyOf",
    "labels",
    "emotions",
    "name",
]
TYPES = st.sampled_from(["object", "array", "string", "number", "integer", "boolean", "null"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | TYPES
)
SCHEMA = st.recursive(
    SCALARS | st.just("#/$defs/a"),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.sampled_from(KEYWORDS) | st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=25,
)
TOOL = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["record", "other", "bad name"])},
            optional={"parameters": SCHEMA, "strict": st.booleans()},
        ),
    }
)
FIELDS = {
    "stream": st.booleans() | st.none(),
    "n": st.none() | st.integers(-1, 5),
    "stop": st.none() | st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=5),
    "logprobs": st.none() | st.booleans(),
    "top_logprobs": st.none() | st.integers(-1, 25),
    "max_completion_tokens": st.none() | st.integers(-1, 40),
    "temperature": st.none() | st.floats(-1, 3),
    "stream_options": st.none()
    | st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "response_format": st.none()
    | st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "json_object", "json_schema", "x"])},
        optional={
            "json_schema": st.fixed_dictionaries(
                {"name": st.sampled_from(["out", "a b"])},
                optional={"schema": SCHEMA, "strict": st.booleans()},
            )
        },
    ),
    "tools": st.none() | st.lists(TOOL, max_size=3),
    "tool_choice": st.none()
    | st.sampled_from(["none", "auto", "required", "sometimes"])
    | st.just({"type": "function", "function": {"name": "record"}}),
    "unknown_parameter": SCALARS,
}
BODIES = st.fixed_dictionaries({}, optional=FIELDS)


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-fuzz")
    with LocalServer(root / "state") as srv:
        yield srv, root


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(extra=BODIES)
def test_random_chat_requests_get_typed_answers_or_openai_errors(fuzz_root, extra):
    srv, root = fuzz_root
    body = {"model": BASE, "messages": prompt_messages("so grateful and amused, thanks")} | extra
    r = httpx.post(f"{srv.base_url}/chat/completions", content=json.dumps(body), timeout=30)
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    elif r.headers["content-type"].startswith("text/event-stream"):
        events = r.text.strip().split("\n\n")
        assert events[-1] == "data: [DONE]"
        for event in events[:-1]:
            ChatCompletionChunk.model_validate(json.loads(event.removeprefix("data: ")))
    else:
        completion = ChatCompletion.model_validate(r.json())
        assert len(completion.choices) == (extra.get("n") or 1)
    assert {p.name for p in root.iterdir()} == {
        "state"
    }  # nothing written beside the state directory


def _strict(node):
    """The same schema with every object closed and all its properties required (strict mode)."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if isinstance(out.get("properties"), dict):
        out |= {"additionalProperties": False, "required": list(out["properties"])}
    return out


def _ref_cycle(width: int, name: int, nullable: bool) -> dict:
    ref = {"$ref": "#/$defs/a"}
    child = {"anyOf": [ref, {"type": "null"}]} if nullable else ref
    props = {f"{i}{'n' * name}": child for i in range(width)}
    return {"$defs": {"a": {"type": "object", "properties": props}}, "$ref": "#/$defs/a"}


BOMBS = st.one_of(
    st.builds(nested, st.integers(1, 60), st.booleans()),
    st.builds(ref_dag, st.integers(1, 9), st.integers(1, 14)),
    st.builds(_ref_cycle, st.integers(1, 400), st.integers(0, 60), st.booleans()),
    st.builds(
        lambda n, size: {"type": "string", "enum": [f"{i:0{size}d}" for i in range(n)]},
        st.integers(0, 3000),
        st.integers(1, 40),
    ),
    st.builds(
        lambda n: {"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(n)}},
        st.integers(0, 6000),
    ),
)
BOMB_BYTES = 16 << 20  # an answer's bound: n x its completion limit of tokens, with logprobs


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    schema=BOMBS,
    strict=st.booleans(),
    as_tool=st.booleans(),
    n=st.integers(1, 8),
    logprobs=st.booleans(),
    temperature=st.sampled_from([0, 1]),
    limit=st.none() | st.integers(1, 4096),
)
def test_schema_bombs_are_refused_or_answered_within_bounds(
    fuzz_root, schema, strict, as_tool, n, logprobs, temperature, limit
):
    """Deep, $ref-cyclic, $ref-exponential, huge-enum and wide schemas: a 400 naming the limit
    before any work, or an answer within n x the completion limit, quickly."""
    from emotune.local.schemas import STRUCTURED_COMPLETION_TOKENS

    srv, _ = fuzz_root
    schema = _strict(schema) if strict else schema
    body = {"model": BASE, "messages": prompt_messages("so grateful and amused"), "n": n}
    body |= {"temperature": temperature} | ({"max_completion_tokens": limit} if limit else {})
    body |= {"logprobs": True, "top_logprobs": 20} if logprobs else {}
    if as_tool:
        function = {"name": "record", "parameters": schema, "strict": strict}
        body |= {"tools": [{"type": "function", "function": function}], "tool_choice": "required"}
    else:
        rf = {"name": "out", "schema": schema, "strict": strict}
        body |= {"response_format": {"type": "json_schema", "json_schema": rf}}
    # a bomb that still expanded would not come back within the client's deadline
    r = httpx.post(f"{srv.base_url}/chat/completions", content=json.dumps(body), timeout=60)
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    if r.status_code == 400:
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["param"] in ("tools" if as_tool else "response_format", "n")
        return
    assert len(r.content) < BOMB_BYTES
    completion = ChatCompletion.model_validate(r.json())
    assert completion.usage.completion_tokens <= n * (limit or STRUCTURED_COMPLETION_TOKENS)
