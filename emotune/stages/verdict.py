"""Notebook 05's answer to "was the fine-tune worth it?": computed from the comparisons, never
written by
hand. This module is the one home of the answers and their rules: notebook 05, ``emotune show``, the
rendered page and the README's list all come from :data:`ANSWERS`.

The decision uses the primary family only (macro-F1 of the fine-tune against the base model and
against the free baseline, Holm-corrected within it) and a margin, ``min_gain`` macro-F1 points: the
smallest gain over the free baseline worth paying for. The first answer whose rule holds is the
verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from ..core.manifest import EvaluationRecord
from ..core.roles import Role
from ..core.taxonomy import Taxonomy
from .baselines import SeedSpread
from .evaluate import PRIMARY_METRIC, Comparisons, CostTable
from .seeds import SeedTest
from .statistics import Comparison, holm

DEFAULT_MIN_GAIN = 0.02


@dataclass(frozen=True)
class Answer:
    """One possible verdict: its words and the rule that gives it."""

    key: str
    text: str
    rule: str


BASELINE_BETTER = Answer(
    "baseline_better",
    "a free baseline does better",
    "the free baseline beats the fine-tune on macro-F1 (Holm-corrected p < 0.05)",
)
WORSE_THAN_BASE = Answer(
    "worse_than_base",
    "worse than the base model",
    "the base model beats the fine-tune on macro-F1 (Holm-corrected p < 0.05)",
)
WORTH_IT = Answer(
    "worth_it",
    "the fine-tune is worth it",
    "the fine-tune beats the base model and the free baseline on macro-F1 (Holm-corrected p < "
    "0.05), and "
    "the lower end of its 95% interval over the baseline clears min_gain",
)
BASELINE_AS_GOOD = Answer(
    "baseline_as_good",
    "a free baseline does as well",
    "equivalence: the 90% interval of fine-tune minus baseline lies inside +/- min_gain (two "
    "one-sided "
    "tests at 5%)",
)
INCONCLUSIVE = Answer(
    "inconclusive",
    "inconclusive at this sample size",
    "none of the above; the verdict gives the interval and roughly how many test comments would "
    "settle it",
)
NO_BASELINE = Answer(
    "no_baseline",
    "not judged against a free baseline",
    "no free baseline was compared (and the base model does not beat the fine-tune): only the "
    "comparison "
    "with the base model is stated",
)
ANSWERS = (BASELINE_BETTER, WORSE_THAN_BASE, WORTH_IT, BASELINE_AS_GOOD, INCONCLUSIVE, NO_BASELINE)


def answers_frame() -> pd.DataFrame:
    """The answers in the order they are tried, with their rules (for the notebook and the docs)."""
    return pd.DataFrame([{"answer": a.text, "when": a.rule} for a in ANSWERS]).set_index("answer")


def _wins(c: Comparison | None) -> bool:
    return c is not None and c.significant and c.difference > 0


def _loses(c: Comparison | None) -> bool:
    return c is not None and c.significant and c.difference < 0


def decide(vs_base: Comparison | None, vs_baseline: Comparison | None, min_gain: float) -> Answer:
    """The first answer of :data:`ANSWERS` whose rule holds for the two primary comparisons."""
    if _loses(vs_baseline):
        return BASELINE_BETTER
    if _loses(vs_base):
        return WORSE_THAN_BASE
    if vs_baseline is None:
        return NO_BASELINE
    if _wins(vs_base) and _wins(vs_baseline) and vs_baseline.ci_low >= min_gain:
        return WORTH_IT
    if vs_baseline.equivalent(min_gain):
        return BASELINE_AS_GOOD
    return INCONCLUSIVE


def comments_to_settle(c: Comparison, min_gain: float) -> tuple[float, int]:
    """The 95% half-width that would settle ``c`` against 0 and +/- ``min_gain``, and about how many
    comments give it if the difference stayed the same (a half-width shrinks with 1 /
    sqrt(comments))."""
    distance = min(abs(c.difference - edge) for edge in (0.0, min_gain, -min_gain))
    half = (c.ci_high - c.ci_low) / 2
    if distance <= 0 or half <= 0:
        return distance, 0
    return distance, math.ceil(c.n_items * (half / distance) ** 2)


def _versus(c: Comparison, name: str, tost: bool = False) -> str:
    equivalence = f"; 90% CI {c.eq_low:+.3f} to {c.eq_high:+.3f}" if tost else ""
    return (
        f"vs {name} {c.a:.3f}: {c.difference:+.3f} (95% CI {c.ci_low:+.3f} to {c.ci_high:+.3f}, "
        "unadjusted"
        f"{equivalence}; Holm-adjusted permutation p = {c.p_reported:.4f})"
    )


def _spread_words(
    spread: SeedSpread | None, vs_baseline: Comparison | None, across: SeedTest | None
) -> str:
    if across is not None:
        c = across.comparison
        return (
            f"Across {c.n_items} training runs of the fine-tune and the free baseline on the "
            "same draws "
            f"(paired t-test on the per-draw macro-F1 differences): {c.difference:+.3f} (95% "
            "t-interval "
            f"{c.ci_low:+.3f} to {c.ci_high:+.3f}; 90% {c.eq_low:+.3f} to {c.eq_high:+.3f}; "
            "Holm-adjusted "
            f"p = {c.p_reported:.4f}); "
            "the verdict's comparison with the baseline is this one."
        )
    if spread is None or spread.n_draws < 2:
        return "One training run of each model; the draw-to-draw spread was not measured."
    band = spread.noise_band()
    words = (
        f"One training run of the fine-tune: the free baseline's macro-F1 varied with SD "
        f"{spread.sd():.4f} over {spread.n_draws} training draws, so a difference within "
        f"+/-{band:.3f} "
        "between two single runs could be draw-to-draw noise"
    )
    if vs_baseline is not None:
        inside = abs(vs_baseline.difference) < band
        where = "inside" if inside else "outside"
        words += f" (the difference to the baseline, {vs_baseline.difference:+.3f}, is {where} it)"
    return words + "."


def _floor_words(floors: pd.DataFrame | None) -> str:
    if floors is None or floors.empty:
        return ""
    parts = [
        f"{name}: macro-F1 {r['macro_f1']:.3f}, micro-F1 {r['micro_f1']:.3f}, "
        f"exact match {r['exact_match']:.3f}"
        for name, r in floors.iterrows()
    ]
    return "Floors on these comments (no model reads them): " + "; ".join(parts) + "."


@dataclass(frozen=True)
class Costs:
    """What the fine-tune costs: per 1,000 online predictions and to train (dollars, or compute
    seconds)."""

    usd_online: float | None = None
    usd_batch: float | None = None
    seconds_online: float | None = None
    training_usd: float | None = None
    training_seconds: float | None = None
    pricing: str = ""
    runs: int = 1  # training runs the training figures cover (n_seeds)

    @classmethod
    def from_table(
        cls, cost: CostTable, training_usd=None, training_seconds=None, runs: int = 1
    ) -> Costs:
        """The fine-tune's row of :func:`emotune.stages.evaluate.cost_per_1000`; the training
        figures are per
        run and are multiplied by ``runs``."""
        row = cost.get(Role.FINE_TUNED)
        return cls(
            None if row is None else row.usd_online,
            None if row is None else row.usd_batch,
            None if row is None else row.compute_seconds_online,
            None if training_usd is None else training_usd * runs,
            None if training_seconds is None else training_seconds * runs,
            "" if row is None else row.pricing,
            runs,
        )

    def words(self) -> str:
        if self.usd_online is not None:
            batch = self.usd_batch or 0
            words = f"1,000 predictions cost ${self.usd_online:.3f} online (${batch:.3f} by Batch)"
            runs = f" ({self.runs} training runs)" if self.runs > 1 else ""
            return words + (
                f", after ${self.training_usd:.2f} of training{runs}" if self.training_usd else ""
            )
        if self.seconds_online is not None:
            seconds = self.seconds_online
            words = f"1,000 predictions take {seconds:,.0f} compute seconds online on this machine"
            if self.training_seconds is not None:
                words += f", after {self.training_seconds:,.0f} compute seconds of training"
            return words
        if self.training_seconds is not None:
            took = f"training took {self.training_seconds:,.0f} compute seconds"
            return f"{took}; no dollar price ({self.pricing})"
        return f"no dollar price ({self.pricing})" if self.pricing else "no price"

    def per_point(self, gain: float) -> str:
        """The cost of one macro-F1 point (0.01) gained over the free baseline."""
        points = gain * 100
        if self.training_usd is not None and self.usd_online is not None:
            return (
                "Each macro-F1 point gained over the free baseline costs "
                f"${self.training_usd / points:.2f} "
                f"of training and ${self.usd_online / points:.4f} per 1,000 predictions."
            )
        if self.training_seconds is not None:
            seconds = self.training_seconds / points
            return (
                f"Each macro-F1 point gained over the free baseline took {seconds:,.0f} seconds "
                "of training."
            )
        return ""


@dataclass(frozen=True)
class Verdict:
    """The computed verdict and the figures behind it (``to_dict`` is what the manifest keeps)."""

    answer: Answer
    sentence: str
    headline: str
    taxonomy: str
    n_items: int
    compared: str
    min_gain: float
    comparisons: list = field(default_factory=list)
    floors: dict = field(default_factory=dict)
    seed_spread: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)
    across_draws: dict = field(
        default_factory=dict
    )  # several training runs: per draw, and the test
    metric: str = PRIMARY_METRIC

    def to_dict(self) -> dict:
        out = asdict(self)
        out["answer"], out["answer_key"], out["rule"] = (
            self.answer.text,
            self.answer.key,
            self.answer.rule,
        )
        return out


def _sentence(
    answer, vs_base, vs_baseline, *, n, taxonomy, compared, min_gain, spread, floors, costs, across
) -> str:
    parts = [f"Verdict: {answer.text}" + (f" ({compared})" if compared else "") + "."]
    if vs_base is not None or vs_baseline is not None:
        tuned = (vs_base or vs_baseline).b
        versus = [_versus(vs_base, Role.BASE)] if vs_base is not None else []
        versus += (
            [_versus(vs_baseline, "the free baseline", tost=True)]
            if vs_baseline is not None
            else []
        )
        parts.append(
            f"On {n:,} test comments ({taxonomy} labels), macro-F1 of the fine-tuned model "
            f"{tuned:.3f} "
            + "; ".join(versus)
            + f". The margin worth paying for is {min_gain:.3f} macro-F1 over the free baseline."
        )
    decisive = across.comparison if across is not None else vs_baseline
    if answer is WORTH_IT:
        parts.append(costs.per_point(decisive.difference))
    if answer is INCONCLUSIVE:
        half, needed = comments_to_settle(decisive, min_gain)
        unit = "training runs" if across is not None else "test comments"
        parts.append(
            "To settle it the 95% interval of fine-tune minus baseline would need a half-width "
            "under "
            f"{half:.3f}: roughly {needed:,} {unit} if the difference stayed at "
            f"{decisive.difference:+.3f}."
        )
    parts.append(_spread_words(spread, vs_baseline, across))
    parts.append(_floor_words(floors))
    cost_words = costs.words()
    parts.append(cost_words[:1].upper() + cost_words[1:] + ".")
    return " ".join(p for p in parts if p)


def verdict(
    comparisons: Comparisons,
    scores: pd.DataFrame,
    *,
    taxonomy: Taxonomy,
    costs: Costs,
    compared: str = "",
    min_gain: float = DEFAULT_MIN_GAIN,
    spread: SeedSpread | None = None,
    floors: pd.DataFrame | None = None,
    across: SeedTest | None = None,
) -> Verdict:
    """The verdict: its answer, a sentence with the intervals, margin, seed spread, floors and cost
    behind it, and a headline figure line. With several training runs (``across``) the comparison
    with the free baseline is the test across draws, Holm-corrected with the one against the base
    model. ``taxonomy`` is the label set scored (its name is the level of ``scores`` the verdict
    reads)."""
    level_name = taxonomy.name
    vs_base, vs_baseline = comparisons.get(Role.BASE), comparisons.get(Role.FREE_BASELINE)
    decisive = vs_baseline
    if across is not None and vs_base is not None:
        vs_base_raw = Comparison(**{**vs_base.__dict__, "p_holm": None})
        vs_base, seeded = holm([vs_base_raw, across.comparison])
        across = SeedTest(across.per_draw, seeded)
        decisive = seeded
    answer = decide(vs_base, decisive, min_gain)
    n = comparisons.n_items
    sentence = _sentence(
        answer,
        vs_base,
        vs_baseline,
        n=n,
        taxonomy=level_name,
        compared=compared,
        min_gain=min_gain,
        spread=spread,
        floors=floors,
        costs=costs,
        across=across,
    )
    level = scores[(scores.level == level_name) & (scores.metric == PRIMARY_METRIC)].set_index(
        "model"
    )
    figures = [
        f"{name} {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for name, r in level.iterrows()
    ]
    if floors is not None:
        figures += [f"{name} {r['macro_f1']:.3f} (floor)" for name, r in floors.iterrows()]
    headline = f"Headline macro-F1 (95% BCa interval) on {n:,} test comments: " + "; ".join(figures)
    return Verdict(
        answer,
        sentence,
        headline,
        level_name,
        n,
        compared,
        min_gain,
        comparisons.to_frame().to_dict("records"),
        {} if floors is None else floors.to_dict("index"),
        {}
        if spread is None
        else {
            "per_seed": {str(s): r for s, r in spread.per_seed.to_dict("index").items()},
            "sd_macro_f1": spread.sd(),
            "draws": spread.n_draws,
        },
        asdict(costs),
        {}
        if across is None
        else {
            "per_draw": {str(s): r for s, r in across.per_draw.to_dict("index").items()},
            "comparison": asdict(across.comparison),
        },
    )


def record_evaluation(run, result: Verdict, scores: pd.DataFrame, frame: pd.DataFrame) -> Verdict:
    """Write the verdict, the score table and the evaluated ids into the manifest (this stage's
    section)."""
    run.put(
        EvaluationRecord(
            verdict=result.to_dict(),
            scores=scores.to_dict("records"),
            sample_ids=frame["id"].tolist(),
        )
    )
    return result
