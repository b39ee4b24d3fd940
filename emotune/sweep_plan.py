"""What ``emotune sweep`` runs: parameter sets from a grid (``-p n_train=100,300 -p seed=1,2``) or
a YAML file, each checked like ``emotune run``'s before anything is written, each with a stable name
(its folder under the sweep folder) and the keys that say what two runs share; and how they share
it (notebook 01's samples copied, prediction caches merged).

A sweep file is YAML::

    parameters:          # every run's (as -p NAME=VALUE)
      base_model: stand-in
      n_eval: 200
    grid:                # every combination, the first name outermost
      n_train: [100, 300]
      seed: [1, 2]
    runs:                # and/or parameter sets of your own (a name: is optional)
      - {name: long, n_train: 1000, n_epochs: 5}

A plain mapping of parameters is read as ``parameters:``, its lists as ``grid:``.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from .core.config import DEFAULT_RUNS_ROOT
from .core.errors import ConfigError
from .core.runs import Run
from .series import DEFAULT_PARAMETERS, HYPERPARAMETERS, coerce, prepare, shown_value

# Parameters that hold a comma-separated list themselves: a comma in -p is theirs, not a grid axis.
LIST_PARAMETERS = ("label_columns", "label_names", "label_separator", "dataset", "data_source")
# What notebooks 02-05 read and notebook 01 does not: runs equal in everything else share notebook
# 01's samples, splits and draws (it samples nothing these change).
AFTER_SAMPLING = (
    "run_name",
    "run_dir",
    "prompt_style",
    "label_format",
    "n_epochs",
    "batch_size",
    "learning_rate_multiplier",
    "suffix",
    "budget_usd",
    "dtype",
    "min_gain",
    "base_on_training_prompt",
    "batch_check",
)
# Only the training sample depends on these: runs equal in everything else ask the base model the
# same questions on the same test comments (a run waits for the first of them, then reads its
# answers)
TRAINING_SIZE = ("n_train", "n_validation", "train_sampling", "baseline_seeds", "n_seeds")


@dataclass(frozen=True)
class SweepRun:
    """One parameter set of a sweep: its folder name and its checked parameters."""

    name: str
    parameters: dict

    def value(self, name: str) -> object:
        return self.parameters.get(name, DEFAULT_PARAMETERS.get(name))

    def key(self, leave_out: tuple[str, ...]) -> str:
        """The run's parameters (defaults filled in) without ``leave_out``, as one string."""
        full = DEFAULT_PARAMETERS | self.parameters
        kept = {k: full[k] for k in sorted(full) if k not in leave_out}
        return json.dumps(kept, sort_keys=True, default=str)

    @property
    def sample_key(self) -> str:
        """Equal for runs whose notebook 01 writes the same samples (shared, not recomputed)."""
        return self.key(AFTER_SAMPLING)

    @property
    def answers_key(self) -> str:
        """Equal for runs that ask the base model about the same test comments."""
        return self.key(AFTER_SAMPLING[:2] + TRAINING_SIZE)


@dataclass(frozen=True)
class SweepPlan:
    """The checked runs of a sweep, in order, and the folder they go in."""

    name: str
    folder: Path
    runs: tuple[SweepRun, ...]
    varying: tuple[str, ...]

    def shard(self, index: int, count: int) -> tuple[SweepRun, ...]:
        """Every ``count``-th run from ``index``: ``--shard index/count``."""
        return self.runs[index::count]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "varying": list(self.varying),
            "runs": [{"name": r.name, "parameters": r.parameters} for r in self.runs],
        }


def parse_shard(text: str | None) -> tuple[int, int]:
    """``i/n`` with 0 <= i < n, or (0, 1) for the whole sweep."""
    if not text:
        return 0, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise ConfigError(f"--shard {text!r}: give i/n with 0 <= i < n, e.g. --shard 0/2")
    return int(match[1]), int(match[2])


def _value(name: str, raw: str) -> object:
    """One -p value as ``emotune run`` reads it: text parameters keep their text, the others are
    read as YAML."""
    text_param = isinstance(DEFAULT_PARAMETERS.get(name), str) and name not in HYPERPARAMETERS
    if text_param or not raw.strip():
        return raw
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ConfigError(f"-p {name}: {shown_value(raw)} is not a value") from None


def from_assignments(items: list[str]) -> tuple[dict, dict]:
    """``-p`` items as (fixed parameters, grid axes): ``NAME=a,b`` is an axis, ``NAME=a`` fixed."""
    fixed, grid = {}, {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"-p takes NAME=VALUE or NAME=V1,V2,..., got {shown_value(item)}")
        pieces = [raw] if name in LIST_PARAMETERS else raw.split(",")
        values = [_value(name, piece.strip() if len(pieces) > 1 else piece) for piece in pieces]
        if len(values) > 1:
            grid[name] = values
        else:
            fixed[name] = values[0]
    return fixed, grid


