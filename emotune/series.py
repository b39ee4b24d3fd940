"""Run the numbered notebooks headless with papermill, on one run directory and one parameter
set."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .core.config import headless_kernels
from .core.errors import ConfigError, NotebookFailed, shown_value
from .core.progress import following
from .core.runs import Run, atomic_write_json, now_iso
from .stages.passes import SWITCHES, parse_switch

# The parameters every notebook declares in its `parameters` cell, with the tutorial's defaults.
DEFAULT_PARAMETERS: dict[str, object] = {
    "run_name": "tutorial",
    "run_dir": "",
    "dataset": "goemotions",
    "data_source": "",
    "text_column": "",
    "label_column": "",
    "label_columns": "",
    "label_separator": "",
    "label_names": "",
    "seed": 42,
    "taxonomy": "goemotions",
    # sized so the series on SmolLM2 takes about 12 minutes on 2 CPU cores (benchmarks/RESULTS.md)
    "n_train": 300,
    "n_validation": 50,
    "n_eval": 1000,
    "train_sampling": "balanced",
    "prompt_style": "compact",
    "label_format": "comma",
    "backend": "auto",
    "base_model": "auto",
    "n_epochs": "auto",
    "batch_size": "auto",
    "learning_rate_multiplier": "auto",
    "suffix": "emotune",
    "budget_usd": 5.0,
    "baseline_seeds": 5,
    "n_seeds": 1,
    "dtype": "auto",
    "min_gain": 0.02,
    "base_on_training_prompt": "auto",
    "batch_check": "auto",
}


HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")
# The smallest value each number may take (all must be finite): sizes of 0 take the whole split.
MINIMUMS = {
    "seed": 0,
    "n_train": 0,
    "n_validation": 0,
    "n_eval": 0,
    "budget_usd": 0.0,
    "baseline_seeds": 1,
    "n_seeds": 1,
    "min_gain": 0.0,
}


@dataclass
class StageResult:
    """One executed notebook: where its output is and how long it took."""

    notebook: str
    output: Path
    seconds: float


def default_notebooks_dir() -> Path:
    """The repository's notebooks/ folder (beside the package in a source checkout)."""
    return Path(__file__).resolve().parent.parent / "notebooks"


# Notebook 06 reads a sweep (many runs), not one run: `emotune sweep` executes it for its sweep and
# `emotune run` stops at 05 (emotune/curve.py).
SWEEP_NOTEBOOK = "06_how_many_examples.ipynb"


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks of one run (``NN_name.ipynb``, all but the sweep's) in name order."""
    folder = folder or default_notebooks_dir()
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.name != SWEEP_NOTEBOOK)
    if not found:
        raise ConfigError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def select(notebooks: list[Path], start: str | None = None, stop: str | None = None) -> list[Path]:
    """The notebooks from ``start`` to ``stop`` inclusive, by number (``02``) or name prefix."""
    numbers = [p.name[:2] for p in notebooks]

    def position(flag: str, value: str) -> int:
        number = str(value).strip()[:2].zfill(2)
        if number not in numbers:
            raise ConfigError(
                f"{flag} {value}: no such notebook; the series has {', '.join(numbers)}"
            )
        return numbers.index(number)

    lo = position("--from", start) if start else 0
    hi = position("--to", stop) if stop else len(notebooks) - 1
    if lo > hi:
        raise ConfigError(f"--from {start} comes after --to {stop}; nothing to run")
    return notebooks[lo : hi + 1]


# Quiets the kernel's own log (the TCP-without-encryption warning, "KeyboardInterrupt caught in
# kernel"), meant for Jupyter developers; a failing cell still reaches the user through emotune's
# NotebookFailed.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass(frozen=True)
class SeriesPlan:
    """A checked request to run the series: the notebooks, their coerced parameters, the names they
    declare."""

    notebooks: tuple[Path, ...]
    parameters: dict
    declared: frozenset[str]


