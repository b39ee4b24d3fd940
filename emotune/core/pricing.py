"""Prices, limits and lifecycle dates of the fine-tunable models, cost estimates, and the budget
guard.

The catalogue is data (``emotune/catalog/models.json``, dated, with sources), never constants buried
in code; pass your own with :func:`load_catalog` when prices change.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BudgetError, ConfigError, LifecycleError
from .openai_spec import default_epochs
from .tokens import base_model

WARN_DAYS = 30  # warn when a model or the job window closes within this many days


@dataclass(frozen=True)
class ModelPrice:
    """One fine-tunable model: limits, prices per 1M tokens (USD) and shutdown date."""

    name: str
    family: str
    example_token_limit: int
    training_per_1m: float
    base_input_per_1m: float
    base_output_per_1m: float
    ft_input_per_1m: float
    ft_output_per_1m: float
    shutdown: date


@dataclass(frozen=True)
class Catalog:
    """The dated catalogue: models, the Batch discount, and the fine-tuning window."""

    as_of: date
    models: dict[str, ModelPrice]
    batch_discount: float
    closed_to_new_orgs: date
    no_new_jobs_after: date
    sources: dict[str, str]

    def model(self, name: str) -> ModelPrice:
        """A model by dated name, alias (``gpt-4o-mini``) or fine-tuned name
        (``ft:gpt-4o-mini-…``)."""
        key = base_model(name)
        if key in self.models:
            return self.models[key]
        matches = [m for m in self.models.values() if m.family == key]
        if len(matches) == 1:
            return matches[0]
        raise ConfigError(
            f"{name!r} is not in the pricing catalogue (as of {self.as_of}); known: "
            f"{', '.join(sorted(self.models))}. Pass your own catalogue to load_catalog()."
        )

    def fine_tunable(self) -> dict[str, str]:
        """Models still fine-tunable as of the catalogue's date: dated name and family alias ->
        dated name."""
        live = [m for m in self.models.values() if m.shutdown > self.as_of]
        return {m.name: m.name for m in live} | {m.family: m.name for m in live}

    def to_frame(self) -> pd.DataFrame:
        """The catalogue as a table."""
        return pd.DataFrame(
            [
                {
                    "model": m.name,
                    "training $/1M": m.training_per_1m,
                    "base in $/1M": m.base_input_per_1m,
                    "base out $/1M": m.base_output_per_1m,
                    "fine-tuned in $/1M": m.ft_input_per_1m,
                    "fine-tuned out $/1M": m.ft_output_per_1m,
                    "token limit": m.example_token_limit,
                    "shutdown": m.shutdown.isoformat(),
                }
                for m in self.models.values()
            ]
        )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The built-in catalogue, or yours (same JSON shape)."""
    text = (
        Path(path).read_text("utf-8")
        if path
        else resources.files("emotune").joinpath("catalog/models.json").read_text("utf-8")
    )
    raw = json.loads(text)
    models = {
        name: ModelPrice(name=name, shutdown=date.fromisoformat(spec.pop("shutdown")), **spec)
        for name, spec in ((n, dict(s)) for n, s in raw["models"].items())
    }
    ft = raw["fine_tuning"]
    return Catalog(
        date.fromisoformat(raw["as_of"]),
        models,
        float(raw["batch_discount"]),
        date.fromisoformat(ft["closed_to_new_organisations"]),
        date.fromisoformat(ft["no_new_jobs_after"]),
        raw.get("sources", {}),
    )


