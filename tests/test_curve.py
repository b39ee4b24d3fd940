"""Notebook 06's learning curve, read from the recorded SmolLM2 sweep (notebooks/recorded-sweep/): what it
holds, the test across the curve, the clear errors, and the committed notebook itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

import emotune
from emotune import ConfigError
from emotune.curve import default_sweep_recording, load_curve
from emotune.series import SWEEP_NOTEBOOK, default_notebooks_dir, list_notebooks
from emotune.sweep_notebook import save_sweep_recording

RECORDED = default_sweep_recording()


@pytest.fixture(scope="module")
def curve():
    return load_curve("")  # empty: the recorded sweep


def copy_sweep(dest: Path, runs: list[str] | None = None) -> Path:
    """The recorded sweep, or some of its runs, in a folder of the test's own."""
    plan = json.loads((RECORDED / "sweep.json").read_text())
    if runs is not None:
        plan["runs"] = [r for r in plan["runs"] if r["name"] in runs]
    dest.mkdir(parents=True)
    (dest / "sweep.json").write_text(json.dumps(plan))
    for r in plan["runs"]:
        shutil.copytree(RECORDED / r["name"], dest / r["name"])
    return dest


def test_the_recorded_sweep_answers_the_question_for_the_default_model(curve):
    assert len(curve.sizes) >= 4 and max(curve.sizes) == 3000 and len(curve.seeds) >= 2
    assert min(curve.comments) >= 1000 and curve.pending == () and curve.left_out == ()
    assert "smollm2-135m-instruct" in curve.compared
    per_run = curve.points.groupby("run")["model"].apply(sorted)
    assert all(models == ["base", "fine-tuned", "free baseline"] for models in per_run)
    assert (curve.points["ci_low"] <= curve.points["ci_high"]).all()
    # every run's costs were recorded: training took time, more steps for more comments
    costs = curve.costs.sort_values("size")
    assert (costs["training s"] > 0).all() and costs["training steps"].is_monotonic_increasing


def test_the_tests_are_holm_corrected_across_every_point_of_the_curve(curve):
    tests = curve.tests.sort_values("p")
    m = len(tests)
    assert m == len(curve.costs)
    # Holm's step-down by hand: the k-th smallest p times (m - k + 1), never below an earlier one
    expected = (tests["p"] * list(range(m, 0, -1))).cummax().clip(upper=1.0)
    assert list(tests["p_holm"]) == pytest.approx(list(expected))


def set_test(folder: Path, run: str, difference: float, p: float) -> None:
    """Give one run's fine-tune minus free baseline another outcome (a variant of a real manifest)."""
    path = folder / run / "manifest.json"
    manifest = json.loads(path.read_text())
    for c in manifest["evaluation"]["verdict"]["comparisons"]:
        if c["comparison"] == "fine-tuned - free baseline" and c["metric"] == "macro_f1":
            c["difference"], c["p"] = difference, p
    path.write_text(json.dumps(manifest))


def test_overtaking_needs_every_seed_ahead_at_that_size_and_every_larger_one(tmp_path):
    folder = copy_sweep(tmp_path / "sweep")
    runs = json.loads((folder / "sweep.json").read_text())["runs"]
    by_size: dict[int, list[str]] = {}
    for r in runs:
        by_size.setdefault(r["parameters"]["n_train"], []).append(r["name"])
    sizes = sorted(by_size)
    for size in sizes:  # every run clearly ahead, but the smallest size's first one behind
        for i, run in enumerate(by_size[size]):
            set_test(folder, run, -0.05 if (size == sizes[0] and i == 0) else 0.05, 0.0001)
    curve = load_curve(folder)
    assert curve.overtakes_at() == sizes[1]
    assert f"from {sizes[1]:,} training comments on" in curve.sentence()
    # one seed not significantly ahead at the largest size: no size settles it
    set_test(folder, by_size[sizes[-1]][1], 0.05, 0.2)
    curve = load_curve(folder)
    assert curve.overtakes_at() is None
    assert "but not at every larger size" in curve.sentence()
    assert list(curve.wins()) == [False] + [True] * (len(sizes) - 2) + [False]
    # a seed's run missing at a size: that size is not won on every seed
    set_test(folder, by_size[sizes[-1]][1], 0.05, 0.0001)
    (folder / by_size[sizes[1]][0] / "manifest.json").unlink()
    curve = load_curve(folder)
    assert not curve.wins()[sizes[1]] and curve.overtakes_at() == sizes[2]


