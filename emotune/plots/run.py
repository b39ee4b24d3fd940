"""The figures of one run (notebooks 01-05). Each function returns a Figure; none saves or shows
it."""

from __future__ import annotations

import matplotlib

matplotlib.rcParams.setdefault("figure.dpi", 100)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _finish(fig, ax, title: str, xlabel: str, ylabel: str):
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def plot_label_frequency(freq: pd.DataFrame, title: str = "Comments per label (log scale)"):
    """Horizontal bars of comments per label, log-scaled, most frequent on top."""
    fig, ax = plt.subplots(figsize=(7, 0.25 * len(freq) + 1.2))
    ax.barh(freq["label"][::-1], freq["comments"][::-1], color="#4c72b0")
    ax.set_xscale("log")
    return _finish(fig, ax, title, "comments (log scale)", "label")


def plot_labels_per_comment(table: pd.DataFrame, title: str = "Labels per comment"):
    """Bars of how many comments carry 1, 2, 3… labels."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(table["labels per comment"].astype(str), table["comments"], color="#55a868")
    return _finish(fig, ax, title, "labels on the comment", "comments")


def plot_cooccurrence(
    co: pd.DataFrame, title: str = "Label co-occurrence (comments with both labels)"
):
    """Heatmap of label pairs on a log colour scale; the diagonal is blanked to show pairs only."""
    import seaborn as sns
    from matplotlib.colors import LogNorm

    values = co.to_numpy().astype(float)
    np.fill_diagonal(values, np.nan)
    values[values == 0] = np.nan
    fig, ax = plt.subplots(figsize=(9, 7.5))
    sns.heatmap(
        pd.DataFrame(values, index=co.index, columns=co.columns),
        ax=ax,
        cmap="viridis",
        norm=LogNorm(),
        cbar_kws={"label": "comments (log scale)"},
        square=True,
    )
    return _finish(fig, ax, title, "label", "label")


def _clipped(values: np.ndarray, quantile: float = 0.99) -> tuple[np.ndarray, float, int]:
    """Values up to the ``quantile`` (so one outlier does not squash the axis), the cut, and how
    many lie
    beyond."""
    values = np.asarray(values)
    cut = float(np.quantile(values, quantile))
    return values[values <= cut], cut, int((values > cut).sum())


def _integer_bins(low: float, high: float, most: int = 40) -> np.ndarray:
    """Bin edges for whole numbers (token counts): each bin holds the same count of integers, so
    none is empty by construction."""
    width = max(1, int(np.ceil((high - low + 1) / most)))
    return np.arange(np.floor(low) - 0.5, np.ceil(high) + width + 0.5, width)


def plot_token_lengths(lengths: np.ndarray, model: str, title: str | None = None):
    """Share of comments by length in tokens, up to the 99th percentile (the longest 1% counted
    in the
    legend)."""
    lengths = np.asarray(lengths)
    shown, cut, beyond = _clipped(lengths)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(
        shown,
        bins=_integer_bins(shown.min(), cut),
        color="#8172b2",
        weights=np.full(len(shown), 100 / len(lengths)),
    )
    ax.axvline(
        np.median(lengths), color="black", linestyle="--", label=f"median {int(np.median(lengths))}"
    )
    ax.plot([], [], " ", label=f"{beyond} longer than {cut:.0f} (max {lengths.max()}) not drawn")
    ax.legend(fontsize=8)
    return _finish(
        fig, ax, title or f"Comment length in tokens ({model})", "tokens", "share of comments (%)"
    )


def plot_level_breakdowns(
    tables: dict[str, pd.DataFrame], title: str = "Comments per label at coarser levels"
):
    """Side-by-side bars, one panel per level (e.g. Ekman, sentiment)."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.4))
    axes = np.atleast_1d(axes)
    for ax, (level, table) in zip(axes, tables.items(), strict=True):
        ax.bar(table["label"], table["comments"], color="#c44e52")
        ax.set_title(level)
        ax.set_xlabel("label")
        ax.set_ylabel("comments")
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_support_comparison(
    table: pd.DataFrame, title: str = "Sample minus population share per label"
):
    """Per label, the sample's share minus the population's, in percentage points: the gaps
    stratification
    left."""
    diff = table["sample %"] - table["population %"]
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.bar(np.arange(len(table)), diff, color=np.where(diff >= 0, "#4c72b0", "#c44e52"))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(table)), table["label"], rotation=90)
    return _finish(fig, ax, title, "label", "sample - population (percentage points)")


