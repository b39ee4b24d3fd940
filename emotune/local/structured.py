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
# values (property keys included) one schema may expand to, its $refs followed: a schema over it is
# refused before any work (a $ref that repeats one on its own path is a cycle, answered null)
MAX_NODES = 10_000
MAX_HOPS = 64  # $refs and anyOf options followed to reach one value's schema
# OpenAI's limits on a structured-output schema (platform.openai.com/docs/guides/structured-outputs)
MAX_PROPERTIES = 5000  # object properties in one schema
MAX_NESTING = 10  # levels of properties and items
MAX_ENUM_VALUES = 1000  # enum values in one schema
MAX_SCHEMA_TEXT = 120_000  # characters of property and definition names, enum and const values
LONG_ENUM, MAX_LONG_ENUM_TEXT = 250, 15_000  # one enum of more strings than this: its characters
_NESTED = ("items", "additionalProperties", "not", "contains")
_OPTIONS = ("anyOf", "oneOf", "allOf")


def labels_in(answer: str) -> list[str]:
    """The labels a model's text answer holds (comma list or ``{"labels": [...]}``), else the
    text itself."""
    parsed = parse_answer(answer, any_label=True)
    if parsed.labels:
        return list(parsed.labels)
    return [answer.strip()] if answer.strip() else []


def _lookup(root: dict, ref: str):
    node = root
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def _follow(schema, root: dict, seen: frozenset = frozenset()) -> tuple[dict | None, frozenset]:
    """The schema a value follows: local ``$ref``s and the first non-null ``anyOf``/``oneOf``/
    ``allOf`` option followed. None where a ``$ref`` repeats one followed on the way here (a
    cycle), or the chain is longer than MAX_HOPS."""
    for _ in range(MAX_HOPS):
        if not isinstance(schema, dict):
            return {}, seen
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            if ref in seen:
                return None, seen
            seen = seen | {ref}
            schema = _lookup(root, ref)
            continue
        option = next(
            (
                o
                for key in _OPTIONS
                if isinstance(schema.get(key), list)
                for o in schema[key]
                if isinstance(o, dict) and o.get("type") != "null"
            ),
            None,
        )
        if option is None:
            return schema, seen
        schema = option
    return None, seen


def _resolve(schema, root: dict) -> dict:
    return _follow(schema, root)[0] or {}


def _refuse(where: str, what: str, limit: int) -> ApiError:
    return ApiError(
        400,
        f"Invalid schema for {where}: {what}, over the limit of {limit:,}.",
        param=where.split(" ")[0],
        code="invalid_value",
    )


def check_limits(schema: dict, where: str) -> None:
    """OpenAI's limits on a schema's size (properties, nesting, enum values, text), read from the
    schema as written (no $ref followed): a 400 naming the limit, before any work."""
    props = enums = text = 0
    stack = [(schema, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, list):
            stack.extend((n, level) for n in node)
            continue
        if not isinstance(node, dict):
            continue
        if level > MAX_NESTING:
            raise _refuse(where, f"it nests more than {MAX_NESTING} levels", MAX_NESTING)
        named = node.get("properties")
        if isinstance(named, dict):
            props += len(named)
            text += sum(len(k) for k in named)
            stack.extend((v, level + 1) for v in named.values())
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), dict):
                text += sum(len(k) for k in node[key])
                stack.extend((v, 0) for v in node[key].values())
        stack.extend((node[k], level + 1) for k in _NESTED + ("prefixItems",) if k in node)
        stack.extend((node[k], level) for k in _OPTIONS if k in node)
        enum = node.get("enum")
        if isinstance(enum, list):
            enums += len(enum)
            chars = sum(len(str(v)) for v in enum)
            text += chars
            if len(enum) > LONG_ENUM and chars > MAX_LONG_ENUM_TEXT:
                raise _refuse(
                    where,
                    f"an enum of {len(enum):,} values has {chars:,} characters",
                    MAX_LONG_ENUM_TEXT,
                )
        if isinstance(node.get("const"), str):
            text += len(node["const"])
        if props > MAX_PROPERTIES:
            raise _refuse(where, f"it has more than {MAX_PROPERTIES:,} properties", MAX_PROPERTIES)
        if enums > MAX_ENUM_VALUES:
            raise _refuse(where, f"it has {enums:,} enum values", MAX_ENUM_VALUES)
        if text > MAX_SCHEMA_TEXT:
            raise _refuse(
                where, "its names, enum and const values have more characters", MAX_SCHEMA_TEXT
            )


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


def fill(schema: dict, labels: Sequence[str], where: str = "response_format"):
    """A value that follows ``schema``, with ``labels`` in its label field; a schema that expands
    to more than MAX_NODES values (keys included) is a 400 naming ``where``."""
    budget = [MAX_NODES]

    def value(node, holds_labels: bool, depth: int, seen: frozenset):
        budget[0] -= 1
        if budget[0] < 0:
            raise _refuse(
                where, f"it expands to more than {MAX_NODES:,} values with its $refs", MAX_NODES
            )
        node, seen = _follow(node, schema, seen)
        if node is None or depth > MAX_DEPTH:  # a cycle or a too deep schema ends here
            return None
        kind = _type(node)
        if kind == "object":
            props = _props(node)
            if not props:
                return {"labels": list(labels)} if holds_labels else {}
            target = _label_property(props, schema) if holds_labels else None
            return {k: value(v, k == target, depth + 1, seen) for k, v in props.items()}
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

    return value(schema, True, 0, frozenset())


def check_strict(schema: dict, where: str) -> None:
    """OpenAI's rules for a strict schema: every object lists all its properties as required and
    allows no others (each schema checked once on a path: a $ref cycle ends at its repetition)."""
    budget = [MAX_NODES]
    param = where.split(" ")[0]

    def check(node, depth: int, seen: frozenset = frozenset()) -> None:
        budget[0] -= 1
        if depth > MAX_DEPTH or budget[0] < 0:
            return
        node, seen = _follow(node, schema, seen)
        if node is None:
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
                check(sub, depth + 1, seen)
        elif _type(node) == "array":
            check(node.get("items"), depth + 1, seen)

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
    return json.dumps(fill(params, labels, f"tools function '{function.name}'"))


def schema_answer(schema: dict, labels: Sequence[str]) -> str:
    return json.dumps(fill(schema, labels))


def check_schemas(req: ChatRequest) -> bool:
    """Every schema in the request within OpenAI's limits, and the one the answer follows expanded
    within MAX_NODES values (a dry run), before any work; True when the answer is structured."""
    rf = req.response_format
    schema = rf.json_schema.schema_ if rf and rf.type == "json_schema" and rf.json_schema else None
    if schema is not None:
        where = f"response_format '{rf.json_schema.name}'"
        check_limits(schema, where)
        fill(schema, [], where)
    for tool in req.tools or []:
        check_limits(tool.function.parameters or {}, f"tools function '{tool.function.name}'")
    function = chosen_tool(req)
    if function is not None:
        fill(function.parameters or {}, [], f"tools function '{function.name}'")
    return function is not None or (rf is not None and rf.type == "json_schema")
