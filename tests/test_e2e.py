"""The whole series end to end on the local backend, headless, twice: what a team would automate.

One run with OPENAI_API_KEY set to a sentinel (the local backend forced) proves the key leaks nowhere; a
second identical run proves nothing is bought twice; a real headless Chromium reads the rendered tutorial.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from emotune import summary
from emotune.stages.verdict import ANSWERS

pytestmark = pytest.mark.slow  # the whole notebook series, more than once


SENTINEL = f"sk-emotune-sentinel-{uuid.uuid4().hex}"
PARAMS = [
    "-p",
    "backend=local",
    "-p",
    "n_train=600",
    "-p",
    "n_validation=150",
    "-p",
    "n_eval=150",
    "-p",
    "seed=7",
    "-p",
    "base_model=gpt-4.1-mini-2025-04-14",  # a rehearsal of the OpenAI path, answered by the stand-in
]
BILLABLE = (
    "POST /v1/files",
    "POST /v1/fine_tuning/jobs",
    "POST /v1/chat/completions",
    "POST /v1/batches",
)


def emotune_run(run_dir: Path, log: Path, *extra: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OPENAI_API_KEY": SENTINEL, "TQDM_DISABLE": "1"}
    with open(log, "w") as f:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "emotune.cli",
                "run",
                "--run-dir",
                str(run_dir),
                *PARAMS,
                *extra,
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=900,
        )


def posts(run_dir: Path) -> Counter:
    return Counter((run_dir / "local-backend" / "requests.log").read_text().splitlines())


@pytest.fixture(scope="module")
def series(tmp_path_factory, mirror):
    root = tmp_path_factory.mktemp("e2e")
    run_dir = root / "run"
    first = emotune_run(run_dir, root / "first.log")
    assert first.returncode == 0, (root / "first.log").read_text()[-3000:]
    after_first = posts(run_dir)
    manifest_first = json.loads((run_dir / "manifest.json").read_text())
    second = emotune_run(run_dir, root / "second.log")
    assert second.returncode == 0, (root / "second.log").read_text()[-3000:]
    return {
        "root": root,
        "run": run_dir,
        "after_first": after_first,
        "after_second": posts(run_dir),
        "manifest_first": manifest_first,
        "manifest": json.loads((run_dir / "manifest.json").read_text()),
    }


def test_the_key_appears_nowhere(series):
    leaks = []
    for path in series["root"].rglob("*"):
        if path.is_file() and SENTINEL.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(series["root"])))
    repo_notebooks = Path(__file__).resolve().parent.parent / "notebooks"
    leaks += [p.name for p in repo_notebooks.glob("*.ipynb") if SENTINEL in p.read_text()]
    assert leaks == []
    assert series["manifest"]["backend"]["kind"] == "local"  # forced local even with a key set


def test_a_second_identical_run_buys_nothing_and_reproduces_the_scores(series):
    first, second = series["after_first"], series["after_second"]
    assert (
        first["POST /v1/files"] == 3 and first["POST /v1/fine_tuning/jobs"] == 1
    )  # train, val, batch input
    # base on its zero-shot prompt and on the training prompt, the fine-tuned model once: 3 x 150 comments
    assert first["POST /v1/chat/completions"] == 3 * 150 and first["POST /v1/batches"] == 1
    for route in BILLABLE:
        assert second[route] == first[route], route
    v1 = series["manifest_first"]["evaluation"]["verdict"]
    v2 = series["manifest"]["evaluation"]["verdict"]
    assert v1 == v2 and series["manifest_first"]["job"]["id"] == series["manifest"]["job"]["id"]


def test_the_manifest_alone_records_the_run(series):
    m = series["manifest"]
    for key in (
        "parameters",
        "data",
        "samples",
        "jsonl",
        "estimate",
        "uploads",
        "job",
        "evaluation",
        "backend",
        "versions",
        "stages",
    ):
        assert key in m, key
    assert m["data"]["checksums"]["train.tsv"] and m["jsonl"]["files"]["train"]["sha256"]
    assert m["job"]["trained_tokens"] == m["estimate"]["billed_tokens"]
    assert len(m["evaluation"]["sample_ids"]) == 150 and m["evaluation"]["scores"]
    assert all(
        m["stages"][f"0{i}_" + name]["seconds"] > 0
        for i, name in enumerate(
            ["explore", "build_jsonl", "validate_cost", "launch_job", "evaluate"], start=1
        )
    )
    assert "\nVerdict: " in "\n".join(summary.summary_lines(m))
    verdict = m["evaluation"]["verdict"]
    assert verdict["answer"] in [a.text for a in ANSWERS] and verdict["min_gain"] == 0.02
    assert verdict["seed_spread"]["draws"] == 5 and "training draws" in verdict["sentence"]
    assert "Floors on these comments" in verdict["sentence"]
    assert (
        "label-name matcher vs TF-IDF learner; dollar figures are what OpenAI would charge"
        in verdict["sentence"]
    )


def test_from_to_reruns_a_range_without_paying_again(series, tmp_path):
    before = posts(series["run"])
    log = tmp_path / "range.log"
    assert emotune_run(series["run"], log, "--from", "04", "--to", "05").returncode == 0, (
        log.read_text()[-2000:]
    )
    assert "[1/2] 04_launch_job" in log.read_text()
    after = posts(series["run"])
    assert all(after[r] == before[r] for r in BILLABLE)


def chromium_driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(
        options=opts, service=Service(executable_path=shutil.which("chromedriver"))
    )


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (make browser installs them)",
)
def test_rendered_tutorial_in_a_real_browser(series, tmp_path):
    index = series["run"] / "html" / "index.html"
    driver = chromium_driver(tmp_path)
    try:
        driver.get(index.as_uri())
        assert "emotune run" in driver.title
        heads = driver.find_element("id", "headlines").text
        assert "Verdict: " in heads and "Headline macro-F1 (95% BCa interval)" in heads
        links = [
            a.get_attribute("href") for a in driver.find_elements("css selector", "#notebooks a")
        ]
        assert len(links) == 5
        for link in links:
            driver.get(link)
            state = driver.execute_script(
                "return {ready: document.readyState, images: Array.from(document.images).map("
                "i => i.complete && i.naturalWidth > 0), errors: "
                "document.querySelectorAll('.jp-RenderedText[data-mime-type="
                '"application/vnd.jupyter.stderr"] .ansi-red-fg\').length, h1: '
                "document.querySelector('h1') && "
                "document.querySelector('h1').textContent, stderr: "
                "document.querySelectorAll('[data-mime-type=\"application/vnd.jupyter.stderr\"]')"
                ".length, body: document.body.innerText}"
            )
            name = link.rsplit("/", 1)[-1]
            assert state["ready"] == "complete" and state["h1"], name
            assert state["images"] and all(state["images"]), f"{name}: a figure did not render"
            assert state["errors"] == 0, f"{name}: an error output"
            # a page for readers: no progress bars or library chatter, the injected cell as a note
            assert state["stderr"] == 0, f"{name}: a stderr block"
            assert (
                "Parameters this run set" in state["body"] and "# Parameters\n" not in state["body"]
            )
    finally:
        driver.quit()


FAKE_PROVIDER = '''
from emotune.providers.compatible import CompatibleProvider


class FakeProvider(CompatibleProvider):
    """Test-only: an OpenAI-compatible server that is asked for chat only, priced by nobody."""

    kind = "fake"

    @classmethod
    def build(cls, options, *, run=None, **ignored):
        provider = super().build(options, run=run)
        provider.fine_tuning = provider.batches = False  # this team's box only answers
        return provider
'''


def test_a_plugin_package_adds_a_provider_without_touching_emotune(series, tmp_path):
    """Notebook 05 evaluates through a provider emotune has never seen, installed as a package
    (a module and a dist-info with an entry point in the ``emotune.providers`` group): not
    priced, and no Batch call."""
    from emotune.local import LocalServer

    run_dir = tmp_path / "run"
    shutil.copytree(series["run"], run_dir)
    shutil.rmtree(run_dir / "predictions")  # ask the new server for every answer
    plugins = tmp_path / "plugins"  # what `pip install emotune-fake` would leave
    (plugins / "emotune_fake-0.1.dist-info").mkdir(parents=True)
    (plugins / "fake_provider.py").write_text(FAKE_PROVIDER)
    (plugins / "emotune_fake-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: emotune-fake\nVersion: 0.1\n"
    )
    (plugins / "emotune_fake-0.1.dist-info" / "entry_points.txt").write_text(
        "[emotune.providers]\nfake = fake_provider:FakeProvider\n"
    )
    with LocalServer(tmp_path / "fake-state") as srv:
        # the server answers the same fine-tuned model: give it the trained weights, nothing else
        shutil.copytree(
            run_dir / "local-backend" / "weights",
            tmp_path / "fake-state" / "weights",
            dirs_exist_ok=True,
        )
        shutil.copytree(
            run_dir / "local-backend" / "models",
            tmp_path / "fake-state" / "models",
            dirs_exist_ok=True,
        )
        env = os.environ | {
            "TQDM_DISABLE": "1",
            "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]),
            "OPENAI_BASE_URL": srv.base_url,
            "OPENAI_API_KEY": "not-a-real-key",
        }
        log = tmp_path / "fake.log"
        with open(log, "w") as f:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "emotune.cli",
                    "run",
                    "--run-dir",
                    str(run_dir),
                    *PARAMS[2:],
                    "-p",
                    "backend=fake",
                    "--from",
                    "05",
                ],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=900,
            )
        assert done.returncode == 0, log.read_text()[-3000:]
        stats = srv.stats()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["backend"]["kind"] == "fake" and manifest["backend"]["batches"] is False
    assert stats.get("POST /v1/chat/completions", 0) >= 2 * 150
    assert stats.get("POST /v1/batches", 0) == 0 and stats.get("POST /v1/files", 0) == 0
    assert "not priced" in json.dumps(manifest["evaluation"]).replace("not-priced", "not priced")


def test_the_headline_is_recomputed_from_the_saved_predictions_alone(series):
    """scikit-learn's F1 and SciPy's bootstrap on predictions/*.jsonl and the eval sample reproduce the
    notebook's macro-F1 scores and the fine-tune's interval over the free baseline."""
    import numpy as np
    from scipy.stats import bootstrap
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    run, m = series["run"], series["manifest"]
    files = m["evaluation"]["prediction_files"]
    assert {"base", "fine-tuned", "free baseline", "free baseline, seed 8"} <= set(files)
    names = json.loads((run / "manifest.json").read_text())["data"]["label_set"]["labels"]
    gold_ids = [json.loads(line) for line in (run / "eval_sample.jsonl").read_text().splitlines()]
    gold = {row["id"]: [names[i] for i in row["labels"]] for row in gold_ids}
    binarize = MultiLabelBinarizer(classes=names).fit([names])
    ids = list(gold)
    y = binarize.transform([gold[i] for i in ids])
    present = np.flatnonzero(y.sum(axis=0) > 0)

    def answers(name):
        rows = [json.loads(line) for line in (run / files[name]).read_text().splitlines()]
        by_id = {r["id"]: r["labels"] for r in rows}
        return binarize.transform([by_id[i] for i in ids])

    scores = {
        (r["model"], r["metric"]): r
        for r in m["evaluation"]["scores"]
        if r["level"] == "goemotions"
    }
    for name in ("base", "fine-tuned", "free baseline"):
        macro = f1_score(y, answers(name), average="macro", labels=present, zero_division=0)
        assert macro == pytest.approx(scores[(name, "macro_f1")]["value"], abs=1e-9), name
    tuned, base = answers("fine-tuned"), answers("free baseline")

    def difference(rows):
        return f1_score(
            y[rows], tuned[rows], average="macro", labels=present, zero_division=0
        ) - f1_score(y[rows], base[rows], average="macro", labels=present, zero_division=0)

    ci = bootstrap(
        (np.arange(len(ids)),),
        difference,
        n_resamples=499,
        vectorized=False,
        method="BCa",
        rng=np.random.default_rng(0),
    ).confidence_interval
    row = next(
        r
        for r in m["evaluation"]["verdict"]["comparisons"]
        if r["comparison"] == "fine-tuned - free baseline" and r["metric"] == "macro_f1"
    )
    assert row["difference"] == pytest.approx(difference(np.arange(len(ids))), abs=1e-9)
    assert ci.low == pytest.approx(row["95% CI low (unadjusted)"], abs=0.03)
    assert ci.high == pytest.approx(row["95% CI high (unadjusted)"], abs=0.03)


def test_the_reader_page_drops_stderr_and_turns_the_injected_cell_into_a_note():
    import nbformat

    from emotune.report import for_readers

    nb = nbformat.v4.new_notebook()
    injected = nbformat.v4.new_code_cell('# Parameters\nn_train = 80\nrun_dir = "."')
    injected.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("print(1)")
    work.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="steps: 50%|#####\n"),
        nbformat.v4.new_output("stream", name="stdout", text="1\n"),
        nbformat.v4.new_output("error", ename="E", evalue="kept", traceback=[]),
    ]
    defaults = nbformat.v4.new_code_cell(
        "run_name = 'tutorial'\nn_train = 300  # training examples"
    )
    defaults.metadata["tags"] = ["parameters"]
    nb.cells = [defaults, injected, work]
    shown = for_readers(nb)
    assert shown.cells[0].cell_type == "markdown" and "docs/parameters.md" in shown.cells[0].source
    assert shown.cells[1].cell_type == "markdown" and "# Parameters" not in shown.cells[1].source
    assert "- `n_train = 80`" in shown.cells[1].source
    assert [o.get("name", o["output_type"]) for o in shown.cells[2].outputs] == ["stdout", "error"]
