"""emotune sweep, emotune compare and MLflow tracking, on real runs of the classical stand-in.

One small sweep (2 training sizes x 2 seeds, tiny sizes) runs as two shards at once into one MLflow
SQLite store; the whole sweep run again afterwards sends no request; compare tables the runs, tests
pairs on the same comments and refuses a pair on different ones; a run whose MLflow store cannot be
written finishes with one line saying so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from emotune.core.errors import ConfigError
from emotune.sweep_plan import build_plan, from_assignments, merge_cache, parse_shard

SIZES = ["-p", "base_model=stand-in", "-p", "n_validation=20", "-p", "n_eval=60"]
SIZES += ["-p", "baseline_seeds=2"]
N_EVAL = 60
# 2 training sizes x 2 seeds, and one more run equal to the first but for min_gain (what only
# notebook 05's verdict reads): it shares the first's samples, base answers and free baseline
SWEEP_FILE = """
parameters: {base_model: stand-in, n_validation: 20, n_eval: 60, baseline_seeds: 2}
grid: {n_train: [40, 80], seed: [1, 2]}
runs: [{name: strict, n_train: 40, seed: 1, min_gain: 0.05}]
"""
FIRST = "n_train-40_seed-1_min_gain-0.02"


def _as_in_a_terminal() -> None:
    """Ctrl-C's default action, whatever the suite inherited: a shell starts background jobs with
    SIGINT ignored, and a process that starts ignoring it never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def emotune(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "emotune.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"TQDM_DISABLE": "1", "EMOTUNE_TRACKING": "on"} | (env or {}),
        preexec_fn=_as_in_a_terminal,
    )


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def mlflow_runs(uri: str) -> list:
    import mlflow

    with warnings.catch_warnings():  # SQLAlchemy 2.1 deprecations inside MLflow's SQL store
        warnings.simplefilter("ignore")
        client = mlflow.MlflowClient(uri)
        return client.search_runs([client.get_experiment_by_name("emotune").experiment_id])


def posts(folder: Path) -> dict[str, Counter]:
    """Each run's requests to its local backend, by route (the billable ones are POSTs)."""
    return {
        run.parent.parent.name: Counter(run.read_text().splitlines())
        for run in sorted(folder.glob("*/local-backend/requests.log"))
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mirror):
    root = tmp_path_factory.mktemp("sweep")
    store = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    (root / "store").mkdir()
    env = {"MLFLOW_TRACKING_URI": store}
    (root / "sweep.yaml").write_text(SWEEP_FILE)
    args = ["sweep", "--sweep-dir", str(root / "sweep"), "--params", str(root / "sweep.yaml")]
    shards = [emotune(*args, "--shard", f"{i}/2", env=env) for i in range(2)]
    outputs = [finish(p) for p in shards]
    for code, out in outputs:
        assert code == 0, out[-3000:]
    after_shards = posts(root / "sweep")
    again = finish(emotune(*args, env=env))
    return {
        "args": args,
        "root": root,
        "folder": root / "sweep",
        "store": store,
        "shards": outputs,
        "again": again,
        "after_shards": after_shards,
        "after_again": posts(root / "sweep"),
    }


@pytest.mark.slow
def test_two_shards_write_one_store_and_share_the_base_models_answers(sweep):
    import mlflow

    runs = sorted(p.name for p in sweep["folder"].iterdir() if (p / "manifest.json").is_file())
    grid = [f"n_train-{n}_seed-{s}_min_gain-0.02" for n in (40, 80) for s in (1, 2)]
    assert runs == sorted([*grid, "strict"])
    with warnings.catch_warnings():  # SQLAlchemy 2.1 deprecations inside MLflow's SQL store
        warnings.simplefilter("ignore")
        client = mlflow.MlflowClient(sweep["store"])
        experiment = client.get_experiment_by_name("emotune")
        found = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in found) == runs  # one MLflow run each, no duplicate
    shards = {r.data.tags["emotune.sweep"].rsplit(" ", 1)[-1] for r in found}
    assert shards == {"0/2", "1/2"}
    for r in found:
        assert r.info.status == "FINISHED"
        assert r.data.params["n_train"] in ("40", "80") and r.data.params["seed"] in ("1", "2")
        low, value, high = (
            r.data.metrics[f"fine-tuned/macro_f1{s}"] for s in ("/ci_low", "", "/ci_high")
        )
        assert low <= value <= high
        assert r.data.tags["verdict"] and "seconds/05_evaluate" in r.data.metrics
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            artifacts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"manifest.json", "html", "predictions"} <= artifacts
    # shard 0 ran n_train 40 then 80 on seed 1, then "strict": the later ones asked the base model
    # nothing
    # one run at a time: each run's newest console line reached the sweep's console (its last at least)
    consoles = "".join(out for _, out in sweep["shards"])
    assert f"    {FIRST}: " in consoles and "    strict: " in consoles
    chats = {name: c["POST /v1/chat/completions"] for name, c in sweep["after_shards"].items()}
    assert chats[FIRST] == 3 * N_EVAL  # base, base on the training prompt, fine-tuned
    assert chats["n_train-80_seed-1_min_gain-0.02"] == N_EVAL  # the fine-tuned model only
    assert chats["strict"] == N_EVAL