def test_by_size_summarises_the_seeds(curve):
    table = curve.by_size()
    tuned = curve.points[curve.points["model"] == "fine-tuned"]
    for size, rows in tuned.groupby("size"):
        assert table.loc[size, ("fine-tuned", "mean")] == pytest.approx(rows["macro_f1"].mean())
        assert table.loc[size, ("fine-tuned", "seeds")] == len(rows)


def test_the_plot_draws_one_seed_and_every_size(tmp_path):
    plan = json.loads((RECORDED / "sweep.json").read_text())
    first_seed = plan["runs"][0]["parameters"]["seed"]
    names = [r["name"] for r in plan["runs"] if r["parameters"]["seed"] == first_seed]
    curve = load_curve(copy_sweep(tmp_path / "one-seed", names))
    assert curve.seeds == [first_seed]
    fig = emotune.plots.plot_learning_curve(curve.points, curve.overtakes_at(), draws=curve.tests)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [f"{s:,}" for s in curve.sizes]


def test_unfinished_runs_and_other_recipes_stay_off_the_curve(tmp_path):
    folder = copy_sweep(tmp_path / "sweep")
    names = [p.parent.name for p in sorted(folder.glob("*/manifest.json"))]
    (folder / names[0] / "manifest.json").unlink()  # as if it had not finished
    manifest = json.loads((folder / names[1] / "manifest.json").read_text())
    manifest["parameters"]["learning_rate_multiplier"] = 2.0
    (folder / names[1] / "manifest.json").write_text(json.dumps(manifest))
    curve = load_curve(folder)
    assert curve.pending == (names[0],)
    assert curve.left_out == (f"{names[1]} (learning_rate_multiplier 2.0 vs the curve's auto)",)
    assert names[1] not in set(curve.points["run"]) and len(curve.tests) == len(names) - 2


def test_a_folder_that_is_no_sweep_or_holds_one_size_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no sweep.json here"):
        load_curve(tmp_path)
    (tmp_path / "sweep.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a sweep plan"):
        load_curve(tmp_path)
    one = sorted(p.parent.name for p in RECORDED.glob("*/manifest.json"))[0]
    with pytest.raises(ConfigError, match="a learning curve needs a sweep over n_train"):
        load_curve(copy_sweep(tmp_path / "one", [one]))
    folder = copy_sweep(tmp_path / "untested")
    path = folder / one / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["evaluation"]["verdict"]["comparisons"] = []  # no free baseline was compared
    path.write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=f"{one}: its evaluation has no fine-tuned macro-F1"):
        load_curve(folder)


def test_a_recording_keeps_the_plan_and_each_finished_runs_manifest_only(tmp_path):
    folder = copy_sweep(tmp_path / "sweep")
    names = sorted(p.parent.name for p in folder.glob("*/manifest.json"))
    (folder / names[0] / "notes.txt").write_text("not recorded")
    path = folder / names[0] / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["parameters"]["run_dir"] = str(path.parent)  # as a sweep's run records it
    path.write_text(json.dumps(manifest))
    (folder / names[1] / "manifest.json").unlink()
    written = save_sweep_recording(folder, tmp_path / "recorded")
    assert written[0] == "sweep.json" and len(written) == len(names)
    assert sorted(p.name for p in (tmp_path / "recorded").rglob("*") if p.is_file()) == sorted(
        ["sweep.json"] + ["manifest.json"] * (len(names) - 1)
    )
    assert load_curve(tmp_path / "recorded").pending == (names[1],)
    recorded = (tmp_path / "recorded" / names[0] / "manifest.json").read_text()
    assert json.loads(recorded)["parameters"]["run_dir"] == "" and str(tmp_path) not in recorded


def test_notebook_06_is_the_sweeps_and_committed_executed_and_clean():
    path = default_notebooks_dir() / SWEEP_NOTEBOOK
    assert path not in list_notebooks()  # emotune run stops at 05
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code) and nb.metadata.kernelspec.name == "python3"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in code)
    assert all(c.source.count("\n") < 10 for c in code)
    text = json.dumps(nb)
    assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert load_curve("").sentence() in printed  # the committed page shows the recorded sweep
