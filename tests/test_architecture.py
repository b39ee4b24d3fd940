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
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen.add(node)

    for mod in sorted(GRAPH):
        if mod not in seen:
            visit(mod, [mod])
    assert cycles == []


def test_no_module_over_400_lines():
    big = {
        str(p.relative_to(PKG)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text("utf-8").splitlines())) > 400
    }
    assert big == {}


def _owner_table() -> list[tuple[str, str, list[str]]]:
    """(section, record, owner functions) from the table in ``core/manifest.py``'s docstring."""
    import re

    from emotune.core import manifest

    rows = []
    for line in manifest.__doc__.splitlines():
        m = re.match(r"^\s{4}(\w+(?:\.K)?)\s+(\w+Record)\s+(.+?)\s{2,}\S", line)
        if m:
            rows.append([m.group(1), m.group(2), m.group(3)])
        elif rows and re.match(r"^\s{30,}\S", line):  # the owners go on under the previous row
            rows[-1][2] += " " + line.strip()
    out = []
    for section, record, owners in rows:
        names = [o.strip() for o in re.sub(r"\(\d\d\)", "", owners).split(",") if o.strip()]
        module = names[0].split(".")[0]
        out.append((section, record, [n if "." in n else f"{module}.{n}" for n in names]))
    return out


def test_the_manifest_owner_table_names_functions_that_exist_and_write_their_section():
    from emotune.core import manifest

    rows = _owner_table()
    records = {
        c.__name__
        for c in vars(manifest).values()
        if isinstance(c, type) and getattr(c, "section", "")
    }
    assert {record for _, record, _ in rows} == records
    for section, record, owners in rows:
        assert getattr(manifest, record).section == section.removesuffix(".K")
        for owner in owners:
            module, func = owner.split(".")
            path = next(p for m, p in MODULES.items() if m.endswith(f".{module}"))
            tree = ast.parse(path.read_text("utf-8"))
            defs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert func in defs, f"{owner} (owner of {section}) does not exist"
            source = ast.get_source_segment(path.read_text("utf-8"), defs[func])
            writes = record in source or f"update({section.removesuffix('.K')}=" in source
            assert writes, f"{owner} does not write the {section} section"


DOC = PKG.parent / "docs" / "architecture.md"


def _diagram_modules(layer: str) -> set[str]:
    """The module names the design document's diagram lists for ``emotune/<layer>/``."""
    import re

    text = DOC.read_text("utf-8").split("```")[1]
    names, inside = set(), False
    for line in text.splitlines():
        if re.search(r"emotune/\w+/", line):
            inside = f"emotune/{layer}/" in line
        if inside:
            body = line.split(f"emotune/{layer}/")[-1] if f"emotune/{layer}/" in line else line
            names |= {re.sub(r"\s*\(.*", "", n).strip() for n in body.split("·")}
    return {n for n in names if re.fullmatch(r"[a-z_]+", n)}


@pytest.mark.parametrize("layer", ["core", "stages", "providers"])
def test_the_design_document_lists_every_module_of_a_layer(layer):
    on_disk = {p.stem for p in (PKG / layer).glob("*.py") if p.stem != "__init__"}
    listed = _diagram_modules(layer)
    if layer == "providers":
        listed = {n.split()[0] for n in listed}
    assert listed == on_disk


def test_every_file_and_name_the_design_document_cites_exists():
    import re

    text = DOC.read_text("utf-8")
    roots = [PKG.parent, PKG, PKG / "local" / "trainers"]
    for path in re.findall(r"`([\w/]+\.(?:py|json|md))`", text):
        if path.startswith("shared/") or ("/" not in path and not path.endswith(".py")):
            continue  # the team's first proposal beside the project; files a job writes at run time
        assert any((r / path).exists() for r in roots), (
            f"docs/architecture.md cites {path}, which is missing"
        )
    for name, path in re.findall(r"`([\w.]+)` in `([\w/]+\.py)`", text):
        source = (PKG / path).read_text("utf-8")
        assert re.search(rf"(def|class) {name.split('.')[-1]}\b", source), (
            f"{name} is not in {path}"
        )
