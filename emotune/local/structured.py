"""Structured outputs for the local stand-in: an answer's labels laid into the caller's JSON schema.

A real model is decoded under the schema; the local stand-in predicts labels and writes them into
the schema's label field: the first array-of-strings property (whatever its name), else a string
property (the first label), the other properties filled with typed empty values (``""``, ``0``,
``false``, ``[]``, nested objects filled the same way). ``enum`` values are respected. The same
shaping answers a tool call whose function parameters hold the labels (the structured-output
pattern).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..core.prompts import parse_answer
from .api_error import ApiError
from .schemas import ChatRequest, Function

# deeper schemas are answered with null below this depth (and OpenAI refuses them anyway)
MAX_DEPTH = 32
# values written for one schema: a schema that refers to itself cannot make the answer explode
MAX_NODES = 10_000


def labels_in(answer: str) -> list[str]:
    """The labels a model's text answer holds (comma list or ``{"labels": [...]}``), else the
    text itself."""
    parsed = parse_answer(answer, any_label=True)
    if parsed.labels:
        return list(parsed.labels)
    return [answer.strip()] if answer.strip() else []


def _resolve(schema, root: dict) -> dict:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}
    for key in ("anyOf", "oneOf", "allOf"):
        given = schema.get(key)
        options = (
            [o for o in given if isinstance(o, dict) and o.get("type") != "null"]
            if isinstance(given, list)
            else []
        )
        if options:
            return _resolve(options[0], root)
    return schema


def _type(schema: dict) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    if t is None and "properties" in schema:
        return "object"
    if t is None and _enum(schema):
        return "string"
    return t if isinstance(t, str) else None


def _enum(schema: dict) -> list | None:
    enum = schema.get("enum")
    return enum if isinstance(enum, list) and enum else None


def _props(schema: dict) -> dict:
    props = schema.get("properties")
    return (
        {k: v for k, v in props.items() if isinstance(v, dict)} if isinstance(props, dict) else {}
    )


def _is_label_list(schema: dict, root: dict) -> bool:
    return _type(schema) == "array" and _type(_resolve(schema.get("items"), root)) == "string"


def _label_property(props: dict, root: dict) -> str | None:
    """The property that holds the labels: the first array of strings, else the first string."""
    resolved = {k: _resolve(v, root) for k, v in props.items()}
    lists = [k for k, v in resolved.items() if _is_label_list(v, root)]
    if lists:
        return lists[0]
    strings = [k for k, v in resolved.items() if _type(v) == "string"]
    return strings[0] if strings else None


def _pick(labels: Sequence[str], enum: list | None) -> list[str]:
    if not enum:
        return list(labels)
    allowed = {str(e).lower(): e for e in enum}
    return [allowed[x.lower()] for x in labels if x.lower() in allowed]


def fill(schema: dict, labels: Sequence[str]):
    """A value that follows ``schema``, with ``labels`` in its label field (at most MAX_NODES values
    written)."""
    budget = [MAX_NODES]

    def value(node, holds_labels: bool, depth: int):
        node = _resolve(node, schema)
        budget[0] -= 1
        if depth > MAX_DEPTH or budget[0] < 0:  # a schema that refers to itself ends here
            return None
        kind = _type(node)
        if kind == "object":
            props = _props(node)
            if not props:
                return {"labels": list(labels)} if holds_labels else {}
            target = _label_property(props, schema) if holds_labels else None
            return {k: value(v, k == target, depth + 1) for k, v in props.items()}
        if kind == "array":
            items = _resolve(node.get("items"), schema)
            most = node.get("maxItems") if isinstance(node.get("maxItems"), int) else None
            return (
                _pick(labels, _enum(items))[:most]
                if holds_labels and _type(items) == "string"
                else []
            )
        if kind == "string":
            enum = _enum(node)
            chosen = _pick(labels, enum) if holds_labels else []
            return chosen[0] if chosen else (str(enum[0]) if enum else "")
        return {"integer": 0, "number": 0, "boolean": False}.get(kind) if kind else None

    return value(schema, True, 0)


def check_strict(schema: dict, where: str) -> None:
    """OpenAI's rules for a strict schema: every object lists all its properties as required and
    allows no
    others."""
    budget = [MAX_NODES]
    param = where.split(" ")[0]

    def check(node, depth: int) -> None:
        node = _resolve(node, schema)
        budget[0] -= 1
        if depth > MAX_DEPTH or budget[0] < 0:
            return
        if _type(node) == "object":
            props = _props(node)
            if node.get("additionalProperties") is not False:
                raise ApiError(
                    400,
                    f"Invalid schema for {where}: 'additionalProperties' is required to be "
                    "supplied "
                    "and to be false (strict mode).",
                    param=param,
                    code="invalid_value",
                )
            required = node.get("required")
            named = (
                {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
            )
            if set(props) - named:
                raise ApiError(
                    400,
                    f"Invalid schema for {where}: 'required' must list every property; missing "
                    f"{sorted(set(props) - named)} (strict mode).",
                    param=param,
                    code="invalid_value",
                )
            for sub in props.values():
                check(sub, depth + 1)
        elif _type(node) == "array":
            check(node.get("items"), depth + 1)

    check(schema, 0)


def chosen_tool(req: ChatRequest) -> Function | None:
    """The function the answer calls: the named one, any one when required, one that holds labels
    when
    auto."""
    tools = [t.function for t in req.tools or []]
    choice = req.tool_choice if req.tool_choice is not None else ("auto" if tools else "none")
    if not tools or choice == "none":
        return None
    if not isinstance(choice, str):
        return next(f for f in tools if f.name == choice.function.name)
    for f in tools:
        params = f.parameters or {}
        if _label_property(_props(params), params) is not None:
            return f
    return tools[0] if choice == "required" else None


def output_schema(req: ChatRequest) -> dict | None:
    """The JSON schema the content must follow (``response_format`` json_schema), checked when
    strict."""
    rf = req.response_format
    if rf is None or rf.type != "json_schema" or rf.json_schema is None:
        return None
    schema = rf.json_schema.schema_ or {"type": "object"}
    if rf.json_schema.strict:
        check_strict(schema, f"response_format '{rf.json_schema.name}'")
    return schema


def tool_arguments(function: Function, labels: Sequence[str]) -> str:
    params = function.parameters or {"type": "object"}
    if function.strict:
        check_strict(params, f"tools function '{function.name}'")
    return json.dumps(fill(params, labels))


def schema_answer(schema: dict, labels: Sequence[str]) -> str:
    return json.dumps(fill(schema, labels))
