"""emotune: from a labelled text dataset to a fine-tuned LLM classifier, with honest numbers.

The notebooks import everything they use from here; the public API is pinned by
``tests/test_public_api.py``. Figures are a namespace: ``emotune.plots.plot_headline(...)`` and the
other ``emotune.plots.plot_*`` functions. The layers behind it are described in
``docs/architecture.md``.
"""

from . import plots
from .core.datasets import DatasetParams, dataset_spec
from .core.errors import (
    BackendError,
    BudgetError,
    ChecksumError,
    ConfigError,
    DataError,
    EmotuneError,
    JobError,
    LifecycleError,
    NotebookFailed,
    PredictionError,
)
from .core.file_rules import check_overlap, rules_frame, validate_file
from .core.pricing import cost_table, load_catalog
from .core.prompts import (
    PromptSpec,
    PromptStyle,
    check_prompt_spec,
    example_labels,
    parse_answer,
    prompt_messages,
    prompt_spec,
)
from .core.roles import Role
from .core.runs import Run, begin_stage, finish_stage, open_run, package_versions
from .core.taxonomy import Taxonomy, get_taxonomy
from .curve import LearningCurve, load_curve
from .providers import Provider, connect, resolve_base_model
from .series import collect_parameters, run_series
from .stages.baselines import (
    baselines_by_seed,
    floors,
    gold_labels,
    seed_spread,
    train_baseline,
    with_floors,
)
from .stages.costs import estimate_line, estimate_usd, plan_costs, token_limit
from .stages.data import (
    clean,
    label_set,
    load,
    load_draws,
    load_samples,
    record_dataset,
    save_draws,
    save_samples,
    to_frame,
)
from .stages.evaluate import (
    compare_models,
    cost_axis,
    cost_per_1000,
    error_analysis,
    interval_widths,
    open_cache,
    predict_models,
    prompt_effect,
    prompt_specs,
    save_predictions,
    side_by_side,
    usage_table,
)
from .stages.examples import (
    build_training_files,
    example_gallery,
    parse_table,
    prompt_tax,
    style_tokens,
    trained_prompt_spec,
)
from .stages.explore import (
    coarser_levels,
    cooccurrence,
    is_multi_label,
    label_frequency,
    labels_per_comment,
    length_summary,
    level_breakdown,
    readable_frequency,
    sample_table,
    token_lengths,
    top_pairs,
)
from .stages.finetune import (
    checkpoints_frame,
    fine_tuned_model,
    launch_or_resume,
    reconcile,
    step_metrics,
    trained_base_model,
    upload_training_files,
    watch,
)
from .stages.metrics import per_label, score_models, single_label_report, to_matrix, top_confusions
from .stages.passes import Passes, batch_agreement, evaluation_models, evaluation_passes
from .stages.sampling import baseline_draws, make_samples, support_table
from .stages.seeds import across_seeds, predict_seed_models, seed_models, train_seed_runs
from .stages.statistics import LabelSets
from .stages.verdict import Costs, answers_frame, record_evaluation, verdict

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BudgetError",
    "ChecksumError",
    "ConfigError",
    "Costs",
    "DataError",
    "DatasetParams",
    "EmotuneError",
    "JobError",
    "LabelSets",
    "LearningCurve",
    "LifecycleError",
    "NotebookFailed",
    "Passes",
    "PredictionError",
    "PromptSpec",
    "PromptStyle",
    "Provider",
    "Role",
    "Run",
    "Taxonomy",
    "across_seeds",
    "answers_frame",
    "baseline_draws",
    "baselines_by_seed",
    "batch_agreement",
    "begin_stage",
    "build_training_files",
    "check_overlap",
    "check_prompt_spec",
    "checkpoints_frame",
    "clean",
    "coarser_levels",
    "collect_parameters",
    "compare_models",
    "connect",
    "cooccurrence",
    "cost_axis",
    "cost_per_1000",
    "cost_table",
    "dataset_spec",
    "error_analysis",
    "estimate_line",
    "estimate_usd",
    "evaluation_models",
    "evaluation_passes",
    "example_gallery",
    "example_labels",
    "fine_tuned_model",
    "finish_stage",
    "floors",
    "get_taxonomy",
    "gold_labels",
    "interval_widths",
    "is_multi_label",
    "label_frequency",
    "label_set",
    "labels_per_comment",
    "launch_or_resume",
    "length_summary",
    "level_breakdown",
    "load",
    "load_catalog",
    "load_curve",
    "load_draws",
    "load_samples",
    "make_samples",
    "open_cache",
    "open_run",
    "package_versions",
    "parse_answer",
    "parse_table",
    "per_label",
    "plan_costs",
    "plots",
    "predict_models",
    "predict_seed_models",
    "prompt_effect",
    "prompt_messages",
    "prompt_spec",
    "prompt_specs",
    "prompt_tax",
    "readable_frequency",
    "reconcile",
    "record_dataset",
    "record_evaluation",
    "resolve_base_model",
    "rules_frame",
    "run_series",
    "sample_table",
    "save_draws",
    "save_predictions",
    "save_samples",
    "score_models",
    "seed_models",
    "seed_spread",
    "side_by_side",
    "single_label_report",
    "step_metrics",
    "style_tokens",
    "support_table",
    "to_frame",
    "to_matrix",
    "token_lengths",
    "token_limit",
    "top_confusions",
    "top_pairs",
    "train_baseline",
    "train_seed_runs",
    "trained_base_model",
    "trained_prompt_spec",
    "upload_training_files",
    "usage_table",
    "validate_file",
    "verdict",
    "watch",
    "with_floors",
]
