"""Notebook 06's question, *how many examples are enough?*, answered from a sweep: each finished
run's manifest read back as one point of a learning curve (macro-F1 against the training size for
the fine-tune, the free baseline and the base model, each with its 95% BCa interval), the fine-tune
against the free baseline at every point (the paired permutation test notebook 05 ran on that run's
comments, Holm-corrected here across every point of the curve), and what each point cost.

Nothing is asked, trained or recomputed: a run's manifest holds all of it. A recorded sweep (the
sweep file and each run's manifest) is enough, which is how the committed notebook 06 renders
without training (``emotune/sweep_notebook.py``).
"""

from __future__ import annotations

import json
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .core.errors import ConfigError
from .core.roles import Role
from .series import DEFAULT_PARAMETERS

AXIS = "n_train"
MODELS = (Role.FINE_TUNED, Role.FREE_BASELINE, Role.BASE)
ALPHA = 0.05
VERSUS = f"{Role.FINE_TUNED} - {Role.FREE_BASELINE}"
MAX_JSON_BYTES = 16 * 2**20


def default_sweep_recording() -> Path:
    """The recorded sweep the committed notebook 06 reads: ``notebooks/recorded-sweep/`` in a source
    checkout."""
    return Path(__file__).resolve().parent.parent / "notebooks" / "recorded-sweep"


def _json(path: Path):
    """A JSON file emotune wrote: a regular file (a FIFO planted there would block the read) of at
    most MAX_JSON_BYTES, else ConfigError; None where there is no file."""
    try:
        info = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_JSON_BYTES:
        why = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"{info.st_size:,} bytes"
        raise ConfigError(f"{path}: {why}; emotune writes a JSON file of at most 16 MiB there")
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc!s:.80})") from None


def read_plan(folder: Path) -> dict:
    """A sweep folder's plan (``sweep.json``): its name and its runs' names and parameters."""
    plan = _json(folder / "sweep.json")
    if plan is None:
        raise ConfigError(f"{folder}: no sweep.json here, so not a sweep folder")
    try:
        runs = [(str(r["name"]), dict(r["parameters"])) for r in plan["runs"]]
        name = str(plan.get("name", folder.name))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{folder / 'sweep.json'}: not a sweep plan ({exc!s:.80})") from None
    if any(n in ("", ".", "..") or "/" in n or "\\" in n for n, _ in runs):
        raise ConfigError(f"{folder / 'sweep.json'}: a run name is not a folder name")
    return {"name": name, "runs": runs}


def finished_manifests(folder: Path) -> dict[str, dict]:
    """The manifests of the plan's finished runs (those with notebook 05's verdict), by run name."""
    runs = read_plan(folder)["runs"]
    return {name: m for name, _ in runs if (m := _manifest(folder / name)) is not None}


def _manifest(path: Path) -> dict | None:
    """A finished run's manifest (one with a verdict), else None."""
    m = _json(path / "manifest.json")
    if not isinstance(m, dict) or not isinstance(m.get("evaluation"), dict):
        return None
    verdict = m["evaluation"].get("verdict")
    return m if isinstance(verdict, dict) and verdict.get("answer") else None


def _point_rows(name: str, size: int, seed: int, m: dict) -> list[dict]:
    verdict = m["evaluation"]["verdict"]
    level = verdict.get("taxonomy")
    scores = {
        r["model"]: r
        for r in m["evaluation"].get("scores") or []
        if r.get("level") == level and r.get("metric") == "macro_f1"
    }
    rows = []
    for model in MODELS:
        if model in scores:
            r = scores[model]
            rows.append(
                dict(run=name, size=size, seed=seed, model=str(model), macro_f1=r["value"])
                | dict(ci_low=r.get("ci_low"), ci_high=r.get("ci_high"))
            )
    return rows


def _test_row(name: str, size: int, seed: int, m: dict) -> dict | None:
    verdict = m["evaluation"]["verdict"]
    for c in verdict.get("comparisons") or []:
        if c.get("comparison") == VERSUS and c.get("metric") == "macro_f1":
            draws = [
                d["macro_f1"]
                for d in ((verdict.get("seed_spread") or {}).get("per_seed") or {}).values()
            ]
            return dict(run=name, size=size, seed=seed, difference=c["difference"]) | {
                "ci_low": c.get("95% CI low (unadjusted)"),
                "ci_high": c.get("95% CI high (unadjusted)"),
                "p": c["p"],
                "comments": c.get("comments"),
                "baseline draws": len(draws) or None,
                "baseline draws lowest": min(draws, default=None),
                "baseline draws highest": max(draws, default=None),
            }
    return None


