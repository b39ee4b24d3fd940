"""The house's shape, checked: layers import one way, no import circles, no module over 400 lines.

    core       emotune/core/       pure rules and records; imports nothing else of emotune's
    server     emotune/local/      the local OpenAI-compatible backend; imports core only
    providers  emotune/providers/  where API calls go; imports core (and starts the server)
    stages     emotune/stages/     one module per notebook step; imports core and the provider interface
    shell      emotune/*.py        public API, plots, report, series runner, CLI: may import everything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "emotune"
ALLOWED = {
    "core": {"core"},
    "local": {"core", "local"},
    "providers": {"core", "providers", "local"},
    "stages": {"core", "providers", "stages"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(mod: str, path: Path, modules) -> set[str]:
    """Every emotune module this one imports, at the top or inside a function."""
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        found |= {t for t in targets if t in modules and t != mod and not mod.startswith(t + ".")}
    return found


def _layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED) else "shell"


MODULES = _modules()
GRAPH = {m: _imports(m, p, MODULES) for m, p in MODULES.items()}


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if _layer(m) in ALLOWED))
def test_layers_import_one_way(mod):
    layer = _layer(mod)
    wrong = sorted(t for t in GRAPH[mod] if t != "emotune" and _layer(t) not in ALLOWED[layer])
    assert wrong == [], f"{mod} ({layer}) imports {wrong}"


def test_no_import_circles():
    cycles, seen = [], set()

    def visit(node, path):
        for nxt in sorted(GRAPH[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen.add(node)

    for mod in sorted(GRAPH):
        if mod not in seen:
            visit(mod, [mod])
    assert cycles == []


def test_no_module_over_400_lines():
    big = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text("utf-8").splitlines())) > 400}
    assert big == {}
