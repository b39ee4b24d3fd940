"""Notebook 05's steps: predictions for every comparator (each asked by its role), the free
baseline, the comparisons that answer "was it worth it?", error analysis. The verdict itself is in
:mod:`.verdict`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import PredictionError
from ..core.manifest import EvaluationRecord
from ..core.prompts import PromptSpec
from ..core.roles import Role
from ..core.taxonomy import Taxonomy
from .baselines import gold_labels  # noqa: F401  (evaluate.gold_labels)
from .metrics import to_matrix
from .predict import PredictionCache, Predictions, classify
from .statistics import N_RESAMPLES, Comparison, LabelSets, bca_intervals, compare, holm

CACHE_FILE = "predictions/cache.jsonl"
BASE_ON_TRAINING_PROMPT = Role.BASE_ON_TRAINING_PROMPT
COMPARED_METRICS = ("macro_f1", "macro_f1_supported", "micro_f1")


def open_cache(run) -> PredictionCache:
    """The run's prediction cache (``predictions/cache.jsonl``)."""
    return PredictionCache(run.file(CACHE_FILE))


def prompt_specs(trained: PromptSpec) -> dict[str, PromptSpec]:
    """How each comparator is asked, by role: the base model with a zero-shot prompt that lists
    every label and the answer format (a model that was never trained cannot know the labels
    otherwise); the fine-tuned model with exactly the spec it was trained on; and the base model on
    that training prompt too, so the table can show what the prompt alone buys."""
    zero_shot = PromptSpec.resolve("zero-shot", trained.label_format, trained.taxonomy)
    return {Role.BASE: zero_shot, Role.FINE_TUNED: trained, Role.BASE_ON_TRAINING_PROMPT: trained}


def predict_models(
    conn,
    run,
    models: dict[str, str],
    frame: pd.DataFrame,
    *,
    cache: PredictionCache,
    specs: dict[str, PromptSpec],
    seed: int,
    **kw,
) -> dict[str, Predictions]:
    """Ask every model about every row with its prompt (``specs``, see :func:`prompt_specs`) and
    the same
    sampling; only uncached rows cost anything."""
    out = {}
    for name, model in models.items():
        out[name] = classify(conn, model, frame, cache=cache, spec=specs[name], seed=seed, **kw)
        missing = len(frame) - len(out[name].frame)
        if missing:
            raise PredictionError(
                f"{name}: {missing} predictions failed after retries ({out[name].failures[:3]}); "
                "run the cell again to ask for just those"
            )
    run.put(EvaluationRecord(usage={name: p.summary() for name, p in out.items()}))
    return out


def usage_table(predictions: dict[str, Predictions]) -> pd.DataFrame:
    """Requests sent, answers from the cache, tokens and parse rates per model."""
    return pd.DataFrame(
        [p.summary() | {"comparator": name} for name, p in predictions.items()]
    ).set_index("comparator")


def error_analysis(frame: pd.DataFrame, gold, base, tuned, k: int = 8) -> pd.DataFrame:
    """Comments the fine-tune fixed (base wrong, fine-tuned exactly right) and broke (the
    reverse)."""
    rows = []
    for text, g, b, t in zip(frame["text"], gold, base, tuned, strict=True):
        g, b, t = set(g), set(b), set(t)
        if (b == g) != (t == g):
            rows.append(
                {
                    "change": "fixed" if t == g else "broke",
                    "comment": text,
                    "gold": ", ".join(sorted(g)),
                    Role.BASE: ", ".join(sorted(b)),
                    Role.FINE_TUNED: ", ".join(sorted(t)),
                }
            )
    out = pd.DataFrame(rows, columns=["change", "comment", "gold", Role.BASE, Role.FINE_TUNED])
    return pd.concat(
        [out[out.change == "fixed"].head(k), out[out.change == "broke"].head(k)], ignore_index=True
    )


def side_by_side(
    frame: pd.DataFrame, gold, predictions: dict[str, Predictions], baseline, k: int = 15
) -> pd.DataFrame:
    """The first ``k`` comments with their gold labels, each model's raw answer as it came back,
    and the free baseline's labels: what the scores are made of."""
    rows = {"comment": frame["text"].head(k), "gold": [", ".join(g) for g in gold[:k]]}
    for name, p in predictions.items():
        rows[f"{name}: raw answer"] = p.frame["answer"].head(k).tolist()
    rows[f"{Role.FREE_BASELINE}: labels"] = [", ".join(b) for b in baseline[:k]]
    return pd.DataFrame({c: list(v) for c, v in rows.items()})


USD_ONLINE_COLUMN = "USD per 1,000 (online)"
USD_BATCH_COLUMN = "USD per 1,000 (batch)"
COMPUTE_COLUMN = "compute s per 1,000 (online)"


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


