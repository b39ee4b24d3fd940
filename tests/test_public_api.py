import emotune

# The public API, pinned: a name added or removed here is a deliberate change of what notebooks may use.
PUBLIC = [
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

# The figures live under one namespace, emotune.plots, pinned the same way.
PLOTS = [
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

# Submodules listed in __all__: namespaces the notebooks reach through ``emotune.<name>.<function>``.
NAMESPACES = {"plots"}


def test_all_is_sorted_complete_and_pinned():
    assert emotune.__all__ == sorted(emotune.__all__) == PUBLIC
    for name in emotune.__all__:
        assert hasattr(emotune, name), name
    public = {n for n in vars(emotune) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(emotune, n)).__name__ == "module"}
    assert public - modules == set(emotune.__all__) - NAMESPACES
    assert modules >= NAMESPACES


def test_plots_are_a_namespace():
    import inspect

    from emotune import plots

    assert emotune.plots is plots
    assert plots.__all__ == sorted(plots.__all__) == PLOTS
    defined = {
        n
        for n, f in vars(plots).items()
        if inspect.isfunction(f) and f.__module__.startswith(f"{plots.__name__}.")
    }
    assert {n for n in defined if not n.startswith("_")} == set(PLOTS)
    assert not [n for n in emotune.__all__ if n.startswith("plot_")]


def test_only_config_reads_the_environment():
    from pathlib import Path

    pkg = Path(emotune.__file__).parent
    offenders = [
        p.name for p in pkg.rglob("*.py") if p.name != "config.py" and "os.environ" in p.read_text()
    ]
    assert offenders == []