def from_file(path: str) -> tuple[dict, dict, list[dict]]:
    """A sweep file as (parameters, grid, explicit runs)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--params {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text("utf-8")) or {}
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise ConfigError(f"--params {path}: not YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--params {path}: a sweep file is a mapping (parameters:, grid:, runs:)")
    if not {"parameters", "grid", "runs"} & set(data):
        data = {
            "parameters": {k: v for k, v in data.items() if not isinstance(v, list)},
            "grid": {k: v for k, v in data.items() if isinstance(v, list)},
        }
    fixed, grid, runs = data.get("parameters") or {}, data.get("grid") or {}, data.get("runs") or []
    odd = set(data) - {"parameters", "grid", "runs"}
    if odd or not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise ConfigError(f"--params {path}: expected parameters:, grid: and runs:, not {odd}")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"--params {path}: runs: is a list of parameter mappings")
    grid = {k: v if isinstance(v, list) else [v] for k, v in grid.items()}
    return fixed, grid, runs


def _slug(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "empty"


def run_name(parameters: dict, varying: tuple[str, ...]) -> str:
    """``n_train-100_seed-1``: the varying parameters and their values, safe as a folder name."""
    parts = [
        f"{name}-{_slug(parameters.get(name, DEFAULT_PARAMETERS.get(name)))}" for name in varying
    ]
    return ("_".join(parts) or "run")[:120]


def build_plan(
    fixed: dict,
    grid: dict,
    explicit: list[dict] | None = None,
    *,
    name: str | None = None,
    folder: str | None = None,
) -> SweepPlan:
    """Every parameter set of the sweep, checked (names and values, as ``emotune run`` checks
    them) before anything is written."""
    sets = [
        fixed | dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())
    ]
    sets = (sets if grid or not explicit else []) + [fixed | dict(r) for r in explicit or []]
    if not sets:
        raise ConfigError("a sweep needs parameter sets: -p NAME=V1,V2 or a --params file")
    for reserved in ("run_dir", "run_name"):
        if any(reserved in s for s in sets):
            raise ConfigError(f"{reserved} is the sweep's to choose (--sweep-dir, a run's name:)")
    declared = prepare({}).declared
    checked = []
    for s in sets:
        given = {k: v for k, v in s.items() if k != "name"}
        unknown = sorted(set(given) - declared)
        if unknown:
            raise ConfigError(f"unknown parameter(s): {', '.join(unknown)}")
        checked.append((s.get("name"), {k: coerce(k, v) for k, v in given.items()}))
    names = sorted({k for _, p in checked for k in p})
    varying = tuple(
        n for n in names if len({json.dumps(p.get(n), default=str) for _, p in checked}) > 1
    )
    varying = tuple(sorted(varying, key=lambda n: list(grid).index(n) if n in grid else len(grid)))
    runs, seen = [], set()
    for label, params in checked:
        base = _slug(label) if label else run_name(params, varying)
        unique, n = base, 2
        while unique in seen:
            unique, n = f"{base}-{n}", n + 1
        seen.add(unique)
        runs.append(SweepRun(unique, params))
    blob = json.dumps([r.parameters for r in runs], sort_keys=True, default=str)
    name = name or f"sweep-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
    root = Path(folder) if folder else DEFAULT_RUNS_ROOT / "sweeps" / _slug(name)
    return SweepPlan(name, root.resolve(), tuple(runs), varying)


CACHE = "predictions/cache.jsonl"  # a run's prediction cache (emotune/stages/evaluate.py)
SAMPLE_FILES = ("eval_sample.jsonl", "train_sample.jsonl", "validation_sample.jsonl", "draws")


def _lines_by_key(path: Path) -> dict[str, str]:
    out = {}
    if path.is_file():
        for line in path.read_text("utf-8").splitlines():
            try:
                key = json.loads(line).get("key")
            except (ValueError, AttributeError):
                continue  # a line cut short by a crash: that answer is asked again
            if isinstance(key, str):
                out.setdefault(key, line)
    return out


def merge_cache(source: Path, target: Path) -> int:
    """Append the answers of ``source`` that ``target`` lacks; returns how many."""
    have, new = _lines_by_key(target), _lines_by_key(source)
    missing = [line for key, line in new.items() if key not in have]
    if missing:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in missing))
    return len(missing)


def share_samples(source: Path, target: Path) -> None:
    """Give ``target`` the samples, splits and draws notebook 01 wrote in ``source`` (with the
    manifest sections that describe them and the executed notebook), so it starts at notebook 02."""
    for name in SAMPLE_FILES:
        src, dst = source / name, target / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, dst)
    notebook = source / "notebooks" / "01_explore.ipynb"
    if notebook.is_file():
        (target / "notebooks").mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, target / "notebooks" / notebook.name)
    src = Run(source)
    stage = dict(src.get("stages", "01_explore") or {}) | {"shared_from": source.name}
    Run(target).update(
        parameters=src.get("parameters") or {},
        data=src.get("data") or {},
        samples=src.get("samples") or {},
        stages={"01_explore": stage},
    )


@contextmanager
def locked(folder: Path):
    """One process at a time in the shared folder (shards on one machine, parallel jobs)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