@pytest.mark.slow
def test_a_run_differing_only_after_sampling_reuses_the_samples_and_the_free_baseline(sweep):
    folder = sweep["folder"]
    strict = json.loads((folder / "strict" / "manifest.json").read_text())
    assert strict["stages"]["01_explore"]["shared_from"] == FIRST
    assert "[1/4] 02_build_jsonl" in (folder / "logs" / "strict.log").read_text()
    for name in ("eval_sample.jsonl", "train_sample.jsonl", "predictions/free-baseline.jsonl"):
        assert (folder / "strict" / name).read_bytes() == (folder / FIRST / name).read_bytes(), name
    # one file per training draw of the free baseline and per run's own sample: 2 draws x 4 grid runs
    assert len(list((folder / "shared" / "free-baseline").glob("*.json"))) == 2 * 4


@pytest.mark.slow
def test_the_whole_sweep_again_skips_finished_runs_and_sends_no_request(sweep):
    code, out = sweep["again"]
    assert code == 0, out[-3000:]
    assert "0 ran, 5 skipped" in out
    assert sweep["after_again"] == sweep["after_shards"]


@pytest.mark.slow
def test_a_finished_sweep_logs_its_runs_into_a_new_store_without_running_them(sweep, tmp_path):
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    code, out = finish(emotune(*sweep["args"], env={"MLFLOW_TRACKING_URI": other}))
    assert code == 0 and "0 ran, 5 skipped" in out, out[-3000:]
    assert posts(sweep["folder"]) == sweep["after_shards"]
    names = sorted(p.parent.name for p in sweep["folder"].glob("*/manifest.json"))
    assert sorted(r.info.run_name for r in mlflow_runs(other)) == names


