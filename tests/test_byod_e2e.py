"""END-TO-END (about 1 minute per run, 2 runs): the five notebooks on data emotune has never seen.

``emotune run -p dataset=<file> -p text_column=... -p label_column=...`` on the local backend, once on a
single-label CSV of support tickets and once on a multi-label JSONL of tagged posts. Fixtures are written
here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # the whole notebook series on two data sets of its own


WORDS = {
    "billing": "invoice charge refund",
    "bug": "crash error broken",
    "login": "password account locked",
    "urgent": "asap immediately now",
}


def ticket_text(i: int, labels: list[str]) -> str:
    words = " ".join(WORDS[lab].split()[i % 3] for lab in labels)
    return f"Ticket {i}: customer writes about {words} (case {i * 7 % 13})"


def run_series(run_dir: Path, *params: str, extra: tuple[str, ...] = (), ok: bool = True):
    env = os.environ | {"TQDM_DISABLE": "1"}
    env.pop("OPENAI_API_KEY", None)
    args = [
        sys.executable,
        "-m",
        "emotune.cli",
        "run",
        "--run-dir",
        str(run_dir),
        "-p",
        "backend=local",
        "-p",
        "n_train=80",
        "-p",
        "n_validation=12",
        "-p",
        "n_eval=12",
        "-p",
        "base_model=stand-in",
        *[x for p in params for x in ("-p", p)],
        *extra,
    ]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    if not ok:
        return out
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return json.loads((run_dir / "manifest.json").read_text())


def outputs(run_dir: Path, name: str) -> str:
    nb = nbformat.read(run_dir / "notebooks" / name, 4)
    return "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def test_single_label_csv_of_support_tickets(tmp_path):
    cats = ["billing", "bug", "login"]
    rows = [{"subject": ticket_text(i, [cats[i % 3]]), "queue": cats[i % 3]} for i in range(120)]
    rows += [{"subject": "", "queue": "bug"}, {"subject": "no queue given", "queue": ""}]
    path = tmp_path / "tickets.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    run_dir = tmp_path / "run"
    m = run_series(run_dir, f"dataset={path}", "text_column=subject", "label_column=queue")
    assert m["data"]["name"] == "tickets" and m["data"]["multi_label"] is False
    assert m["data"]["label_set"]["labels"] == cats
    assert (
        m["data"]["dropped"]["train"]["empty text"] == 1
        and m["data"]["dropped"]["train"]["missing labels"] == 1
    )
    assert (
        m["jsonl"]["prompt_spec"]["label_set"] == "tickets"
        and m["jsonl"]["prompt_spec"]["multi_label"] is False
    )
    assert m["evaluation"]["verdict"]["taxonomy"] == "tickets"
    explore = outputs(run_dir, "01_explore.ipynb")
    assert "single-label data" in explore and "has no coarser levels" in explore

    from emotune import summary

    assert "dataset: tickets" in "\n".join(summary.summary_lines(m))
    assert (
        "Dataset: tickets (3 labels, single-label" in (run_dir / "html" / "index.html").read_text()
    )
    evaluate = outputs(run_dir, "05_evaluate.ipynb")
    assert (
        "accuracy" in evaluate and "predicted" in evaluate
    )  # accuracy per model and the confusion matrix
    train = (run_dir / "train.jsonl").read_text().splitlines()
    assert all(json.loads(line)["messages"][-1]["content"] in cats for line in train)
    # evaluating with another prompt than the model was trained with is an error naming both specs
    other = run_series(
        run_dir,
        f"dataset={path}",
        "text_column=subject",
        "label_column=queue",
        "prompt_style=verbose",
        extra=("--from", "05"),
        ok=False,
    )
    assert other.returncode != 0 and "style='compact'" in other.stdout + other.stderr
    assert "style='verbose'" in other.stdout + other.stderr


def test_multi_label_jsonl_of_tagged_posts(tmp_path):
    tags = [
        ["billing"],
        ["bug"],
        ["login"],
        ["billing", "urgent"],
        ["bug", "urgent"],
        ["login", "bug"],
    ]
    rows = [{"post": ticket_text(i, tags[i % 6]), "tags": tags[i % 6]} for i in range(150)]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "run"
    m = run_series(
        run_dir, f"dataset={path}", "text_column=post", "label_column=tags", "label_format=json"
    )
    assert m["data"]["name"] == "posts" and m["data"]["multi_label"] is True
    assert m["data"]["label_set"]["labels"] == ["billing", "bug", "login", "urgent"]
    assert set(m["data"]["made_splits"]) == {"validation", "test"}
    assert m["evaluation"]["verdict"]["taxonomy"] == "posts"
    explore = outputs(run_dir, "01_explore.ipynb")
    assert (
        "label a" in explore and "single-label data" not in explore
    )  # the co-occurrence pairs are shown


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
