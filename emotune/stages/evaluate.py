"""Notebook 05's steps: predictions for every comparator (each asked by its role), the free baseline, the
comparisons that answer "was it worth it?", error analysis. The verdict itself is in :mod:`.verdict`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import PredictionError
from ..core.manifest import EvaluationRecord
from ..core.prompts import PromptSpec, example_labels
from ..core.taxonomy import get_taxonomy
from .batch import classify_batch
from .metrics import to_matrix
from .predict import PredictionCache, Predictions, classify
from .statistics import N_RESAMPLES, LabelSets, bca_intervals, compare, holm

CACHE_FILE = "predictions/cache.jsonl"
BASE_ON_TRAINING_PROMPT = "base, training prompt"
COMPARED_METRICS = ("macro_f1", "macro_f1_supported", "micro_f1")
BATCH_CHECK_FILE = "predictions/batch-check.jsonl"


def gold_labels(frame: pd.DataFrame, taxonomy: str | None = None) -> list[list[str]]:
    """Each row's gold labels as names at the chosen level."""
    return [example_labels(ids, taxonomy) for ids in frame["labels"]]


def open_cache(run) -> PredictionCache:
    """The run's prediction cache (``predictions/cache.jsonl``)."""
    return PredictionCache(run.file(CACHE_FILE))


def prompt_specs(trained: PromptSpec) -> dict[str, PromptSpec]:
    """How each comparator is asked, by role: the base model with a zero-shot prompt that lists every label
    and the answer format (a model that was never trained cannot know the labels otherwise); the fine-tuned
    model with exactly the spec it was trained on; and the base model on that training prompt too, so the
    table can show what the prompt alone buys."""
    zero_shot = PromptSpec.resolve("zero-shot", trained.label_format, trained.taxonomy)
    return {"base": zero_shot, "fine-tuned": trained, BASE_ON_TRAINING_PROMPT: trained}


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
    """Ask every model about every row with its prompt (``specs``, see :func:`prompt_specs`) and the same
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
    return pd.DataFrame([p.summary() | {"comparator": name} for name, p in predictions.items()]).set_index(
        "comparator"
    )


@dataclass
class Baseline:
    """TF-IDF + one-vs-rest logistic regression (liblinear), thresholds tuned for macro-F1 on the validation
    sample."""

    pipeline: object
    thresholds: np.ndarray
    labels: tuple[str, ...]

    def predict(self, texts) -> list[list[str]]:
        probs = self.pipeline.predict_proba(list(texts))
        decided = probs >= self.thresholds
        empty = ~decided.any(axis=1)
        decided[empty, probs[empty].argmax(axis=1)] = True
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in decided]


def train_baseline(
    train: pd.DataFrame, validation: pd.DataFrame, taxonomy: str | None = None, seed: int = 0
) -> Baseline:
    """The free classical comparator, trained on the same training sample as the fine-tune."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    from ..core.thresholds import tune_thresholds

    tax = get_taxonomy(taxonomy)
    y = to_matrix(gold_labels(train, taxonomy), tax)
    keep = y.sum(axis=0) > 0  # a label never seen in training can't be learned
    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        OneVsRestClassifier(LogisticRegression(C=4.0, solver="liblinear", random_state=seed)),
    )
    pipe.fit(train["text"].tolist(), y[:, keep])
    yv = to_matrix(gold_labels(validation, taxonomy), tax)[:, keep]
    thresholds = tune_thresholds(pipe.predict_proba(validation["text"].tolist()), yv)
    return Baseline(pipe, thresholds, tuple(np.array(tax.labels)[keep]))


def error_analysis(frame: pd.DataFrame, gold, base, tuned, k: int = 8) -> pd.DataFrame:
    """Comments the fine-tune fixed (base wrong, fine-tuned exactly right) and broke (the reverse)."""
    rows = []
    for text, g, b, t in zip(frame["text"], gold, base, tuned, strict=True):
        g, b, t = set(g), set(b), set(t)
        if (b == g) != (t == g):
            rows.append(
                {
                    "change": "fixed" if t == g else "broke",
                    "comment": text,
                    "gold": ", ".join(sorted(g)),
                    "base": ", ".join(sorted(b)),
                    "fine-tuned": ", ".join(sorted(t)),
                }
            )
    out = pd.DataFrame(rows, columns=["change", "comment", "gold", "base", "fine-tuned"])
    return pd.concat(
        [out[out.change == "fixed"].head(k), out[out.change == "broke"].head(k)], ignore_index=True
    )


COMPUTE_COLUMN = "compute s per 1,000 (online)"


