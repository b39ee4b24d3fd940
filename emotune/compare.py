"""``emotune compare RUN...``: runs side by side (the parameters that differ, macro- and micro-F1
with their 95% intervals, cost, verdict) and paired tests between runs evaluated on the same test
comments, from what each run saved (its manifest and ``predictions/``); nothing is asked again.

The tests are those notebook 05 uses between models (``stages/statistics.py``): a paired permutation
test and a paired BCa interval of the difference, on the same comments, with Holm's correction
across every difference reported. Runs on different comments cannot be paired: compare refuses,
naming them, rather than test what is not a paired design.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .core.errors import ConfigError
from .core.runs import Run
from .series import DEFAULT_PARAMETERS
from .summary import shown

METRICS = ("macro_f1", "micro_f1")
UNPAIRED = (
    "runs {a} and {b} were evaluated on different test comments ({why}); a paired test needs the "
    "same comments: compare runs with the same seed, n_eval and data, or pass --no-tests for the "
    "table alone"
)


@dataclass(frozen=True)
class RunSummary:
    """What compare reads of one run: its parameters, scores, cost, verdict and test comments."""

    name: str
    path: Path
    parameters: dict
    scores: dict  # (model, metric) -> (value, ci_low, ci_high) at the run's own label level
    verdict: str
    costs: dict
    sample_ids: tuple[str, ...]
    level: str
    prediction_files: dict = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path) -> RunSummary:
        run = Run(path)
        m = run.manifest()
        evaluation = m.get("evaluation") or {}
        verdict = evaluation.get("verdict") or {}
        if not verdict:
            raise ConfigError(f"{path}: no evaluation yet (run notebook 05 on it first)")
        level = verdict.get("taxonomy") or (m.get("parameters") or {}).get("taxonomy", "")
        scores = {
            (r["model"], r["metric"]): (r["value"], r.get("ci_low"), r.get("ci_high"))
            for r in evaluation.get("scores") or []
            if r.get("level") == level
        }
        return cls(
            name=path.name,
            path=path,
            parameters=DEFAULT_PARAMETERS | (m.get("parameters") or {}),
            scores=scores,
            verdict=str(verdict.get("answer", "")),
            costs=verdict.get("costs") or {},
            sample_ids=tuple(str(i) for i in evaluation.get("sample_ids") or []),
            level=level,
            prediction_files=evaluation.get("prediction_files") or {},
        )

    def cost(self) -> str:
        c = self.costs
        if c.get("usd_online") is not None or c.get("training_usd") is not None:
            training, online = c.get("training_usd") or 0, c.get("usd_online") or 0
            return f"${training:,.2f} training + ${online:,.2f}/1k"
        train, online = c.get("training_seconds"), c.get("seconds_online")
        parts = [f"{train:,.0f} s training" if isinstance(train, int | float) else ""]
        parts.append(f"{online:,.1f} s/1k answers" if isinstance(online, int | float) else "")
        return " + ".join(p for p in parts if p) or "n/a"


def resolve(paths: list[str]) -> list[Path]:
    """Run directories from arguments: a run directory, or a sweep folder (its runs, in order)."""
    out = []
    for text in paths:
        p = Path(text)
        if (p / "manifest.json").is_file():
            out.append(p)
        elif (p / "sweep.json").is_file():
            plan = json.loads((p / "sweep.json").read_text("utf-8"))
            out += [
                p / r["name"] for r in plan["runs"] if (p / r["name"] / "manifest.json").is_file()
            ]
        else:
            raise ConfigError(f"{text}: neither a run directory (manifest.json) nor a sweep folder")
    if len(out) < 1:
        raise ConfigError("nothing to compare: give run directories or a sweep folder")
    return out


def _interval(score: tuple | None) -> str:
    if not score:
        return "n/a"
    value, low, high = score
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{value:.3f}"


def table(runs: list[RunSummary], model: str = "fine-tuned") -> pd.DataFrame:
    """One row per run: the parameters that differ between them, ``model``'s macro- and micro-F1
    with 95% BCa intervals, the free baseline's macro-F1, cost and verdict."""
    differing = [
        k
        for k in DEFAULT_PARAMETERS
        if k not in ("run_name", "run_dir") and len({str(r.parameters.get(k)) for r in runs}) > 1
    ]
    rows = []
    for r in runs:
        row = {"run": r.name} | {k: r.parameters.get(k) for k in differing}
        row[f"{model} macro-F1 [95% CI]"] = _interval(r.scores.get((model, "macro_f1")))
        row[f"{model} micro-F1 [95% CI]"] = _interval(r.scores.get((model, "micro_f1")))
        row["free baseline macro-F1"] = _interval(r.scores.get(("free baseline", "macro_f1")))
        row["cost"] = r.cost()
        row["verdict"] = r.verdict
        rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def check_paired(runs: list[RunSummary]) -> None:
    """Refuse (one line) unless every run was evaluated on the same comments at the same level."""
    ref = runs[0]
    for other in runs[1:]:
        why = ""
        if other.level != ref.level:
            why = f"labels at level {ref.level} vs {other.level}"
        elif set(other.sample_ids) != set(ref.sample_ids):
            shared = len(set(other.sample_ids) & set(ref.sample_ids))
            why = f"{len(ref.sample_ids)} vs {len(other.sample_ids)} comments, {shared} in common"
        if why:
            raise ConfigError(UNPAIRED.format(a=ref.name, b=other.name, why=why))


