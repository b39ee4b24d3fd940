"""JSON schemas that cost a server much more than their size: shared by the bounds tests and the
fuzz suite."""

from __future__ import annotations


def nested(levels: int, arrays: bool = False) -> dict:
    """A string inside ``levels`` objects (every other one an array when ``arrays``)."""
    schema: dict = {"type": "string"}
    for i in range(levels):
        if arrays and i % 2:
            schema = {"type": "array", "items": schema}
        else:
            schema = {"type": "object", "properties": {"a": schema}}
    return schema


def ref_dag(levels: int, width: int) -> dict:
    """No cycle, but width**levels values once the $refs are followed."""
    defs = {
        f"d{i}": {
            "type": "object",
            "properties": {f"k{j}": {"$ref": f"#/$defs/d{i + 1}"} for j in range(width)},
        }
        for i in range(levels)
    }
    return {"$defs": defs | {f"d{levels}": {"type": "string"}}, "$ref": "#/$defs/d0"}