@dataclass(frozen=True)
class Pricing:
    """How a model is paid for on a provider: ``usd`` per token (with its catalogue prices),
    ``compute-seconds`` (your own hardware) or ``not-priced`` (emotune does not know the price)."""

    unit: str
    model: str
    note: str
    price: ModelPrice | None = None

    @classmethod
    def compute(cls, model: str, note: str) -> Pricing:
        return cls("compute-seconds", model, note)

    @classmethod
    def not_priced(cls, model: str, note: str) -> Pricing:
        return cls("not-priced", model, note)

    @property
    def in_dollars(self) -> bool:
        return self.unit == "usd" and self.price is not None

    def usd_per_1000(
        self,
        prompt_tokens: float,
        completion_tokens: float,
        *,
        fine_tuned: bool,
        batch: bool = False,
        catalog: Catalog | None = None,
    ) -> float | None:
        """Dollars for 1,000 requests of the given mean prompt and completion tokens; None when
        not in
        dollars."""
        if not self.in_dollars:
            return None
        p = self.price
        per_in, per_out = (
            (p.ft_input_per_1m, p.ft_output_per_1m)
            if fine_tuned
            else (p.base_input_per_1m, p.base_output_per_1m)
        )
        discount = (catalog or load_catalog()).batch_discount if batch else 0.0
        return 1000 * (prompt_tokens * per_in + completion_tokens * per_out) / 1e6 * (1 - discount)


@dataclass(frozen=True)
class CostEstimate:
    """What a training job on a file would bill (``training_usd`` is None when the model is not
    priced in
    dollars)."""

    model: str
    n_examples: int
    n_epochs: int
    tokens_per_epoch: int
    billed_tokens: int
    truncated_examples: int
    training_usd: float | None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.__dict__])


def estimate_training(
    example_tokens,
    model: str | Pricing,
    n_epochs: int | str = "auto",
    catalog: Catalog | None = None,
) -> CostEstimate:
    """Training cost: each example capped at the model's limit, times epochs; validation is not
    billed.

    ``model`` is an OpenAI model name (priced from the catalogue) or a provider's :class:`Pricing`.
    """
    pricing = (
        model
        if isinstance(model, Pricing)
        else Pricing("usd", model, "catalogue", (catalog or load_catalog()).model(model))
    )
    price = pricing.price if pricing.in_dollars else None
    tokens = np.asarray(example_tokens, dtype=np.int64)
    epochs = default_epochs(len(tokens)) if n_epochs == "auto" else int(n_epochs)
    if epochs < 1:
        raise ConfigError(f"n_epochs must be a positive integer or 'auto', not {n_epochs!r}")
    limit = price.example_token_limit if price else None
    capped = np.minimum(tokens, limit) if limit else tokens
    per_epoch = int(capped.sum())
    billed = per_epoch * epochs
    usd = round(billed / 1e6 * price.training_per_1m, 4) if price else None
    return CostEstimate(
        price.name if price else pricing.model,
        len(tokens),
        epochs,
        per_epoch,
        billed,
        int((tokens > limit).sum()) if limit else 0,
        usd,
    )


def estimate_inference(
    n_requests: int,
    prompt_tokens: float,
    completion_tokens: float,
    model: str,
    *,
    fine_tuned: bool,
    batch: bool = False,
    catalog: Catalog | None = None,
) -> float:
    """USD for n requests of the given mean prompt and completion tokens (Batch API: discounted)."""
    cat = catalog or load_catalog()
    pricing = Pricing("usd", model, "catalogue", cat.model(model))
    return round(
        n_requests
        / 1000
        * pricing.usd_per_1000(
            prompt_tokens, completion_tokens, fine_tuned=fine_tuned, batch=batch, catalog=cat
        ),
        6,
    )


def check_budget(estimated_usd: float, budget_usd: float, what: str = "this step") -> None:
    """Raise :class:`BudgetError` before any spend when the estimate exceeds the budget (or the
    budget is not
    an amount: NaN compares false with everything, so it would let any spend through)."""
    if not math.isfinite(budget_usd) or budget_usd < 0:
        raise BudgetError(
            f"budget_usd must be a finite amount of at least $0, not {budget_usd!r}; nothing was "
            "spent"
        )
    if estimated_usd > budget_usd:
        raise BudgetError(
            f"{what} is estimated at ${estimated_usd:,.2f}, over the budget of ${budget_usd:,.2f}; "
            "nothing was spent. Raise budget_usd, shrink n_train, or use the compact prompt style."
        )


@dataclass(frozen=True)
class Lifecycle:
    """Whether a fine-tuning job on a model can be created on a date, and why not."""

    model: str
    on: date
    can_create_job: bool
    days_to_shutdown: int
    message: str