def prepare(
    params: dict,
    *,
    start: str | None = None,
    stop: str | None = None,
    notebooks_dir: Path | None = None,
) -> SeriesPlan:
    """The plan :func:`run_series` executes; raises before anything is written."""
    selected = select(list_notebooks(notebooks_dir), start, stop)
    params = {k: coerce(k, v) for k, v in params.items()}
    return SeriesPlan(tuple(selected), params, frozenset(check_parameters(params, selected)))


def _without_machine_paths(path: Path, notebook: Path) -> None:
    """Keep absolute paths of this machine out of an executed notebook: papermill's metadata, and
    the injected ``run_dir``, saved as "." (the notebook ran inside the run directory, so it names
    the same place)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("papermill")
    if meta:
        meta["input_path"] = notebook.name
        meta["output_path"] = f"notebooks/{notebook.name}"
        if "run_dir" in meta.get("parameters", {}):
            meta["parameters"]["run_dir"] = "."
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = re.sub(
                r"^run_dir = .*$", 'run_dir = "."', cell.source, flags=re.MULTILINE
            )
    nbformat.write(nb, path)


# The largest value each number may take: a seed numpy accepts, sizes no data set reaches, a budget
# no tutorial run needs (a typo of a few zeros is refused rather than spent).
MAXIMUMS = dict(seed=2**32 - 1, n_train=10**9, n_validation=10**9, n_eval=10**9, n_seeds=100)
MAXIMUMS |= dict(budget_usd=1e6, baseline_seeds=1000, min_gain=1.0, n_epochs=50, batch_size=10**6)
MAXIMUMS |= dict(learning_rate_multiplier=1000.0)
WHOLE_HYPERPARAMETERS = ("n_epochs", "batch_size")  # they count; the multiplier may be fractional


def _refused(name: str, value: object, whole: bool, low: float) -> ConfigError:
    """The one line that names a numeric parameter and what it accepts."""
    value = shown_value(value)
    high = MAXIMUMS.get(name)
    span = f"from {low:g} to {high:,}" if high is not None else f"of at least {low:g}"
    if name in HYPERPARAMETERS:
        kind = (
            f"a whole number from 1 to {high:,}" if whole else f"a number above 0, up to {high:g}"
        )
        return ConfigError(
            f"parameter {name}: {value} is neither 'auto' nor a positive number (takes {kind})"
        )
    kind = "a whole number" if whole else "a finite number"
    return ConfigError(f"parameter {name}: {value} is not {kind} {span}")


def _number(name: str, value: object, *, whole: bool, low: float) -> int | float:
    """A finite number within the parameter's range, from a number or its text; else one line."""
    number = value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = int(text) if whole and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            number = None
    ok = isinstance(number, int) or (isinstance(number, float) and math.isfinite(number))
    ok = ok and not isinstance(number, bool)
    if ok and whole and isinstance(number, float):
        ok, number = number.is_integer(), int(number) if number.is_integer() else number
    if not ok or not low <= number <= MAXIMUMS.get(name, math.inf):
        raise _refused(name, value, whole, low)
    return number if whole else float(number)


def coerce(name: str, value: object) -> object:
    """Give a parameter the type of its default (``-p seed=7`` is an int, ``-p run_dir=2024``
    stays a string); a number must be finite and within its range (``MINIMUMS``, ``MAXIMUMS``):
    NaN, infinities, negatives, fractions of a count and booleans are refused in one line."""
    default = DEFAULT_PARAMETERS.get(name)
    if name in SWITCHES:  # true, false or auto
        return parse_switch(name, value)
    if name in HYPERPARAMETERS:  # "auto" or a positive number
        if isinstance(value, str) and value.strip() == "auto":
            return "auto"
        whole = name in WHOLE_HYPERPARAMETERS
        number = _number(name, value, whole=whole, low=1 if whole else 0)
        if number <= 0:
            raise _refused(name, value, whole, 0)
        return number
    if isinstance(default, bool) or default is None:
        return value
    if isinstance(default, int | float):
        return _number(
            name, value, whole=isinstance(default, int), low=MINIMUMS.get(name, -math.inf)
        )
    if value is None or isinstance(value, str):
        return value or ""  # an empty YAML value is empty text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # -p run_name=2024 reads as a number; a name is its text
    raise ConfigError(f"parameter {name}: {shown_value(value)} is not text (quote it in a file)")