def _cost_row(name: str, size: int, seed: int, m: dict) -> dict:
    costs = m["evaluation"]["verdict"].get("costs") or {}
    job = m.get("job") or {}
    stages = m.get("stages") or {}
    return dict(run=name, size=size, seed=seed) | {
        "training steps": _steps(size, job),
        "trained tokens": job.get("trained_tokens"),
        "training s": costs.get("training_seconds"),
        "answers s per 1k": costs.get("seconds_online"),
        "series min": round(sum(s.get("seconds") or 0 for s in stages.values()) / 60, 1),
        "training USD": costs.get("training_usd"),
        "USD per 1k answers": costs.get("usd_online"),
    }


def _recipe(m: dict) -> tuple:
    """Every parameter of a run but the curve's axis, the seed and its name and folder."""
    params = DEFAULT_PARAMETERS | (m.get("parameters") or {})
    skip = (AXIS, "seed", "run_name", "run_dir")
    return tuple(sorted((k, str(v)) for k, v in params.items() if k not in skip))


def _differs(recipe: tuple, common: tuple) -> str:
    ours, theirs = dict(recipe), dict(common)
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return ", ".join(f"{k} {ours.get(k)} vs the curve's {theirs.get(k)}" for k in keys)


def _steps(size: int, job: dict) -> int | None:
    """Optimiser steps: epochs times the batches of one epoch (the last batch may be short)."""
    epochs, batch = job.get("n_epochs"), job.get("batch_size")
    if not isinstance(epochs, int) or not isinstance(batch, int) or batch < 1:
        return None
    return epochs * -(-size // batch)


@dataclass(frozen=True)
class LearningCurve:
    """A sweep's finished runs as a learning curve: ``points`` (run, size, seed, model, macro-F1
    and its interval), ``tests`` (each run's fine-tune minus free baseline, p Holm-corrected across
    the curve), ``costs`` (one row per run), ``pending`` (runs of the plan not finished) and
    ``left_out`` (finished runs whose other parameters differ from the curve's: one curve holds one
    recipe)."""

    name: str
    points: pd.DataFrame
    tests: pd.DataFrame
    costs: pd.DataFrame
    pending: tuple[str, ...]
    left_out: tuple[str, ...]
    compared: str
    comments: tuple[int, ...]
    epochs: tuple

    @property
    def sizes(self) -> list[int]:
        return sorted(self.points["size"].unique().tolist())

    @property
    def seeds(self) -> list[int]:
        return sorted(self.points["seed"].unique().tolist())

    def by_size(self) -> pd.DataFrame:
        """Per training size and model: the mean macro-F1 over seeds, the lowest and highest seed,
        and how many seeds."""
        grouped = self.points.groupby(["size", "model"], sort=True)["macro_f1"]
        out = grouped.agg(mean="mean", lowest="min", highest="max", seeds="count")
        return out.unstack("model").swaplevel(axis=1).sort_index(axis=1)

    def cost_table(self) -> pd.DataFrame:
        """The costs, without the columns no run has (dollars on a backend that bills none)."""
        return self.costs.dropna(axis=1, how="all")

    def wins(self) -> pd.Series:
        """Per training size: whether every seed of the curve has a run there whose fine-tune is
        ahead of the free baseline (difference above 0, Holm-adjusted p < 0.05). A size where a
        seed's run is missing is not won."""
        t = self.tests
        won = t[(t["difference"] > 0) & (t["p_holm"] < ALPHA)]
        seeds = set(self.seeds)
        return pd.Series(
            {size: set(won.loc[won["size"] == size, "seed"]) >= seeds for size in self.sizes},
            dtype=bool,
        )

    def overtakes_at(self) -> int | None:
        """Where the fine-tune overtakes the free baseline by a test: the smallest training size
        from which on (at it and at every larger size of the sweep) it is ahead on every seed. Not a
        crossing of the means: below it the fine-tune may be ahead without a test saying so. None
        where no size qualifies."""
        found = None
        for size, won in reversed(list(self.wins().items())):
            if not won:
                break
            found = size
        return found

    def sentence(self) -> str:
        """What the curve shows, in words computed from the tests."""
        at, tests, wins = self.overtakes_at(), self.tests, self.wins()
        sizes = ", ".join(f"{s:,}" for s in self.sizes)
        low, high = min(self.comments), max(self.comments)
        judged = f"{low:,}" if low == high else f"{low:,} to {high:,}"
        head = (
            f"{len(self.sizes)} training sizes ({sizes}) x {len(self.seeds)} seed(s), each run "
            f"judged on {judged} test comments; {len(tests)} tests, Holm-corrected together: "
        )
        if at is not None:
            rows = tests[tests["size"] >= at]
            return head + (
                f"from {at:,} training comments on, the fine-tune beats the free baseline on every "
                f"seed (macro-F1 gain {rows['difference'].min():+.3f} to "
                f"{rows['difference'].max():+.3f}, Holm-adjusted permutation p <= "
                f"{rows['p_holm'].max():.4f})."
            )
        some = [f"{s:,}" for s, won in wins.items() if won]
        found = (
            f"the fine-tune beats the free baseline on every seed at {', '.join(some)}, but not at "
            "every larger size, so no size settles it"
            if some
            else "at no training size does the fine-tune beat the free baseline on every seed"
        )
        lost = tests[(tests["difference"] < 0) & (tests["p_holm"] < ALPHA)]
        behind = (
            f"; the free baseline is ahead, significantly, in {len(lost)} of {len(tests)} runs "
            f"(at {', '.join(f'{s:,}' for s in sorted(set(lost['size'])))} comments)"
            if len(lost)
            else ""
        )
        return head + found + f" (Holm-adjusted p < {ALPHA})" + behind + "."


def _size(m: dict) -> int:
    """The training sample's size: the rows notebook 01 drew (``n_train=0`` takes the whole
    split)."""
    rows = ((m.get("samples") or {}).get("train") or {}).get("rows")
    return int(rows if rows is not None else (m.get("parameters") or {})[AXIS])


def load_curve(folder: str | Path = "") -> LearningCurve:
    """Read a sweep folder (empty: the recorded sweep) as a learning curve over ``n_train``."""
    from statsmodels.stats.multitest import multipletests

    folder = Path(folder) if str(folder) else default_sweep_recording()
    plan = read_plan(folder)
    finished = finished_manifests(folder)
    pending = [name for name, _ in plan["runs"] if name not in finished]
    recipes = {name: _recipe(m) for name, m in finished.items()}
    common = Counter(recipes.values()).most_common(1)[0][0] if recipes else ()
    left_out = [f"{n} ({_differs(r, common)})" for n, r in recipes.items() if r != common]
    points, tests, costs, compared, comments, epochs = [], [], [], set(), set(), set()
    for name, m in finished.items():
        if recipes[name] != common:
            continue
        try:
            size, seed = _size(m), int((m.get("parameters") or {}).get("seed", 0))
            rows = _point_rows(name, size, seed, m)
            test = _test_row(name, size, seed, m)
            costs.append(_cost_row(name, size, seed, m))
            verdict = m["evaluation"]["verdict"]
            compared.add(str(verdict.get("compared", "")))
            comments.add(int(verdict.get("n_items") or 0))
            epochs.add((m.get("job") or {}).get("n_epochs"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{folder / name / 'manifest.json'}: not a manifest emotune wrote "
                f"({type(exc).__name__}: {exc!s:.80})"
            ) from None
        if not any(r["model"] == Role.FINE_TUNED for r in rows) or test is None:
            raise ConfigError(
                f"{name}: its evaluation has no fine-tuned macro-F1 compared with a free baseline; "
                "a learning curve needs both (notebook 05 with a fine-tune and its baseline)"
            )
        points += rows
        tests.append(test)
    if not points:
        raise ConfigError(f"{folder}: no finished run yet (each needs notebook 05's verdict)")
    sizes = {p["size"] for p in points}
    if len(sizes) < 2:
        raise ConfigError(
            f"{folder}: every finished run trained on {sizes.pop():,} comments; a learning curve "
            "needs a sweep over n_train (e.g. -p n_train=100,300,1000)"
        )
    tests_frame = pd.DataFrame(tests)
    holm = multipletests(tests_frame["p"], alpha=ALPHA, method="holm")[1]
    tests_frame.insert(tests_frame.columns.get_loc("p") + 1, "p_holm", holm)
    return LearningCurve(
        name=plan["name"],
        points=pd.DataFrame(points),
        tests=tests_frame,
        costs=pd.DataFrame(costs).set_index("run"),
        pending=tuple(pending),
        left_out=tuple(left_out),
        compared="; ".join(sorted(c for c in compared if c)),
        comments=tuple(sorted(comments)),
        epochs=tuple(sorted(e for e in epochs if e is not None)),
    )
