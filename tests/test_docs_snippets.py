"""Every ```python block in the README and the notebooks' markdown runs as written on the local backend."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import openai
import pytest
from conftest import wait_job

import emotune
from emotune.core import prompts
from emotune.local import LocalServer

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```", re.S | re.M)
# A snippet names a fine-tuned model by a placeholder such as "ft:gpt-4.1-mini-...:your-org:emotune:...";
# the test puts the id of a model it has just fine-tuned on the local backend in its place.
FT_PLACEHOLDER = re.compile(r"""(["'])ft:[^"'\n]*\.\.\.[^"'\n]*\1""")
BASE = "gpt-4.1-mini-2025-04-14"
TOY = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
    ("thanks, love it", ["gratitude", "love"]),
    ("many thanks, this made my day", ["gratitude", "joy"]),
]


def markdown_sources() -> dict[str, str]:
    """The README and each notebook's markdown cells, by file name."""
    sources = {"README.md": (ROOT / "README.md").read_text(encoding="utf-8")}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        sources[path.name] = text
    return sources


def snippets() -> list[tuple[str, str]]:
    """(file[index], code) for every ```python block, the index counting that file's blocks from 0."""
    found = []
    for name, text in markdown_sources().items():
        for index, match in enumerate(FENCE.finditer(text)):
            found.append((f"{name}[{index}]", match.group(1)))
    return found


SNIPPETS = snippets()


def emotune_attributes(tree: ast.AST) -> set[str]:
    """The names a snippet takes from the top-level package: ``emotune.X`` and ``from emotune import X``."""
    names = set()
    for node in ast.walk(tree):
        is_emotune = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if is_emotune and node.value.id == "emotune":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "emotune":
            names.update(alias.name for alias in node.names)
    return names


def test_the_readme_and_notebooks_hold_python_snippets():
    assert any(name.startswith("05_evaluate.ipynb") for name, _ in SNIPPETS), [
        name for name, _ in SNIPPETS
    ]


@pytest.mark.parametrize(("name", "code"), SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_a_snippet_compiles_and_uses_only_the_public_api(name, code):
    tree = ast.parse(code, filename=name)
    compile(tree, name, "exec")
    missing = sorted(n for n in emotune_attributes(tree) if n not in emotune.__all__)
    assert missing == [], f"{name} uses names emotune does not export: {missing}"


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory) -> tuple[str, str]:
    """A local backend and a model fine-tuned on it: (base_url, fine-tuned model id)."""
    with LocalServer(tmp_path_factory.mktemp("docs-state")) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="anything", max_retries=0)
        rows = "".join(
            json.dumps(prompts.render_example(t, labels)) + "\n" for t, labels in TOY * 3
        )
        train = client.files.create(file=("train.jsonl", rows.encode()), purpose="fine-tune")
        job = wait_job(
            client, client.fine_tuning.jobs.create(model=BASE, training_file=train.id, seed=0).id
        )
        assert job.status == "succeeded", job.error
        yield srv.base_url, job.fine_tuned_model


@pytest.mark.parametrize(("name", "code"), SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_a_snippet_runs_against_the_local_backend(name, code, fine_tuned, monkeypatch):
    base_url, model = fine_tuned
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "anything")
    runnable = FT_PLACEHOLDER.sub(repr(model), code)
    exec(
        compile(runnable, name, "exec"), {"__name__": "__snippet__"}
    )  # raises where the snippet would