def _answers(run: RunSummary, model: str, ids: list[str]) -> list[list[str]]:
    file = run.prediction_files.get(model)
    if not file or not (run.path / file).is_file():
        raise ConfigError(f"{run.name}: no saved answers of {model!r} (predictions/)")
    by_id = {}
    for line in (run.path / file).read_text("utf-8").splitlines():
        rec = json.loads(line)
        by_id[str(rec["id"])] = rec["labels"]
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ConfigError(f"{run.name}: {len(missing)} test comments lack answers of {model!r}")
    return [by_id[i] for i in ids]


def paired_tests(
    runs: list[RunSummary], model: str = "fine-tuned", metrics: tuple[str, ...] = METRICS
) -> pd.DataFrame:
    """Each run minus the first on ``model``'s answers, on the same comments: difference, paired
    95% BCa interval, permutation p-value and Holm-adjusted p across every row."""
    from .stages.baselines import gold_labels
    from .stages.data import label_set
    from .stages.metrics import to_matrix
    from .stages.statistics import LabelSets, compare, holm

    check_paired(runs)
    ref = runs[0]
    ref_run = Run(ref.path)
    taxonomy = label_set(ref_run, ref.level)
    frame = ref_run.read_frame("eval_sample.jsonl")
    ids = [str(i) for i in frame["id"]]
    y_true = to_matrix(gold_labels(frame, taxonomy), taxonomy)
    labels = LabelSets.of(y_true)
    ref_pred = to_matrix(_answers(ref, model, ids), taxonomy)
    found, names = [], []
    for other in runs[1:]:
        pred = to_matrix(_answers(other, model, ids), taxonomy)
        for metric in metrics:
            found.append(compare(y_true, ref_pred, pred, metric, labels=labels, seed=0))
            names.append(f"{other.name} - {ref.name}")
    rows = [
        {
            "comparison": name,
            "metric": c.metric,
            ref.name if len(runs) == 2 else "first run": c.a,
            "other run": c.b,
            "difference": c.difference,
            "95% CI low": c.ci_low,
            "95% CI high": c.ci_high,
            "p": c.p_value,
            "p (Holm)": c.p_holm,
            "comments": c.n_items,
        }
        for name, c in zip(names, holm(found), strict=True)
    ]
    return pd.DataFrame(rows)


def _say(text: object) -> None:
    print(shown(str(text)))


def cmd_compare(args) -> int:
    runs = [RunSummary.of(p) for p in resolve(args.runs)]
    if not args.no_tests:
        check_paired(runs)  # refused before anything is printed
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        _say(table(runs, args.model).to_string())
        if args.no_tests or len(runs) < 2:
            return 0
        tests = paired_tests(runs, args.model)
        _say(
            f"\npaired tests on the same {len(runs[0].sample_ids):,} test comments ({args.model}):"
        )
        _say(tests.round(4).to_string(index=False))
    return 0


def add_parser(sub) -> None:
    cmp = sub.add_parser("compare", help="table of runs and paired tests between them")
    cmp.add_argument("runs", nargs="+", help="run directories, or a sweep folder for its runs")
    cmp.add_argument("--model", default="fine-tuned", help="the comparator compared across runs")
    cmp.add_argument(
        "--no-tests", action="store_true", help="the table alone (runs on other comments)"
    )
    cmp.set_defaults(func=cmd_compare)