@dataclass(frozen=True)
class CostRow:
    """What 1,000 predictions of one comparator cost: dollars online and by Batch where priced, else
    the compute seconds online where timed (``None`` where not known), rounded as the table shows
    them."""

    comparator: str
    usd_online: float | None
    usd_batch: float | None
    compute_seconds_online: float | None
    pricing: str  # the provider's pricing note, or "not priced (...)"
    items: int  # the answers the figures are averaged over


@dataclass(frozen=True)
class CostTable:
    """:func:`cost_per_1000`'s answer: one :class:`CostRow` per comparator; :meth:`to_frame` is
    the table."""

    rows: tuple[CostRow, ...]

    def get(self, comparator: str) -> CostRow | None:
        """The row of ``comparator``, if it was priced."""
        return next((r for r in self.rows if r.comparator == comparator), None)

    @property
    def priced(self) -> bool:
        """Whether any comparator has a dollar price (else the axis is compute seconds)."""
        return any(r.usd_online is not None for r in self.rows)

    def axis_values(self) -> pd.Series:
        """Per comparator, what a cost-vs-quality plot puts on its x axis (see
        :func:`cost_axis`); NaN where
        not known."""
        values = [r.usd_online if self.priced else r.compute_seconds_online for r in self.rows]
        return pd.Series(
            [_nan(v) for v in values],
            index=[r.comparator for r in self.rows],
            dtype=float,
            name=cost_axis(self),
        )

    def to_frame(self) -> pd.DataFrame:
        """The display table: one row per comparator; columns no row has are left out."""
        rows = [
            {
                "comparator": r.comparator,
                USD_ONLINE_COLUMN: _nan(r.usd_online),
                USD_BATCH_COLUMN: _nan(r.usd_batch),
                COMPUTE_COLUMN: _nan(r.compute_seconds_online),
                "pricing": r.pricing,
                "items": r.items,
            }
            for r in self.rows
        ]
        return pd.DataFrame(rows).set_index("comparator").dropna(axis=1, how="all")


def cost_per_1000(conn, predictions: dict[str, Predictions], models: dict[str, str]) -> CostTable:
    """What 1,000 predictions cost on this provider, from the tokens the answers used (online and
    Batch).

    The price comes from the provider: OpenAI's dollars, what OpenAI would charge (local backend),
    or nothing ("not priced": an open-weights model costs compute time, an unknown server has no
    price list). Unpriced models get their compute time instead: wall seconds per 1,000 online
    answers, from the first to the last answer of the pass (at the concurrency the predictor ran).
    ``to_frame()`` leaves out the columns no row has.
    """
    rows = []
    for name, p in predictions.items():
        model = models[name]
        pricing = conn.pricing(model)
        n = max(len(p.frame), 1)
        prompt, completion = p.prompt_tokens / n, p.completion_tokens / n
        tuned = model.startswith("ft:")
        online = pricing.usd_per_1000(prompt, completion, fine_tuned=tuned)
        batch = pricing.usd_per_1000(prompt, completion, fine_tuned=tuned, batch=True)
        timed = (
            None
            if pricing.in_dollars or p.seconds_per_answer is None
            else 1000 * p.seconds_per_answer
        )
        rows.append(
            CostRow(
                name,
                None if online is None else round(online, 4),
                None if batch is None else round(batch, 4),
                None if timed is None else round(timed, 1),
                pricing.note if pricing.in_dollars else f"not priced ({pricing.note})",
                n,
            )
        )
    return CostTable(tuple(rows))


def cost_axis(cost: CostTable) -> str:
    """The column a cost-vs-quality plot puts on its x axis: dollars where priced, else compute
    seconds."""
    return USD_ONLINE_COLUMN if cost.priced else COMPUTE_COLUMN


# the verdict's family: fine-tune vs base and vs the baseline on macro-F1
PRIMARY_METRIC = "macro_f1"


@dataclass(frozen=True)
class Comparisons:
    """The fine-tune against each comparator, in two Holm families: the primary one (macro-F1,
    which the
    verdict decides on) and the secondary one (the other metrics, reported beside it)."""

    rows: tuple[tuple[str, str, Comparison], ...]  # (comparator, family, comparison)
    model: str = Role.FINE_TUNED

    def get(self, other: str, metric: str = PRIMARY_METRIC) -> Comparison | None:
        """The comparison of the fine-tune with ``other`` on ``metric``, if it was made."""
        return next((c for o, _, c in self.rows if o == other and c.metric == metric), None)

    @property
    def n_items(self) -> int:
        return self.rows[0][2].n_items if self.rows else 0

    def to_frame(self) -> pd.DataFrame:
        """One row per test: intervals are unadjusted; p (Holm) is adjusted within its family."""
        return pd.DataFrame(
            [
                {
                    "comparison": f"{self.model} - {other}",
                    "metric": c.metric,
                    "family": family,
                    self.model: c.b,
                    "other": c.a,
                    "difference": c.difference,
                    "95% CI low (unadjusted)": c.ci_low,
                    "95% CI high (unadjusted)": c.ci_high,
                    "90% CI low (TOST)": c.eq_low,
                    "90% CI high (TOST)": c.eq_high,
                    "p": c.p_value,
                    "p (Holm, within family)": c.p_holm,
                    "significant": c.significant,
                    "comments": c.n_items,
                }
                for other, family, c in self.rows
            ]
        )


