"""Notebook 05's steps: predictions for every comparator, the free baseline, error analysis, the verdict."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.datasets import dataset_spec
from ..core.errors import PredictionError
from ..core.manifest import EvaluationRecord
from ..core.prompts import PromptSpec, example_labels
from ..core.taxonomy import get_taxonomy
from .metrics import paired_test, to_matrix
from .predict import PredictionCache, Predictions, classify, classify_batch

CACHE_FILE = "predictions/cache.jsonl"
BATCH_CHECK_FILE = "predictions/batch-check.jsonl"


def gold_labels(frame: pd.DataFrame, taxonomy: str | None = None) -> list[list[str]]:
    """Each row's gold labels as names at the chosen level."""
    return [example_labels(ids, taxonomy) for ids in frame["labels"]]


def open_cache(run) -> PredictionCache:
    """The run's prediction cache (``predictions/cache.jsonl``)."""
    return PredictionCache(run.file(CACHE_FILE))


def predict_models(conn, run, models: dict[str, str], frame: pd.DataFrame, *, cache: PredictionCache, spec: PromptSpec,
                   seed: int, **kw) -> dict[str, Predictions]:
    """Ask every model about every row with the same prompt and sampling; only uncached rows cost anything."""
    out = {}
    for name, model in models.items():
        out[name] = classify(conn, model, frame, cache=cache, spec=spec, seed=seed, **kw)
        missing = len(frame) - len(out[name].frame)
        if missing:
            raise PredictionError(f"{name}: {missing} predictions failed after retries ({out[name].failures[:3]}); "
                                  "run the cell again to ask for just those")
    run.put(EvaluationRecord(usage={name: p.summary() for name, p in out.items()}))
    return out


def usage_table(predictions: dict[str, Predictions]) -> pd.DataFrame:
    """Requests sent, answers from the cache, tokens and parse rates per model."""
    return pd.DataFrame([p.summary() | {"comparator": name} for name, p in predictions.items()]).set_index("comparator")


@dataclass
class Baseline:
    """TF-IDF + one-vs-rest logistic regression (liblinear), thresholds tuned on the validation sample."""

    pipeline: object
    thresholds: np.ndarray
    labels: tuple[str, ...]

    def predict(self, texts) -> list[list[str]]:
        probs = self.pipeline.predict_proba(list(texts))
        decided = probs >= self.thresholds
        empty = ~decided.any(axis=1)
        decided[empty, probs[empty].argmax(axis=1)] = True
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in decided]


def train_baseline(train: pd.DataFrame, validation: pd.DataFrame, taxonomy: str | None = None, seed: int = 0) -> Baseline:
    """The free classical comparator, trained on the same training sample as the fine-tune."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    from ..core.thresholds import tune_thresholds

    tax = get_taxonomy(taxonomy)
    y = to_matrix(gold_labels(train, taxonomy), tax)
    keep = y.sum(axis=0) > 0  # a label never seen in training can't be learned
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         OneVsRestClassifier(LogisticRegression(C=4.0, solver="liblinear", random_state=seed)))
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
            rows.append({"change": "fixed" if t == g else "broke", "comment": text, "gold": ", ".join(sorted(g)),
                         "base": ", ".join(sorted(b)), "fine-tuned": ", ".join(sorted(t))})
    out = pd.DataFrame(rows, columns=["change", "comment", "gold", "base", "fine-tuned"])
    return pd.concat([out[out.change == "fixed"].head(k), out[out.change == "broke"].head(k)], ignore_index=True)


def cost_per_1000(conn, predictions: dict[str, Predictions], models: dict[str, str]) -> pd.DataFrame:
    """What 1,000 predictions cost on this provider, from the tokens the answers used (online and Batch).

    The price comes from the provider: OpenAI's dollars, what OpenAI would charge (local backend), or
    nothing ("not priced": an open-weights model costs compute time, an unknown server has no price list).
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
        rows.append({"comparator": name, "USD per 1,000 (online)": np.nan if online is None else round(online, 4),
                     "USD per 1,000 (batch)": np.nan if batch is None else round(batch, 4),
                     "pricing": pricing.note if pricing.in_dollars else f"not priced ({pricing.note})", "items": n})
    return pd.DataFrame(rows).set_index("comparator")


