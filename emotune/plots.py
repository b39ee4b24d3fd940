"""Every figure the notebooks show. Each function returns a Figure; none saves or shows it."""

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


def plot_cooccurrence(co: pd.DataFrame, title: str = "Label co-occurrence (comments with both labels)"):
    """Heatmap of label pairs on a log colour scale; the diagonal is blanked to show pairs only."""
    import seaborn as sns
    from matplotlib.colors import LogNorm

    values = co.to_numpy().astype(float)
    np.fill_diagonal(values, np.nan)
    values[values == 0] = np.nan
    fig, ax = plt.subplots(figsize=(9, 7.5))
    sns.heatmap(pd.DataFrame(values, index=co.index, columns=co.columns), ax=ax, cmap="viridis", norm=LogNorm(),
                cbar_kws={"label": "comments (log scale)"}, square=True)
    return _finish(fig, ax, title, "label", "label")


def plot_token_lengths(lengths: np.ndarray, model: str, title: str | None = None):
    """Histogram of comment length in tokens, with the median marked."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(lengths, bins=40, color="#8172b2")
    ax.axvline(np.median(lengths), color="black", linestyle="--", label=f"median {int(np.median(lengths))}")
    ax.legend()
    return _finish(fig, ax, title or f"Comment length in tokens ({model})", "tokens", "comments")


def plot_level_breakdowns(tables: dict[str, pd.DataFrame], title: str = "Comments per label at coarser levels"):
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


def plot_support_comparison(table: pd.DataFrame, title: str = "Label share: population vs stratified sample"):
    """Population vs sample share per label, to show what stratification kept."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["population %"], width=0.4, label="population")
    ax.bar(x + 0.2, table["sample %"], width=0.4, label="sample")
    ax.set_xticks(x, table["label"], rotation=90)
    ax.legend()
    return _finish(fig, ax, title, "label", "share of comments (%)")


def plot_token_distribution(tokens_by_file: dict[str, np.ndarray], model: str, title: str | None = None):
    """Histogram of billed tokens per example, one series per file."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, tokens in tokens_by_file.items():
        ax.hist(tokens, bins=40, alpha=0.6, label=f"{name} (median {int(np.median(tokens))})")
    ax.legend()
    return _finish(fig, ax, title or f"Billed tokens per example ({model})", "tokens per example", "examples")


def plot_prompt_tax(table: pd.DataFrame, title: str = "Training cost by model and prompt style"):
    """Grouped bars: training cost of the same examples per model, one bar per prompt style."""
    pivot = table.pivot(index="model", columns="style", values="training $")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(pivot))
    width = 0.8 / len(pivot.columns)
    for i, style in enumerate(pivot.columns):
        ax.bar(x + i * width - 0.4 + width / 2, pivot[style], width=width, label=style)
    ax.set_xticks(x, pivot.index, rotation=20, ha="right")
    ax.legend(title="prompt style")
    return _finish(fig, ax, title, "model", "training cost (USD)")


def plot_training_curves(metrics: pd.DataFrame, title: str = "Training and validation, per step"):
    """Loss (left) and accuracy (right) per step: training every step, validation where it was measured."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (train_col, valid_col, name) in zip(
            (left, right), (("train_loss", "valid_loss", "loss"), ("train_accuracy", "valid_mean_token_accuracy", "accuracy")),
            strict=True):
        ax.plot(metrics["step"], metrics[train_col], color="#4c72b0", alpha=0.5, linewidth=0.8, label=f"train {name}")
        if valid_col in metrics and metrics[valid_col].notna().any():
            valid = metrics.dropna(subset=[valid_col])
            ax.plot(valid["step"], valid[valid_col], "o-", color="#c44e52", markersize=3, label=f"validation {name}")
        ax.set_title(f"{name} per step")
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
