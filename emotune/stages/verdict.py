"""Notebook 05's answer to "was the fine-tune worth it?": computed from the comparisons, never written by
hand.

Four answers are possible, decided on the headline metric (macro-F1 over every label with gold examples)
with the Holm-corrected permutation p-values of :func:`emotune.stages.evaluate.compare_models`:

1. :data:`BASELINE_BETTER`: the free baseline beats the fine-tuned model, whatever the base model does;
2. :data:`WORTH_IT`: the fine-tuned model beats the base model **and** the free baseline;
3. :data:`BASELINE_AS_GOOD`: it beats the base model, and the free baseline is as good as far as this sample
shows;
4. :data:`NO_GAIN`: no difference from the base model that this sample can detect.

The sentence names what was really compared on this backend (a label-name matcher and a TF-IDF learner on
the local backend, an open-weights LLM and its LoRA adapter, or OpenAI models) and what its money figures
mean; the same sentence goes to the manifest, ``emotune show`` and the rendered index page.
"""

from __future__ import annotations

import math

import pandas as pd

from ..core.manifest import EvaluationRecord

WORTH_IT = "the fine-tune is worth it"
BASELINE_AS_GOOD = "a free baseline does as well"
BASELINE_BETTER = "a free baseline does better"
NO_GAIN = "no detectable gain at this sample size"
HEADLINE_METRIC = "macro_f1"


def _row(comparisons: pd.DataFrame, other: str, metric: str) -> pd.Series | None:
    hit = comparisons[(comparisons.comparison == f"fine-tuned - {other}") & (comparisons.metric == metric)]
    return None if hit.empty else hit.iloc[0]


def decide(vs_base: pd.Series | None, vs_baseline: pd.Series | None) -> str:
    """One of the four answers from the two headline comparisons (a significant gain is p < 0.05 after Holm
    and a positive difference; a significant loss, the same with a negative one)."""

    def gains(row):
        return row is not None and bool(row["significant"]) and row["difference"] > 0

    if vs_baseline is not None and bool(vs_baseline["significant"]) and vs_baseline["difference"] < 0:
        return BASELINE_BETTER
    if not gains(vs_base):
        return NO_GAIN
    return WORTH_IT if gains(vs_baseline) else BASELINE_AS_GOOD


def _p(p: float) -> str:
    return f"p = {p:.4f}"


def _versus(row: pd.Series, name: str) -> str:
    return (
        f"vs {name} {row['other']:.3f}: {row['difference']:+.3f} (95% CI {row['ci_low']:+.3f} to "
        f"{row['ci_high']:+.3f}, "
        f"Holm-adjusted permutation {_p(row['p (Holm)'])})"
    )


def _cost_words(cost: pd.DataFrame, training_usd: float | None, training_seconds: float | None) -> str:
    row = cost.loc["fine-tuned"] if "fine-tuned" in cost.index else None
    online = None if row is None else row.get("USD per 1,000 (online)")
    if online is not None and not (isinstance(online, float) and math.isnan(online)):
        words = f"1,000 predictions cost ${online:.3f} online (${row['USD per 1,000 (batch)']:.3f} by Batch)"
        return words + (f", after ${training_usd:.2f} of training" if training_usd is not None else "")
    timed = row.get("compute s per 1,000 (online)") if row is not None else None
    if timed is not None and not math.isnan(timed):
        words = f"1,000 predictions take {timed:,.0f} compute seconds online on this machine"
        return words + (
            f", after {training_seconds:,.0f} compute seconds of training"
            if training_seconds is not None
            else ""
        )
    if training_seconds is not None:
        pricing = row["pricing"] if row is not None else ""
        return f"training took {training_seconds:,.0f} compute seconds; no dollar price ({pricing})"
    return f"no dollar price ({row['pricing']})" if row is not None else "no price"


def verdict(
    comparisons: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    taxonomy: str,
    cost: pd.DataFrame,
    training_usd: float | None = None,
    training_seconds: float | None = None,
    compared: str = "",
    metric: str = HEADLINE_METRIC,
) -> dict:
    """The verdict: its answer, a sentence with the intervals behind it, and a headline figure line."""
    vs_base, vs_baseline = _row(comparisons, "base", metric), _row(comparisons, "free baseline", metric)
    answer = decide(vs_base, vs_baseline)
    n = int(comparisons["comments"].iloc[0]) if len(comparisons) else 0
    parts = [f"Verdict: {answer}" + (f" ({compared})" if compared else "") + "."]
    if vs_base is not None:
        parts.append(
            f"On {n:,} test comments ({taxonomy} labels), macro-F1 of the fine-tuned model "
            f"{vs_base['fine-tuned']:.3f} "
            + _versus(vs_base, "base")
            + ("; " + _versus(vs_baseline, "the free baseline") if vs_baseline is not None else "")
            + "."
        )
    micro = [
        (name, r)
        for name, r in (
            ("base", _row(comparisons, "base", "micro_f1")),
            ("the free baseline", _row(comparisons, "free baseline", "micro_f1")),
        )
        if r is not None
    ]
    if micro and metric != "micro_f1":
        parts.append(
            "Micro-F1, for comparison: "
            + "; ".join(f"{r['difference']:+.3f} vs {name} (Holm {_p(r['p (Holm)'])})" for name, r in micro)
            + "."
        )
    cost_words = _cost_words(cost, training_usd, training_seconds)
    parts.append(cost_words[:1].upper() + cost_words[1:] + ".")
    level = scores[(scores.level == taxonomy) & (scores.metric == metric)].set_index("model")
    headline = f"Headline macro-F1 (95% BCa interval) on {n:,} test comments: " + "; ".join(
        f"{name} {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for name, r in level.iterrows()
    )
    return {
        "answer": answer,
        "sentence": " ".join(parts),
        "headline": headline,
        "metric": metric,
        "taxonomy": taxonomy,
        "n_items": n,
        "compared": compared,
        "comparisons": comparisons.to_dict("records"),
        "training_usd_estimate": training_usd,
        "training_seconds": training_seconds,
    }


def record_evaluation(run, result: dict, scores: pd.DataFrame, frame: pd.DataFrame) -> dict:
    """Write the verdict, the score table and the evaluated ids into the manifest (this stage's section)."""
    run.put(
        EvaluationRecord(verdict=result, scores=scores.to_dict("records"), sample_ids=frame["id"].tolist())
    )
    return result
