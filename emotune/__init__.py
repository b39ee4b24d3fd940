"""emotune: from a labelled text dataset to a fine-tuned LLM classifier, with honest numbers.

The notebooks import everything they use from here; the public API is pinned by
``tests/test_public_api.py``.
"""

from .data import (
    CleaningReport,
    LoadedData,
    clean,
    load,
    load_samples,
    make_samples,
    save_samples,
    stratified_sample,
    support_table,
    to_frame,
)
from .errors import (
    BackendError,
    BudgetError,
    ChecksumError,
    ConfigError,
    DataError,
    EmotuneError,
    JobError,
    LifecycleError,
)
from .examples import (
    PromptStyle,
    format_answer,
    parse_answer,
    prompt_messages,
    render_example,
)
from .explore import (
    cooccurrence,
    label_frequency,
    labels_per_comment,
    length_summary,
    level_breakdown,
    sample_table,
    token_lengths,
    top_pairs,
)
from .plots import (
    plot_cooccurrence,
    plot_label_frequency,
    plot_labels_per_comment,
    plot_level_breakdowns,
    plot_support_comparison,
    plot_token_lengths,
)
from .runs import Run, begin_stage, finish_stage, open_run, package_versions
from .series import DEFAULT_PARAMETERS, collect_parameters, run_series
from .taxonomy import EKMAN, GOEMOTIONS, SENTIMENT, Taxonomy, get_taxonomy, map_labels, register_taxonomy
from .tokens import count_chat_tokens, encoding_for

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BudgetError",
    "ChecksumError",
    "CleaningReport",
    "ConfigError",
    "DEFAULT_PARAMETERS",
    "DataError",
    "EKMAN",
    "EmotuneError",
    "GOEMOTIONS",
    "JobError",
    "LifecycleError",
    "LoadedData",
    "PromptStyle",
    "Run",
    "SENTIMENT",
    "Taxonomy",
    "begin_stage",
    "clean",
    "collect_parameters",
    "cooccurrence",
    "count_chat_tokens",
    "encoding_for",
    "finish_stage",
    "format_answer",
    "get_taxonomy",
    "label_frequency",
    "labels_per_comment",
    "length_summary",
    "level_breakdown",
    "load",
    "load_samples",
    "make_samples",
    "map_labels",
    "open_run",
    "package_versions",
    "parse_answer",
    "plot_cooccurrence",
    "plot_label_frequency",
    "plot_labels_per_comment",
    "plot_level_breakdowns",
    "plot_support_comparison",
    "plot_token_lengths",
    "prompt_messages",
    "register_taxonomy",
    "render_example",
    "run_series",
    "sample_table",
    "save_samples",
    "stratified_sample",
    "support_table",
    "to_frame",
    "token_lengths",
    "top_pairs",
]