@pytest.mark.slow
def test_the_sweep_renders_notebook_06_on_its_learning_curve(sweep):
    import nbformat

    from emotune.curve import load_curve

    folder = sweep["folder"]
    assert (folder / "html" / "06_how_many_examples.html").is_file()
    curve = load_curve(folder)
    assert curve.sizes == [40, 80] and curve.seeds == [1, 2] and len(curve.tests) == 4
    assert curve.left_out == ("strict (min_gain 0.05 vs the curve's 0.02)",)
    executed = nbformat.read(folder / "notebooks" / "06_how_many_examples.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert curve.sentence() in printed and "strict (min_gain" in printed
    assert str(sweep["root"]) not in json.dumps(executed)  # the sweep is "." in its own notebook
    assert "(no run finished since)" in sweep["again"][1]  # nothing ran: not rendered again


@pytest.mark.slow
def test_compare_tables_runs_and_tests_pairs_on_the_same_comments(sweep):
    folder = sweep["folder"]
    other = "n_train-80_seed-1_min_gain-0.02"
    code, out = finish(emotune("compare", str(folder / FIRST), str(folder / other)))
    assert code == 0, out
    assert "paired tests on the same 60 test comments" in out and "p (Holm)" in out
    assert f"{other} - {FIRST}" in out and "n_train" in out.splitlines()[0]
    code, out = finish(emotune("compare", "--no-tests", str(folder)))
    assert code == 0, out
    assert all(name in out for name in ("n_train-80_seed-2_min_gain-0.02", "strict", "verdict"))


@pytest.mark.slow
def test_compare_refuses_to_pair_runs_on_different_comments(sweep):
    folder = sweep["folder"]
    other = "n_train-40_seed-2_min_gain-0.02"
    code, out = finish(emotune("compare", str(folder / FIRST), str(folder / other)))
    assert code == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "different test comments" in lines[0], out


def test_a_run_whose_mlflow_store_fails_goes_on_and_says_so_once(tmp_path, mirror):
    unwritable = "sqlite:////proc/emotune-no-such-dir/mlflow.db"
    args = ["run", "--run-dir", str(tmp_path / "run"), *SIZES, "-p", "n_train=40", "--to", "01"]
    code, out = finish(emotune(*args, env={"MLFLOW_TRACKING_URI": unwritable}))
    assert code == 0, out[-3000:]
    said = [line for line in out.splitlines() if "tracking" in line.lower()]
    assert len(said) == 1 and said[0].startswith("tracking off:") and "goes on" in said[0], said
    assert (tmp_path / "run" / "manifest.json").is_file()


def test_grid_names_shards_and_the_checks_before_anything_is_written(tmp_path):
    fixed, grid = from_assignments(["base_model=stand-in", "n_train=100,300", "seed=1,2"])
    plan = build_plan(fixed, grid, folder=str(tmp_path / "s"))
    names = [r.name for r in plan.runs]
    assert names == [
        "n_train-100_seed-1",
        "n_train-100_seed-2",
        "n_train-300_seed-1",
        "n_train-300_seed-2",
    ]
    assert [r.name for r in plan.shard(*parse_shard("1/2"))] == names[1::2]
    assert plan.runs[0].answers_key == plan.runs[2].answers_key  # same seed: same test comments
    assert plan.runs[0].sample_key != plan.runs[2].sample_key
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match="n_train"):
        build_plan(*from_assignments(["n_train=100,-3"]))
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_plan(*from_assignments(["n_trian=1,2"]))
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard("2/2")


def test_merging_prediction_caches_keeps_each_answer_once(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"key": "1", "content": "x"}\n{"key": "2", "content": "y"}\n{"key": \n')
    b.write_text('{"key": "2", "content": "y"}\n')
    assert merge_cache(a, b) == 1 and merge_cache(a, b) == 0
    assert sorted(b.read_text().splitlines()) == sorted(a.read_text().splitlines()[:2])


@pytest.mark.slow
def test_the_sweeps_budget_is_checked_before_the_first_paid_request(tmp_path, mirror):
    """A rehearsal of OpenAI's prices on the local backend: two independent runs side by side
    (--jobs 2) through notebook 03, then their summed estimate refused by --budget 0."""
    args = ["sweep", "--sweep-dir", str(tmp_path / "s"), "--jobs", "2", "--budget", "0"]
    args += ["-p", "base_model=gpt-4.1-mini-2025-04-14", "-p", "n_train=40", "-p", "seed=1,2"]
    args += ["-p", "n_validation=20", "-p", "n_eval=60", "-p", "baseline_seeds=2"]
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    code, out = finish(emotune(*args, env=store))
    assert code == 2, out[-3000:]
    assert "backend local: nothing is billed in dollars" in out
    assert "exceeds --budget $0.00" in out and "sweep estimate: $" in out
    for seed in (1, 2):
        run = tmp_path / "s" / f"seed-{seed}"
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        assert stages["03_validate_cost"]["status"] == "done" and "04_launch_job" not in stages
        log = run / "local-backend" / "requests.log"
        assert not log.exists() or "POST" not in log.read_text()
    # two runs began tracking at once on a fresh SQLite store: both are in it (no migration race)
    assert "tracking off" not in out and "tracking off" not in "".join(
        p.read_text() for p in (tmp_path / "s" / "logs").glob("*.log")
    )
    assert len(mlflow_runs(store["MLFLOW_TRACKING_URI"])) == 2


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_where_its_run_stopped(tmp_path, mirror):
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    args = ["sweep", "--sweep-dir", str(tmp_path / "s"), *SIZES, "-p", "n_train=40", "-p", "seed=9"]
    manifest = tmp_path / "s" / "run" / "manifest.json"
    first = emotune(*args, env=store)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # Ctrl-C once notebook 03 is done
        stages = json.loads(manifest.read_text()).get("stages", {}) if manifest.is_file() else {}
        if stages.get("03_validate_cost", {}).get("status") == "done":
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)
    code, out = finish(first)
    assert code == 130 and "interrupted" in out, out[-3000:]
    code, out = finish(emotune(*args, env=store))
    assert code == 0 and "1 ran" in out, out[-3000:]
    log = (tmp_path / "s" / "logs" / "run.log").read_text()
    assert "01_explore" not in log and "05_evaluate done" in log  # resumed, not started again
    (found,) = mlflow_runs(
        store["MLFLOW_TRACKING_URI"]
    )  # one MLflow run, finished, no failure left
    assert found.info.status == "FINISHED" and "emotune.failed" not in found.data.tags
