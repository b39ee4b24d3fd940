"""Statistics behind notebook 01: label frequencies, labels per item, co-occurrence, lengths,
coarser
levels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.taxonomy import Taxonomy, base_of, get_taxonomy, levels_of, map_labels
from ..core.tokens import encoding_for
from .sampling import multi_hot


def label_names(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.Series:
    """Each row's labels as names instead of ids."""
    return frame["labels"].map(taxonomy.names)


def label_frequency(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Items per label and their share of all items, most frequent first."""
    tax = taxonomy
    counts = multi_hot(frame["labels"].tolist(), len(tax)).sum(axis=0)
    out = pd.DataFrame(
        {"label": tax.labels, "comments": counts, "share %": np.round(100 * counts / len(frame), 2)}
    )
    return out.sort_values(["comments", "label"], ascending=[False, True]).reset_index(drop=True)


def readable_frequency(freq: pd.DataFrame, max_labels: int = 40) -> pd.DataFrame:
    """The rows of a frequency table worth a bar each: all of them, or the most and least
    frequent halves."""
    if len(freq) <= max_labels:
        return freq
    half = max_labels // 2
    return pd.concat([freq.head(half), freq.tail(half)]).reset_index(drop=True)


def is_multi_label(frame: pd.DataFrame) -> bool:
    """Whether any row carries more than one label (then co-occurrence is worth a look)."""
    return bool(frame["labels"].map(len).gt(1).any())


def labels_per_comment(frame: pd.DataFrame) -> pd.DataFrame:
    """How many comments carry 1, 2, 3… labels."""
    counts = frame["labels"].map(len).value_counts().sort_index()
    return pd.DataFrame(
        {
            "labels per comment": counts.index,
            "comments": counts.to_numpy(),
            "share %": np.round(100 * counts.to_numpy() / len(frame), 2),
        }
    )


def cooccurrence(frame: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Label-by-label counts of comments that carry both labels (diagonal: the label alone or
    not)."""
    tax = taxonomy
    y = multi_hot(frame["labels"].tolist(), len(tax)).astype(np.int64)
    return pd.DataFrame(y.T @ y, index=list(tax.labels), columns=list(tax.labels))


def top_pairs(co: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """The k most frequent label pairs from a co-occurrence matrix."""
    labels = list(co.index)
    rows = [
        (labels[i], labels[j], int(co.iat[i, j]))
        for i in range(len(labels))
        for j in range(i + 1, len(labels))
    ]
    out = pd.DataFrame(rows, columns=["label a", "label b", "comments"])
    return (
        out.sort_values(["comments", "label a", "label b"], ascending=[False, True, True])
        .head(k)
        .reset_index(drop=True)
    )


def token_lengths(texts, model: str) -> np.ndarray:
    """Tokens per text with the encoding of ``model``."""
    enc = encoding_for(
        model
    )  # a plain loop: encode_ordinary_batch's thread pool costs more than it saves here
    return np.array([len(enc.encode_ordinary(t)) for t in texts], dtype=np.int64)


def length_summary(lengths: np.ndarray) -> pd.DataFrame:
    """Mean and named percentiles of a length distribution (p10, p50, p90, p99, max)."""
    qs = {"p10": 10, "p50": 50, "p90": 90, "p99": 99}
    row = {"comments": len(lengths), "mean": round(float(np.mean(lengths)), 1)}
    row |= {name: int(np.percentile(lengths, q)) for name, q in qs.items()}
    row["max"] = int(np.max(lengths))
    return pd.DataFrame([row])


def coarser_levels(taxonomy: Taxonomy) -> list[str]:
    """The coarser levels a label set has (GoEmotions: ekman, sentiment; most datasets: none)."""
    return levels_of(taxonomy)[1:]


def level_breakdown(frame: pd.DataFrame, level: str, base: Taxonomy | None = None) -> pd.DataFrame:
    """Items per label after mapping each item's labels to a coarser level (Ekman, sentiment)."""
    src, dst = (base if base is not None else base_of(level)), get_taxonomy(level)
    mapped = [map_labels(src.names(ids), src, dst) for ids in frame["labels"]]
    ids = [[dst.index(lab) for lab in labs] for labs in mapped]
    return label_frequency(pd.DataFrame({"labels": ids}), dst)


def sample_table(frame: pd.DataFrame, taxonomy: Taxonomy, n: int = 5) -> pd.DataFrame:
    """The first n rows with label names, for reading."""
    head = frame.head(n)
    return pd.DataFrame(
        {
            "id": head["id"],
            "text": head["text"],
            "labels": label_names(head, taxonomy).map(", ".join),
        }
    )