def cost_per_1000(conn, predictions: dict[str, Predictions], models: dict[str, str]) -> pd.DataFrame:
    """What 1,000 predictions cost on this provider, from the tokens the answers used (online and Batch).

    The price comes from the provider: OpenAI's dollars, what OpenAI would charge (local backend), or nothing
    ("not priced": an open-weights model costs compute time, an unknown server has no price list). Unpriced
    models get their compute time instead: wall seconds per 1,000 online answers, from the first to the last
    answer of the pass (at the concurrency the predictor ran). Columns no row has are left out.
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
        timed = None if pricing.in_dollars or p.seconds_per_answer is None else 1000 * p.seconds_per_answer
        rows.append(
            {
                "comparator": name,
                "USD per 1,000 (online)": np.nan if online is None else round(online, 4),
                "USD per 1,000 (batch)": np.nan if batch is None else round(batch, 4),
                COMPUTE_COLUMN: np.nan if timed is None else round(timed, 1),
                "pricing": pricing.note if pricing.in_dollars else f"not priced ({pricing.note})",
                "items": n,
            }
        )
    return pd.DataFrame(rows).set_index("comparator").dropna(axis=1, how="all")


def cost_axis(cost: pd.DataFrame) -> str:
    """The column a cost-vs-quality plot puts on its x axis: dollars where priced, else compute seconds."""
    return "USD per 1,000 (online)" if "USD per 1,000 (online)" in cost.columns else COMPUTE_COLUMN


def batch_agreement(
    conn, run, model: str, frame: pd.DataFrame, online: list[list[str]], *, spec: PromptSpec, seed: int
) -> str:
    """Ask ``model`` again through the Batch API (where the provider has one) and say how often it agrees
    online."""
    if not conn.batches:
        return (
            f"the {conn.kind} provider has no Batch API: skipped (online answers only, no batch request sent)"
        )
    cache = PredictionCache(run.file(BATCH_CHECK_FILE))
    via_batch = classify_batch(conn, run, model, frame, key="fine-tuned", cache=cache, spec=spec, seed=seed)
    same = sum(a == b for a, b in zip(via_batch.labels(), online, strict=True))
    return f"batch and online answers agree on {same} of {len(frame)} comments"


def compare_models(
    gold,
    predictions: dict[str, list],
    taxonomy: str,
    *,
    against: tuple[str, ...] = ("base", "free baseline"),
    model: str = "fine-tuned",
    metrics: tuple[str, ...] = COMPARED_METRICS,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> pd.DataFrame:
    """``model`` against each comparator on the same comments: the difference, its 95% paired BCa interval and
    the paired permutation test's p, Holm-corrected across the whole table (one family of tests). Macro-F1
    over the supported labels is left out when every label is supported (it would repeat the macro-F1 test).
    """
    tax = get_taxonomy(taxonomy)
    y = to_matrix(gold, tax)
    labels = LabelSets.of(y)
    tuned = to_matrix(predictions[model], tax)
    if (labels.supported == labels.present).all():  # every label has enough examples: the same test twice
        metrics = tuple(m for m in metrics if m != "macro_f1_supported")
    family = [
        (
            other,
            compare(
                y,
                to_matrix(predictions[other], tax),
                tuned,
                metric,
                labels=labels,
                seed=seed,
                n_resamples=n_resamples,
            ),
        )
        for other in against
        if other in predictions
        for metric in metrics
    ]
    corrected = holm([c for _, c in family])
    return pd.DataFrame(
        [
            {
                "comparison": f"{model} - {other}",
                "metric": c.metric,
                model: c.b,
                "other": c.a,
                "difference": c.difference,
                "ci_low": c.ci_low,
                "ci_high": c.ci_high,
                "p": c.p_value,
                "p (Holm)": c.p_holm,
                "significant": c.significant,
                "comments": c.n_items,
            }
            for (other, _), c in zip(family, corrected, strict=True)
        ]
    )


def prompt_effect(gold, predictions: dict[str, Predictions], taxonomy: str, *, seed: int = 0) -> pd.DataFrame:
    """The base model on its zero-shot prompt and on the fine-tune's training prompt: what the prompt alone
    buys."""
    tax = get_taxonomy(taxonomy)
    y = to_matrix(gold, tax)
    rows = []
    for name, prompt in (
        ("base", "zero-shot, lists every label"),
        (BASE_ON_TRAINING_PROMPT, "training prompt"),
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
    """One sentence on how precise this sample size makes the scores (mean 95% interval width per metric)."""
    t = table[(table.level == level) & table.metric.isin(metrics)]
    widths = (t.ci_high - t.ci_low).groupby(t.metric).mean()
    return ", ".join(f"{m} +/- {w / 2:.3f}" for m, w in widths.items())