def lifecycle(model: str, today: date | None = None, catalog: Catalog | None = None) -> Lifecycle:
    """OpenAI's wind-down, applied to one model on one day."""
    cat = catalog or load_catalog()
    today = today or date.today()
    p = cat.model(model)
    days = (p.shutdown - today).days
    window = (cat.no_new_jobs_after - today).days
    if days < 0:
        msg = f"{p.name} shut down on {p.shutdown}; neither it nor its fine-tunes can be used."
        return Lifecycle(p.name, today, False, days, msg)
    if window < 0:
        msg = (
            f"No OpenAI fine-tuning job can be created after {cat.no_new_jobs_after}; {p.name} "
            "and its "
            f"fine-tunes shut down on {p.shutdown}. Use the local backend (backend='local')."
        )
        return Lifecycle(p.name, today, False, days, msg)
    msg = (
        f"OpenAI closed fine-tuning to new organisations on {cat.closed_to_new_orgs}; existing "
        "ones can "
        "create "
        f"jobs until {cat.no_new_jobs_after} ({window} days left). {p.name} and its fine-tunes "
        "shut down on "
        f"{p.shutdown} ({days} days left)."
    )
    if window <= WARN_DAYS or days <= WARN_DAYS:
        msg = "Warning: " + msg
    return Lifecycle(p.name, today, True, days, msg)


def wind_down_summary(catalog: Catalog | None = None) -> str:
    """OpenAI's fine-tuning wind-down in one sentence, from the catalogue's dates (the one home
    of those
    dates)."""
    cat = catalog or load_catalog()
    by_date: dict[date, list[str]] = {}
    for m in cat.models.values():
        by_date.setdefault(m.shutdown, []).append(m.family)
    shutdowns = "; ".join(
        f"{', '.join(sorted(set(fams)))} and their fine-tunes shut down on {d}"
        for d, fams in sorted(by_date.items())
    )
    return (
        f"OpenAI closed self-serve fine-tuning to new organisations on {cat.closed_to_new_orgs} "
        "and allows "
        "no new "
        f"job after {cat.no_new_jobs_after}; {shutdowns}. Run the same series on the local backend "
        "(backend='local', or unset OPENAI_API_KEY), with an open-weights model for a real LLM."
    )


def require_can_fine_tune(
    model: str, today: date | None = None, catalog: Catalog | None = None
) -> Lifecycle:
    """Raise :class:`LifecycleError` when OpenAI would refuse the job on this date."""
    state = lifecycle(model, today, catalog)
    if not state.can_create_job:
        raise LifecycleError(state.message)
    return state


def cost_table(
    tokens_by_style: dict[str, np.ndarray],
    *,
    n_epochs: int | str = "auto",
    catalog: Catalog | None = None,
    models: list[str] | None = None,
) -> pd.DataFrame:
    """Training cost of the same examples for every catalogue model and every prompt style."""
    cat = catalog or load_catalog()
    rows = []
    for name in models or list(cat.models):
        for style, tokens in tokens_by_style.items():
            est = estimate_training(tokens, name, n_epochs, cat)
            rows.append(
                {
                    "model": name,
                    "style": style,
                    "epochs": est.n_epochs,
                    "billed tokens": est.billed_tokens,
                    "training $": round(est.training_usd, 2),
                    "shutdown": cat.models[name].shutdown.isoformat(),
                }
            )
    return pd.DataFrame(rows)


def inference_table(
    n_requests: int,
    prompt_tokens: float,
    completion_tokens: float,
    model: str,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """Cost of n predictions on the base and the fine-tuned model, online and through the Batch
    API."""
    rows = []
    for fine_tuned in (False, True):
        for batch in (False, True):
            usd = estimate_inference(
                n_requests,
                prompt_tokens,
                completion_tokens,
                model,
                fine_tuned=fine_tuned,
                batch=batch,
                catalog=catalog,
            )
            rows.append(
                {
                    "model": "fine-tuned" if fine_tuned else "base",
                    "path": "batch" if batch else "online",
                    "requests": n_requests,
                    "USD": round(usd, 4),
                    "USD per 1,000": round(usd / n_requests * 1000, 4),
                }
            )
    return pd.DataFrame(rows)
