"""`emotune run` and the notebook parameters, executed for real with papermill."""

import json
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

from emotune import ConfigError, cli, series
from emotune.series import DEFAULT_PARAMETERS

ROOT = Path(__file__).resolve().parent.parent


def test_every_notebook_declares_the_common_parameters():
    import papermill as pm

    for nb in series.list_notebooks():
        declared = {name: p["default"] for name, p in pm.inspect_notebook(str(nb)).items()}
        assert {k: eval(v) for k, v in declared.items()} == DEFAULT_PARAMETERS, nb.name


def test_committed_notebooks_have_counts_kernel_and_no_injected_cell():
    for nb_path in series.list_notebooks():
        nb = nbformat.read(nb_path, as_version=4)
        assert nb.metadata.kernelspec.name == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.execution_count for c in code), f"{nb_path.name} has unrun cells"
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in code)
        body = [c for c in code if "parameters" not in c.metadata.get("tags", [])]
        assert all(c.source.count("\n") < 10 for c in body), (
            f"{nb_path.name} has a cell over 10 lines"
        )
        assert not any(c.source.lstrip().startswith(("def ", "class ")) for c in code)
        text = json.dumps(nb)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text


def test_coerce_and_select():
    assert series.coerce("seed", "7") == 7 and series.coerce("run_dir", 2024) == "2024"
    assert series.coerce("budget_usd", "2.5") == 2.5
    assert series.coerce("backend", "local") == "local" and series.coerce("n_epochs", 4) == 4
    assert series.coerce("n_epochs", "auto") == "auto"
    with pytest.raises(ConfigError, match="neither 'auto' nor a positive number"):
        series.coerce("batch_size", "big")
    with pytest.raises(ConfigError, match="not a whole number"):
        series.coerce("seed", "seven")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("budget_usd", float("nan")),
        ("budget_usd", "inf"),
        ("budget_usd", -1),
        ("n_train", float("inf")),
        ("n_eval", -5),
        ("n_seeds", 0),
        ("min_gain", float("nan")),
        ("n_epochs", -1),
        ("learning_rate_multiplier", float("inf")),
    ],
)
def test_money_and_counts_are_refused_when_not_finite_or_below_their_minimum(name, value):
    with pytest.raises(ConfigError, match=f"parameter {name}: "):
        series.coerce(name, value)


def test_the_budget_guard_refuses_a_budget_that_is_not_an_amount():
    from emotune.core.errors import BudgetError
    from emotune.core.pricing import check_budget

    for budget in (float("nan"), float("inf"), -1.0):
        with pytest.raises(BudgetError, match="budget_usd must be a finite amount"):
            check_budget(0.01, budget)


def test_select():
    nbs = [Path("01_a.ipynb"), Path("02_b.ipynb"), Path("03_c.ipynb")]
    assert series.select(nbs, "02", None) == nbs[1:] and series.select(nbs, None, "2") == nbs[:2]
    with pytest.raises(ConfigError, match="no such notebook; the series has 01, 02, 03"):
        series.select(nbs, "09", None)
    with pytest.raises(ConfigError, match="comes after"):
        series.select(nbs, "03", "01")