def plot_token_distribution(
    tokens_by_file: dict[str, np.ndarray], model: str, title: str | None = None
):
    """Share of examples by billed tokens, one series per file, up to the 99th percentile of all
    of them."""
    everything = np.concatenate([np.asarray(t) for t in tokens_by_file.values()])
    _, cut, _ = _clipped(everything)
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    bins = _integer_bins(everything.min(), cut)
    for name, tokens in tokens_by_file.items():  # outlines, so overlapping files mix no colour
        tokens = np.asarray(tokens)
        shown = tokens[tokens <= cut]
        ax.hist(
            shown,
            bins=bins,
            histtype="step",
            linewidth=1.6,
            weights=np.full(len(shown), 100 / len(tokens)),
            label=f"{name} (median {int(np.median(tokens))}; "
            f"{int((tokens > cut).sum())} above {cut:.0f}, max {tokens.max()})",
        )
    ax.legend(fontsize=8)
    return _finish(
        fig,
        ax,
        title or f"Billed tokens per example ({model})",
        "tokens per example",
        "share of examples (%)",
    )


def plot_prompt_tax(table: pd.DataFrame, title: str = "Training cost by model and prompt style"):
    """Grouped bars: training cost of the same examples per model, one bar per prompt style."""
    pivot = table.pivot(index="model", columns="style", values="training $")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(pivot))
    width = 0.8 / len(pivot.columns)
    for i, style in enumerate(pivot.columns):
        ax.bar(x + i * width - 0.4 + width / 2, pivot[style], width=width, label=style)
    shutdown = table.groupby("model")["shutdown"].first() if "shutdown" in table else None
    names = [f"{m}\n(shuts down {shutdown[m]})" if shutdown is not None else m for m in pivot.index]
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.legend(title="prompt style")
    return _finish(fig, ax, title, "model", "training cost (USD)")


