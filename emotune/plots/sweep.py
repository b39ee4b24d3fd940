"""The figures of a sweep (notebook 06). Each function returns a Figure; none saves or shows it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .run import _error_bars

COLORS = {"fine-tuned": "#c44e52", "free baseline": "#4c72b0", "base": "#8c8c8c"}


def plot_learning_curve(
    points: pd.DataFrame,
    overtakes_at: int | None = None,
    title: str = "macro-F1 against training size",
    draws: pd.DataFrame | None = None,
):
    """Macro-F1 against the training size (log scale) for each model: every seed's run as a point
    with its 95% interval (seeds side by side), a line through the mean of the seeds and a band from
    the lowest to the highest seed; a dashed line where the fine-tune overtakes the free baseline
    by a test (``overtakes_at``), if it does. ``draws`` (a learning curve's ``tests``) adds, as a
    faint bar beside each baseline point, the range of the baseline over its training draws."""
    fig, ax = plt.subplots(figsize=(8, 4.6))
    seeds = sorted(points["seed"].unique())
    nudge = {s: 1.0 + 0.035 * (i - (len(seeds) - 1) / 2) for i, s in enumerate(seeds)}
    if draws is not None and draws["baseline draws lowest"].notna().any():
        ranged = draws.dropna(subset=["baseline draws lowest", "baseline draws highest"])
        ax.vlines(
            ranged["size"] * ranged["seed"].map(nudge) * 1.012,
            ranged["baseline draws lowest"],
            ranged["baseline draws highest"],
            color=COLORS["free baseline"],
            alpha=0.3,
            linewidth=4,
            label="free baseline over its training draws (range)",
        )
    for model, rows in points.groupby("model", sort=False):
        color = COLORS.get(model)
        summary = rows.groupby("size")["macro_f1"].agg(["mean", "min", "max"]).sort_index()
        ax.plot(summary.index, summary["mean"], "-", color=color, label=f"{model} (mean of seeds)")
        if len(seeds) > 1:
            ax.fill_between(summary.index, summary["min"], summary["max"], color=color, alpha=0.12)
        for seed, one in rows.groupby("seed"):
            low = one["ci_low"].fillna(one["macro_f1"])
            high = one["ci_high"].fillna(one["macro_f1"])
            ax.errorbar(
                one["size"] * nudge[seed],
                one["macro_f1"],
                yerr=_error_bars(one["macro_f1"], low, high),
                fmt="o",
                markersize=3.5,
                capsize=2,
                color=color,
                alpha=0.8,
            )
    if overtakes_at is not None:
        ax.axvline(overtakes_at, color="black", linestyle="--", linewidth=1)
        ax.annotate(
            f"fine-tune ahead on every seed from {overtakes_at:,}, by a test",
            (overtakes_at, ax.get_ylim()[1]),
            textcoords="offset points",
            xytext=(-4, -12),
            ha="right",
            fontsize=8,
        )
    sizes = np.array(sorted(points["size"].unique()))
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title)
    ax.set_xlabel("training comments (log scale)")
    ax.set_ylabel("macro-F1 (points: each seed, 95% BCa interval)")
    fig.tight_layout()
    return fig
