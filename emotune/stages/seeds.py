"""Training variance, measured: the fine-tune trained ``n_seeds`` times, each on its own draw of
training
examples, and compared with the free baseline trained on the same draws.

Notebook 04 trains the further runs on notebook 01's draws (``seed + 1 ...``), each uploaded once
and resumable from the manifest (``seed_jobs.<key>``); notebook 05 asks every run's model on the
same test comments and tests the per-draw differences to the baseline across draws
(:func:`emotune.stages.statistics.across_draws`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.errors import ConfigError
from ..core.manifest import SeedJobRecord
from ..core.roles import Role
from ..core.runs import atomic_write_bytes
from ..core.taxonomy import Taxonomy
from .examples import render_jsonl, trained_prompt_spec
from .finetune import launch_or_resume, upload_once, watch
from .metrics import to_matrix
from .predict import PredictionCache, classify
from .statistics import Comparison, across_draws, point_scores


def seed_key(seed: int) -> str:
    return f"seed-{seed}"


def train_seed_runs(
    provider,
    run,
    draws: dict[int, dict[str, pd.DataFrame]],
    *,
    n_seeds: int,
    base_model: str,
    budget_usd: float,
    progress: bool = True,
    **hyperparameters,
) -> pd.DataFrame:
    """Fine-tune once more on each of the first ``n_seeds - 1`` draws (the run's own job is the
    first run);
    re-running resumes every job instead of starting another."""
    seeds = sorted(draws)[: max(n_seeds - 1, 0)]
    if len(seeds) < n_seeds - 1:
        raise ConfigError(
            f"n_seeds={n_seeds} needs {n_seeds - 1} further draws, notebook 01 made {len(draws)}: "
            "run it again with baseline_seeds >= n_seeds"
        )
    spec, rows = trained_prompt_spec(run), []
    for seed in seeds:
        key = seed_key(seed)
        for split, shuffle in (("train", seed), ("validation", None)):
            path = run.file(f"seeds/{key}-{split}.jsonl")
            atomic_write_bytes(path, render_jsonl(draws[seed][split], style=spec, seed=shuffle))
            upload_once(provider, run, path, f"{split}-{key}")
        launch = launch_or_resume(
            provider,
            run,
            base_model=base_model,
            seed=seed,
            budget_usd=budget_usd,
            key=key,
            runs=n_seeds,
            **hyperparameters,
        )
        job = watch(provider, launch.id, on_event=lambda _: None, progress=progress)
        seconds = (job.finished_at - job.created_at) if job.finished_at else None
        run.put(
            SeedJobRecord(
                status=job.status,
                fine_tuned_model=job.fine_tuned_model,
                seed=seed,
                training_seconds=seconds,
            ),
            key,
        )
        rows.append(
            {
                "seed": seed,
                "job": job.id,
                "action": launch.action,
                "status": job.status,
                "fine-tuned model": job.fine_tuned_model,
            }
        )
    return pd.DataFrame(rows, columns=["seed", "job", "action", "status", "fine-tuned model"])


def seed_models(run) -> dict[int, str]:
    """The further runs' fine-tuned models by draw seed (empty with one training run)."""
    jobs = run.get("seed_jobs") or {}
    return {
        int(rec["seed"]): rec["fine_tuned_model"]
        for rec in jobs.values()
        if rec.get("fine_tuned_model")
    }


def predict_seed_models(
    conn, run, frame: pd.DataFrame, *, cache: PredictionCache, spec, seed: int, **kw
) -> dict[int, list[list[str]]]:
    """Each further run's answers on the test comments, asked with the prompt it was trained on."""
    out = {}
    for draw, model in sorted(seed_models(run).items()):
        out[draw] = classify(conn, model, frame, cache=cache, spec=spec, seed=seed, **kw).labels()
    return out


@dataclass(frozen=True)
class SeedTest:
    """The fine-tune and the free baseline, each trained on the same draws, scored on the same
    comments."""

    per_draw: (
        pd.DataFrame
    )  # index: draw seed; columns: fine-tuned, free baseline, difference (macro-F1)
    comparison: Comparison  # across draws: paired t-test, 95% and 90% t-intervals

    def to_frame(self) -> pd.DataFrame:
        return self.per_draw


def across_seeds(
    gold,
    tuned_by_seed: dict[int, list[list[str]]],
    baseline_by_seed: dict[int, list[list[str]]],
    taxonomy: Taxonomy,
) -> SeedTest | None:
    """Per-draw macro-F1 of both, and the test across draws; None with fewer than two fine-tune
    runs."""
    draws = sorted(s for s in tuned_by_seed if s in baseline_by_seed)
    if len(draws) < 2:
        return None
    tax = taxonomy
    y = to_matrix(gold, tax)

    def macro(labels):
        return point_scores(y, to_matrix(labels, tax))["macro_f1"]

    table = pd.DataFrame(
        {
            Role.FINE_TUNED: [macro(tuned_by_seed[s]) for s in draws],
            Role.FREE_BASELINE: [macro(baseline_by_seed[s]) for s in draws],
        },
        index=pd.Index(draws, name="training draw (seed)"),
    )
    tuned, baseline = table[Role.FINE_TUNED], table[Role.FREE_BASELINE]
    table["difference"] = tuned - baseline
    return SeedTest(table, across_draws(baseline.to_numpy(), tuned.to_numpy()))