def test_unknown_parameter_is_rejected_before_anything_runs(tmp_path, capsys):
    rc = cli.main(["run", "--run-dir", str(tmp_path / "r"), "-p", "seeed=3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s): seeed" in err and "seed" in err
    assert not (tmp_path / "r" / "notebooks" / "01_explore.ipynb").exists()


def test_emotune_run_executes_01_with_parameters(tmp_path, mirror, capfd):
    # the kernel is another process: its noise would reach the console through the fd
    capsys = capfd
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"n_train": 200, "n_validation": 60}))
    run_dir = tmp_path / "myrun"
    rc = cli.main(
        [
            "run",
            "--run-dir",
            str(run_dir),
            "--params",
            str(params),
            "-p",
            "seed=7",
            "-p",
            "n_eval=80",
            "-p",
            "base_model=stand-in",
            "--to",
            "01",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "[1/1] 01_explore" in out
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["parameters"]["seed"] == 7 and manifest["parameters"]["n_train"] == 200
    assert manifest["samples"]["train"]["rows"] == 200 and manifest["samples"]["eval"]["rows"] == 80
    assert (
        manifest["stages"]["01_explore"]["status"] == "done"
        and manifest["stages"]["01_explore"]["seconds"] > 0
    )
    assert manifest["data"]["split_sizes"]["train"] == 43410
    assert (run_dir / "notebooks" / "01_explore.ipynb").exists()
    executed = (run_dir / "notebooks" / "01_explore.ipynb").read_text()
    for machine_path in (
        str(run_dir.resolve()),
        str(Path(series.__file__).resolve().parent.parent),
    ):
        assert machine_path not in executed  # injected run_dir and papermill metadata are relative
    assert "IPKernelApp" not in out and "IPKernelApp" not in capsys.readouterr().err
    assert len((run_dir / "train_sample.jsonl").read_text().splitlines()) == 200
    # `emotune show` summarises it
    assert cli.main(["show", str(run_dir)]) == 0
    assert "01_explore" in capsys.readouterr().out


def test_run_dir_is_decided_once_and_the_kernel_gets_it_as_an_absolute_path(
    tmp_path, monkeypatch, capfd
):
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("run_dir = ''\nrun_name = 'tutorial'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("open('seen.txt', 'w').write(run_dir + '|' + run_name)"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, nb_dir / "01_where.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMOTUNE_RUN_DIR", "from-env")  # relative: resolved once, by the CLI
    assert cli.main(["run", "--notebooks", str(nb_dir)]) == 0, capfd.readouterr().err
    run_dir = (tmp_path / "from-env").resolve()
    assert (run_dir / "seen.txt").read_text() == f"{run_dir}|from-env"
    executed = nbformat.read(run_dir / "notebooks" / "01_where.ipynb", as_version=4)
    assert 'run_dir = "."' in executed.cells[1].source and str(run_dir) not in json.dumps(executed)


def test_failing_notebook_shows_the_cell_and_exits_nonzero(tmp_path, capfd):
    capsys = capfd
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("seed = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("raise ValueError('boom ' + str(seed))")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, nb_dir / "01_fail.ipynb")
    rc = cli.main(
        ["run", "--run-dir", str(tmp_path / "r"), "--notebooks", str(nb_dir), "-p", "seed=5"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "01_fail.ipynb failed" in err and "ValueError: boom 5" in err
    assert "IPKernelApp" not in err and "KeyboardInterrupt" not in err
    assert (tmp_path / "r" / "notebooks" / "01_fail.failed.ipynb").exists()
    assert not (tmp_path / "r" / "notebooks" / "01_fail.ipynb").exists()


def test_environment_yml_installs_what_pyproject_declares():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "conda-forge" in env["channels"]
    # Python deps live in pyproject only; conda adds just python (same floor) and pip.
    assert sorted(d.split(">")[0].split("=")[0] for d in conda) == ["pip", "python"]
    assert f"python{project['project']['requires-python']}" in conda
    assert pip == ["-e .[dev,lab]"]
    assert {"dev", "lab"} <= set(project["project"]["optional-dependencies"])


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().splitlines()[-1] == "make test"


def test_the_default_run_is_sized_for_the_twelve_minute_budget():
    """The sizes the default run was measured at (benchmarks/RESULTS.md: 300 comments x 3 epochs
    trained in 264 s, two passes of 1,000 answers in about 6 minutes, 11.1 minutes in all on 2
    cores); a larger default would need measuring again."""
    from emotune.local.trainers.open_weights import OpenWeightsTrainer
    from emotune.providers.local import LocalProvider
    from emotune.stages.passes import evaluation_passes

    p = DEFAULT_PARAMETERS
    assert p["base_model"] == "auto" and LocalProvider.default_base_model == "smollm2-135m-instruct"
    assert p["n_epochs"] == "auto" and p["batch_size"] == "auto" and p["n_seeds"] == 1
    assert p["n_train"] * OpenWeightsTrainer.auto_epochs <= 900
    assert p["n_validation"] <= 64 and p["n_eval"] == 1000
    passes = evaluation_passes(LocalProvider(None, ""), "smollm2-135m-instruct")
    assert not passes.base_on_training_prompt and not passes.batch_check  # two passes, not four
    assert evaluation_passes(LocalProvider(None, ""), "stand-in").batch_check