def compare_models(
    gold,
    predictions: dict[str, list],
    taxonomy: Taxonomy,
    *,
    against: tuple[str, ...] = (Role.BASE, Role.FREE_BASELINE),
    model: str = Role.FINE_TUNED,
    metrics: tuple[str, ...] = COMPARED_METRICS,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Comparisons:
    """``model`` against each comparator on the same comments: the difference, its paired BCa
    intervals (95%, and 90% for equivalence) and the paired permutation test's p, Holm-corrected
    within each family.

    The primary family is macro-F1 against each comparator (what the verdict decides on); the other
    metrics form a secondary family. Macro-F1 over the supported labels is left out when every label
    is supported (it would repeat the macro-F1 test).
    """
    tax = taxonomy
    y = to_matrix(gold, tax)
    labels = LabelSets.of(y)
    tuned = to_matrix(predictions[model], tax)
    if (
        labels.supported == labels.present
    ).all():  # every label has enough examples: the same test twice
        metrics = tuple(m for m in metrics if m != "macro_f1_supported")
    tests = [
        (other, "primary" if metric == PRIMARY_METRIC else "secondary", metric)
        for other in against
        if other in predictions
        for metric in metrics
    ]
    done = {
        (other, metric): compare(
            y,
            to_matrix(predictions[other], tax),
            tuned,
            metric,
            labels=labels,
            seed=seed,
            n_resamples=n_resamples,
        )
        for other, _, metric in tests
    }
    rows = []
    for family in ("primary", "secondary"):
        members = [(o, m) for o, f, m in tests if f == family]
        for (other, _), c in zip(members, holm([done[k] for k in members]), strict=True):
            rows.append((other, family, c))
    return Comparisons(tuple(rows), model)


def prompt_effect(
    gold, predictions: dict[str, Predictions], taxonomy: Taxonomy, *, seed: int = 0
) -> pd.DataFrame:
    """The base model on its zero-shot prompt and on the fine-tune's training prompt: what the
    prompt alone
    buys."""
    tax = taxonomy
    y = to_matrix(gold, tax)
    rows = []
    for name, prompt in (
        (Role.BASE, "zero-shot, lists every label"),
        (Role.BASE_ON_TRAINING_PROMPT, "training prompt"),
    ):
        if name in predictions:
            ci = bca_intervals(y, to_matrix(predictions[name].labels(), tax), seed=seed)
            rows.append(
                {
                    "prompt": prompt,
                    "parse ok %": predictions[name].summary()["parse ok %"],
                    "macro_f1": ci["macro_f1"][0],
                    "macro_f1 95% CI": f"{ci['macro_f1'][1]:.3f} to {ci['macro_f1'][2]:.3f}",
                    "micro_f1": ci["micro_f1"][0],
                    "exact_match": ci["exact_match"][0],
                }
            )
    return pd.DataFrame(rows).set_index("prompt")


def interval_widths(
    table: pd.DataFrame, level: str, metrics: tuple[str, ...] = ("macro_f1", "micro_f1")
) -> str:
    """One sentence on how precise this sample size makes the scores (mean 95% interval width per
    metric)."""
    t = table[(table.level == level) & table.metric.isin(metrics)]
    widths = (t.ci_high - t.ci_low).groupby(t.metric).mean()
    return ", ".join(f"{m} +/- {w / 2:.3f}" for m, w in widths.items())


PREDICTION_DIR = "predictions"


def prediction_file(name: str) -> str:
    """The file of one comparator's answers: ``predictions/<name, lower case, dashes>.jsonl``."""
    slug = "-".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())
    return f"{PREDICTION_DIR}/{slug}.jsonl"


def save_predictions(
    run, frame: pd.DataFrame, labels: dict[str, list[list[str]]], answers: dict[str, Predictions]
) -> dict[str, str]:
    """Every comparator's answers by comment id, one JSON line each: ``{"id", "labels"}``, plus
    ``"answer"``
    (the raw text) for the models asked through the API; returns the file of each comparator."""
    files = {}
    for name, label_lists in labels.items():
        out = pd.DataFrame({"id": frame["id"].astype(str).tolist(), "labels": label_lists})
        if name in answers:
            raw = answers[name].frame.set_index("id")["answer"]
            out["answer"] = out["id"].map(raw)
        files[name] = prediction_file(name)
        run.write_frame(files[name], out)
    run.put(EvaluationRecord(prediction_files=files))
    return files
