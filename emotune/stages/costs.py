"""Notebook 03's stage: what the validated files would cost to train on and to evaluate, and the
budget guard.

The provider says how its models are priced (:meth:`emotune.providers.base.Provider.pricing`):
dollars per token on OpenAI (and, on the local backend, what OpenAI *would* charge for an OpenAI
model name), compute seconds for an open-weights model, nothing for a server emotune has no price
list for. The budget is checked here, before anything is spent, and again in notebook 04 before a
job is created.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.file_rules import ValidationReport
from ..core.manifest import EstimateRecord, SamplesRecord, ValidationRecord
from ..core.pricing import CostEstimate, Pricing, check_budget, estimate_training, inference_table


@dataclass
class CostPlan:
    """Training and evaluation cost of this run on its provider."""

    pricing: Pricing
    training: CostEstimate
    evaluation: (
        pd.DataFrame
    )  # one row per (model, path); online and batch are alternatives, not a sum
    n_eval: int
    budget_usd: float

    def summary(self) -> str:
        """One sentence on the cost and the budget."""
        if not self.pricing.in_dollars:
            return (
                f"{self.pricing.model}: {self.pricing.note}. {self.training.billed_tokens:,} "
                "training tokens "
                f"({self.training.n_epochs} epochs); nothing is billed in dollars, so the "
                f"${self.budget_usd:.2f} budget "
                "does not apply."
            )
        online = self.evaluation[self.evaluation.path == "online"]["USD"].sum()
        return (
            f"{self.pricing.model} ({self.pricing.note}): training "
            f"${self.training.training_usd:.2f} for "
            f"{self.training.billed_tokens:,} billed tokens; evaluating base and fine-tuned on "
            f"{self.n_eval:,} comments "
            f"${online:.4f} online (the Batch API halves that). Total at most "
            f"${self.training.training_usd + online:.2f}, within the ${self.budget_usd:.2f} budget."
        )


def token_limit(provider, model: str) -> int | None:
    """The per-example token limit the provider trains ``model`` with (None: emotune knows of
    none)."""
    pricing = provider.pricing(model)
    return pricing.price.example_token_limit if pricing.in_dollars else None


def plan_costs(
    provider,
    run,
    train: ValidationReport,
    val: ValidationReport,
    *,
    base_model: str,
    budget_usd: float,
    n_epochs: int | str = "auto",
) -> CostPlan:
    """Estimate training and evaluation on ``provider``, check the budget, and record both in the
    manifest.

    Raises :class:`~emotune.core.errors.BudgetError` (nothing spent) when training plus the dearer
    evaluation path exceeds ``budget_usd``.
    """
    pricing = provider.pricing(base_model)
    if n_epochs == "auto":  # as the job will resolve it on this provider
        n_epochs = provider.auto_epochs(base_model) or "auto"
    estimate = estimate_training(train.tokens, pricing, n_epochs)
    samples = run.read(SamplesRecord)
    n_eval = int((samples.eval or {}).get("rows", 0))
    if pricing.in_dollars and len(val.tokens) and n_eval > 0:
        prompt_mean = float(val.tokens.mean() - val.assistant_tokens.mean())
        evaluation = inference_table(
            n_eval, prompt_mean, float(val.assistant_tokens.mean()), pricing.price.name
        )
        online = float(evaluation[evaluation.path == "online"]["USD"].sum())
        check_budget(estimate.training_usd + online, budget_usd, "training + evaluation")
    else:
        evaluation = pd.DataFrame(columns=["model", "path", "requests", "USD", "USD per 1,000"])
    run.put(
        ValidationRecord(
            train=train.summary(),
            val=val.summary(),
            ok=train.ok and val.ok,
            errors=len(train.errors) + len(val.errors),
            warnings=len(train.warnings) + len(val.warnings),
        )
    )
    run.put(
        EstimateRecord(
            model=estimate.model,
            pricing=pricing.unit,
            pricing_note=pricing.note,
            n_examples=estimate.n_examples,
            n_epochs=estimate.n_epochs,
            tokens_per_epoch=estimate.tokens_per_epoch,
            billed_tokens=estimate.billed_tokens,
            truncated_examples=estimate.truncated_examples,
            training_usd=estimate.training_usd,
            evaluation=evaluation.to_dict("records"),
            budget_usd=budget_usd,
        )
    )
    return CostPlan(pricing, estimate, evaluation, n_eval, budget_usd)


def estimate_line(run) -> str:
    """Notebook 03's estimate in one line, for the notebooks that act on it."""
    est = run.read(EstimateRecord)
    if est.training_usd is None:
        return (
            f"training {est.model}: {est.billed_tokens:,} tokens over {est.n_epochs} epochs "
            f"({est.pricing_note})"
        )
    return (
        f"estimated training cost of {est.model}: ${est.training_usd:.2f} for "
        f"{est.billed_tokens:,} billed "
        "tokens "
        f"({est.pricing_note}; budget ${est.budget_usd:.2f})"
    )


def estimate_usd(run) -> float | None:
    """Notebook 03's training estimate in dollars (None when the model is not priced in dollars)."""
    return run.read(EstimateRecord).training_usd
