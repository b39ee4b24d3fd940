"""Every figure the notebooks show, as ``emotune.plots.plot_*``: one run's (notebooks 01-05, in
``run.py``) and a sweep's (notebook 06, in ``sweep.py``). Each function returns a Figure; none saves
or shows it."""

from .run import (
    plot_confusions,
    plot_cooccurrence,
    plot_cost_vs_quality,
    plot_headline,
    plot_label_frequency,
    plot_labels_per_comment,
    plot_level_breakdowns,
    plot_per_label_f1,
    plot_prompt_tax,
    plot_prompt_tokens,
    plot_support_comparison,
    plot_token_distribution,
    plot_token_lengths,
    plot_training_curves,
)
from .sweep import plot_learning_curve

__all__ = [
    "plot_confusions",
    "plot_cooccurrence",
    "plot_cost_vs_quality",
    "plot_headline",
    "plot_label_frequency",
    "plot_labels_per_comment",
    "plot_learning_curve",
    "plot_level_breakdowns",
    "plot_per_label_f1",
    "plot_prompt_tax",
    "plot_prompt_tokens",
    "plot_support_comparison",
    "plot_token_distribution",
    "plot_token_lengths",
    "plot_training_curves",
]