def plot_training_curves(
    metrics: pd.DataFrame,
    title: str = "Training and validation, per step",
    n_epochs: int | None = None,
):
    """Loss (left) and accuracy (right) per step: each training batch faintly, its rolling mean over
    about a tenth of an epoch, validation where it was measured, and dotted lines at the end of each
    epoch."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    total = int(metrics["step"].max()) if len(metrics) else 0
    per_epoch = total / n_epochs if n_epochs else total / 3
    window = max(int(per_epoch / 10), 1)
    for ax, (train_col, valid_col, name) in zip(
        (left, right),
        (
            ("train_loss", "valid_loss", "loss"),
            ("train_accuracy", "valid_mean_token_accuracy", "accuracy"),
        ),
        strict=True,
    ):
        ax.plot(
            metrics["step"],
            metrics[train_col],
            color="#4c72b0",
            alpha=0.2,
            linewidth=0.6,
            label=f"train {name} (batch)",
        )
        ax.plot(
            metrics["step"],
            metrics[train_col].rolling(window, min_periods=1).mean(),
            color="#4c72b0",
            linewidth=1.5,
            label=f"train {name}, rolling mean of {window}",
        )
        if valid_col in metrics and metrics[valid_col].notna().any():
            valid = metrics.dropna(subset=[valid_col])
            ax.plot(
                valid["step"],
                valid[valid_col],
                "o-",
                color="#c44e52",
                markersize=3,
                label=f"validation {name}",
            )
        for k in range(1, n_epochs or 0):
            ax.axvline(k * per_epoch, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{name} per step" + (" (dotted: end of an epoch)" if n_epochs else ""))
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _error_bars(value, low, high) -> np.ndarray:
    """Matplotlib's ``yerr`` for estimates and their intervals: a BCa interval need not contain its
    estimate (skewed resamples) and an undefined one is NaN, so no bar is below zero or
    undefined."""
    value, low, high = (np.asarray(v, dtype=float) for v in (value, low, high))
    return np.nan_to_num(np.vstack([value - low, high - value]), nan=0.0).clip(min=0)


def plot_headline(
    scores: pd.DataFrame,
    level: str | None = None,
    reference: float | None = None,
    title: str | None = None,
    metrics=("macro_f1", "macro_f1_supported", "micro_f1", "weighted_f1", "exact_match", "jaccard"),
    floors: pd.DataFrame | None = None,
):
    """Headline metrics per comparator with 95% BCa error bars; an optional reference (BERT-base)
    over macro-F1 only, and the floors (answers that never read the comment) as dotted lines where
    measured."""
    level = level or scores["level"].iloc[0]
    table = scores[(scores["level"] == level) & scores["metric"].isin(metrics)]
    models = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(metrics))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("metric").loc[list(metrics)]
        err = _error_bars(rows["value"], rows["ci_low"], rows["ci_high"])
        ax.bar(
            x + i * width - 0.4 + width / 2,
            rows["value"],
            width=width,
            yerr=err,
            capsize=3,
            label=model,
        )
    if reference is not None and "macro_f1" in metrics:
        at = list(metrics).index("macro_f1")
        ax.hlines(
            reference,
            at - 0.45,
            at + 0.45,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"BERT-base macro-F1, full test split ({reference:.2f})",
        )
    for (name, row), style in zip(
        (floors if floors is not None else pd.DataFrame()).iterrows(), (":", "-."), strict=False
    ):
        drawn = [m for m in metrics if m in row.index]
        for k, m in enumerate(drawn):
            at = list(metrics).index(m)
            ax.hlines(
                row[m],
                at - 0.45,
                at + 0.45,
                color="dimgray",
                linestyle=style,
                linewidth=1.4,
                label=f"floor: {name}" if k == 0 else None,
            )
    ax.set_xticks(x, [m.replace("_", "-") for m in metrics])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _finish(
        fig,
        ax,
        title or f"Headline metrics ({level}), 95% BCa bootstrap intervals",
        "metric",
        "score",
    )


def plot_per_label_f1(per_label: dict[str, pd.DataFrame], title: str = "F1 per label"):
    """Per-label F1, one bar per comparator, labels ordered by support."""
    first = next(iter(per_label.values())).sort_values("support", ascending=False)
    order = list(first["label"])
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(order) + 1.5))
    y = np.arange(len(order))
    height = 0.8 / len(per_label)
    for i, (name, table) in enumerate(per_label.items()):
        f1 = table.set_index("label").loc[order, "f1"]
        ax.barh(y + i * height - 0.4 + height / 2, f1, height=height, label=name)
    ax.set_yticks(y, [f"{lab} ({s})" for lab, s in zip(order, first["support"], strict=True)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    return _finish(fig, ax, title, "F1", "label (support in the evaluation sample)")


def plot_confusions(confusions: pd.DataFrame, title: str = "Most frequent confusions"):
    """Bars of (gold label missed -> label predicted instead) pairs."""
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(confusions), 1) + 1.3))
    names = [
        f"{g} -> {p}"
        for g, p in zip(confusions["gold label"], confusions["predicted instead"], strict=True)
    ]
    ax.barh(names[::-1], confusions["comments"][::-1], color="#dd8452")
    return _finish(fig, ax, title, "comments", "gold label -> predicted instead")


def plot_cost_vs_quality(
    points: pd.DataFrame,
    title: str = "Cost per 1,000 predictions vs macro-F1",
    axis: str = "USD per 1,000 (online)",
):
    """One point per comparator: its cost per 1,000 predictions (column ``cost``: OpenAI's dollars,
    or compute seconds for open weights, as ``axis`` says) against macro-F1 with its interval; the
    free baseline at 0."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for _, row in points.iterrows():
        ax.errorbar(
            row["cost"],
            row["macro_f1"],
            yerr=_error_bars([row["macro_f1"]], [row["ci_low"]], [row["ci_high"]]),
            fmt="o",
            capsize=4,
        )
        ax.annotate(
            row["comparator"],
            (row["cost"], row["macro_f1"]),
            textcoords="offset points",
            xytext=(6, 4),
        )
    ax.set_xlim(left=-0.02 * max(points["cost"].max(), 0.01))
    label = (
        "USD per 1,000 predictions (OpenAI prices, online)"
        if axis.startswith("USD")
        else "compute seconds per 1,000 predictions (this machine, online)"
    )
    return _finish(fig, ax, title, label, "macro-F1 (95% CI)")


def plot_prompt_tokens(tax: pd.DataFrame, title: str = "Billed tokens per example by prompt style"):
    """Bars of mean tokens per example for each style next to the irreducible minimum."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    colors = ["#8c8c8c"] + ["#4c72b0"] * (len(tax) - 1)
    ax.barh(tax["style"][::-1], tax["tokens per example"][::-1], color=colors[::-1])
    for y, (tokens, ratio) in enumerate(
        zip(tax["tokens per example"][::-1], tax["x minimum"][::-1], strict=True)
    ):
        ax.annotate(
            f"{tokens:.0f} ({ratio:.2f}x)", (tokens, y), textcoords="offset points", xytext=(4, -3)
        )
    ax.set_xlim(0, tax["tokens per example"].max() * 1.25)
    return _finish(fig, ax, title, "mean billed tokens per example", "prompt style")