def verdict(gold, base, tuned, *, taxonomy: str, cost: pd.DataFrame, training_usd: float | None, seed: int = 0,
            compared: str = "") -> dict:
    """The headline: macro- and micro-F1 gain with 95% intervals, significance, and the price of it."""
    tax = get_taxonomy(taxonomy)
    y, yb, yt = to_matrix(gold, tax), to_matrix(base, tax), to_matrix(tuned, tax)
    tests = {m: paired_test(y, yb, yt, m, seed=seed) for m in ("macro_f1", "micro_f1")}
    macro = tests["macro_f1"]
    words = "significant" if macro.significant else "not significant"
    per_1000 = float(cost.loc["fine-tuned", "USD per 1,000 (online)"]) if "fine-tuned" in cost.index else None
    per_1000 = None if per_1000 is not None and np.isnan(per_1000) else per_1000
    note = str(cost.loc["fine-tuned", "pricing"]) if "fine-tuned" in cost.index else ""
    out = {
        "taxonomy": tax.name, "n_items": len(gold),
        "macro_f1": {"base": macro.a, "fine_tuned": macro.b, "gain": macro.difference, "ci_low": macro.ci_low,
                     "ci_high": macro.ci_high, "p_value": macro.p_value, "significant": macro.significant},
        "micro_f1": {k: getattr(tests["micro_f1"], k) for k in ("a", "b", "difference", "ci_low", "ci_high", "p_value")},
        "fine_tuned_usd_per_1000": per_1000, "training_usd_estimate": training_usd,
        "reference_macro_f1": dataset_spec().reference_score("macro_f1", tax.name),
    }
    out["compared"], out["pricing"] = compared, note
    out["sentence"] = ((f"{compared}: " if compared else "") + f"Fine-tuning changed macro-F1 by {macro.difference:+.3f} (95% CI {macro.ci_low:+.3f} to "
                       f"{macro.ci_high:+.3f}, paired bootstrap p = {macro.p_value:.3f}, {words}) on {len(gold)} test "
                       f"comments, from {macro.a:.3f} to {macro.b:.3f}"
                       + (f"; 1,000 predictions cost ${per_1000:.3f} ({note})" if per_1000 is not None else f"; {note}")
                       + (f", after ${training_usd:.2f} of training." if training_usd is not None else "."))
    return out


def batch_agreement(conn, run, model: str, frame: pd.DataFrame, online: list[list[str]], *, spec: PromptSpec,
                    seed: int) -> str:
    """Ask ``model`` again through the Batch API (where the provider has one) and say how often it agrees online."""
    if not conn.batches:
        return f"the {conn.kind} provider has no Batch API: skipped (online answers only, no batch request sent)"
    cache = PredictionCache(run.file(BATCH_CHECK_FILE))
    via_batch = classify_batch(conn, run, model, frame, key="fine-tuned", cache=cache, spec=spec, seed=seed)
    same = sum(a == b for a, b in zip(via_batch.labels(), online, strict=True))
    return f"batch and online answers agree on {same} of {len(frame)} comments"


def record_evaluation(run, result: dict, scores: pd.DataFrame, frame: pd.DataFrame) -> dict:
    """Write the verdict, the score table and the evaluated ids into the manifest (this stage's section)."""
    run.put(EvaluationRecord(verdict=result, scores=scores.to_dict("records"), sample_ids=frame["id"].tolist()))
    return result


def paired_table(gold, predictions: dict[str, list], taxonomy: str, reference: str = "base", seed: int = 0) -> pd.DataFrame:
    """Every comparator against the reference: difference in macro/micro-F1, 95% CI, p-value."""
    tax = get_taxonomy(taxonomy)
    y, ref = to_matrix(gold, tax), to_matrix(predictions[reference], tax)
    rows = []
    for name, preds in predictions.items():
        if name == reference:
            continue
        for metric in ("macro_f1", "micro_f1"):
            r = paired_test(y, ref, to_matrix(preds, tax), metric, seed=seed)
            rows.append({"comparison": f"{name} - {reference}", "metric": metric, "difference": r.difference,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value, "significant": r.significant})
    return pd.DataFrame(rows)