def check_parameters(params: dict, notebooks: list[Path]) -> set[str]:
    """Reject parameter names that no selected notebook declares (papermill would only log them)."""
    import papermill as pm

    declared: set[str] = set()
    for nb in notebooks:
        declared |= set(pm.inspect_notebook(str(nb)))
    unknown = sorted(set(params) - declared)
    if unknown:
        raise ConfigError(
            f"unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(declared))}"
        )
    return declared


@contextmanager
def _echo(progress: Path, on_event: Callable[[str], None], every_s: float = 2.0) -> Iterator[None]:
    """While a notebook runs, show the newest line of its progress bars (copied to ``progress``)
    on the console."""
    progress.unlink(missing_ok=True)
    try:
        with following(progress, lambda line: on_event(f"    {line}"), every_s):
            yield
    finally:
        progress.unlink(missing_ok=True)


def run_series(
    run: Run, plan: SeriesPlan, *, on_event: Callable[[str], None] = print
) -> list[StageResult]:
    """Execute the plan's notebooks in order into ``<run>/notebooks/``; stop at the first
    failure."""
    import papermill as pm

    from .providers import spending_notice

    # The kernel gets the run directory as one absolute path, whatever its own working directory;
    # the saved notebooks show it as "." (see _without_machine_paths).
    run_path = run.path.resolve()
    selected, params = plan.notebooks, dict(plan.parameters)
    given = {"run_dir": str(run_path), "run_name": run.name}
    params |= {k: v for k, v in given.items() if k in plan.declared}
    out_dir = run_path / "notebooks"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the run directory {run.path}: {exc.strerror or exc}"
        ) from None
    on_event(spending_notice(params.get("backend"), params.get("budget_usd")))
    results = []
    for i, nb in enumerate(selected, start=1):
        on_event(f"[{i}/{len(selected)}] {nb.stem} ...")
        final, partial = out_dir / nb.name, out_dir / f".{nb.stem}.running.ipynb"
        t0 = time.perf_counter()
        progress = (
            out_dir / f".{nb.stem}.progress"
        )  # absolute: the kernel runs in the run directory
        try:
            with headless_kernels(progress), _echo(progress, on_event):
                pm.execute_notebook(
                    str(nb),
                    str(partial),
                    parameters=params,
                    cwd=str(run_path),
                    progress_bar=False,
                    record_timing=False,
                    kernel_name="python3",
                    log_output=False,
                    extra_arguments=KERNEL_ARGUMENTS,
                )
        except pm.PapermillExecutionError as exc:
            failed = out_dir / f"{nb.stem}.failed.ipynb"
            partial.replace(failed)
            _without_machine_paths(failed, nb)
            raise NotebookFailed(
                f"{nb.name} failed in cell {exc.exec_count or exc.cell_index}: {exc.ename}: "
                f"{exc.evalue}\n(executed notebook with the error: {failed})"
            ) from None
        _without_machine_paths(partial, nb)
        partial.replace(final)
        seconds = time.perf_counter() - t0
        run.update(
            stages={nb.stem: {"seconds": round(seconds, 2), "notebook": f"notebooks/{nb.name}"}}
        )
        on_event(f"[{i}/{len(selected)}] {nb.stem} done in {seconds:.1f} s")
        results.append(StageResult(nb.stem, final, seconds))
    atomic_write_json(
        out_dir / "series.json",
        {
            "finished_at": now_iso(),
            "parameters": params,
            "notebooks": [r.notebook for r in results],
        },
    )
    from .report import render_html

    index = render_html(run)
    on_event(f"rendered tutorial: {index}")
    return results


def collect_parameters(namespace: dict) -> dict:
    """The series parameters as a notebook's namespace holds them (after papermill's injection)."""
    return {name: namespace[name] for name in DEFAULT_PARAMETERS if name in namespace}
