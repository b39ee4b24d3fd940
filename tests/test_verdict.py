"""The verdict: every answer reached by a constructed case, the statistician's cases included, and the
sentence carrying the margin, the seed spread, the floors and the cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotune.core.taxonomy import get_taxonomy
from emotune.stages import baselines, evaluate, metrics, verdict
from emotune.stages.statistics import Comparison

GOEMOTIONS = get_taxonomy("goemotions")

LABELS = ["joy", "anger", "fear", "love", "sadness", "surprise"]


def cmp(difference, low, high, p, *, eq=None, n=1000):
    """A primary comparison as compare_models makes it (Holm p given; 90% interval inside the 95% one)."""
    eq_low, eq_high = eq or (low + (high - low) * 0.08, high - (high - low) * 0.08)
    return Comparison(
        "macro_f1", 0.3, 0.3 + difference, difference, low, high, p, n, p, eq_low, eq_high
    )


WIN = cmp(0.10, 0.07, 0.13, 0.0002)
CASES = {
    "beats both, lower bound over the baseline clears the margin": (
        WIN,
        cmp(0.05, 0.03, 0.07, 0.0004),
        verdict.WORTH_IT,
    ),
    "the baseline significantly better": (
        WIN,
        cmp(-0.06, -0.09, -0.03, 0.0002),
        verdict.BASELINE_BETTER,
    ),
    "a significant loss to the base model (-0.080, p 0.001)": (
        cmp(-0.080, -0.11, -0.05, 0.001),
        cmp(0.004, -0.03, 0.04, 0.8),
        verdict.WORSE_THAN_BASE,
    ),
    "a significant +0.002 over the baseline is equivalence, not worth it": (
        WIN,
        cmp(0.002, 0.001, 0.004, 0.01),
        verdict.BASELINE_AS_GOOD,
    ),
    "-0.025 with CI -0.06 to +0.01 is inconclusive, not 'as well'": (
        WIN,
        cmp(-0.025, -0.06, 0.01, 0.2),
        verdict.INCONCLUSIVE,
    ),
    "a significant gain whose lower bound is under the margin is inconclusive": (
        WIN,
        cmp(0.03, 0.01, 0.05, 0.003, eq=(0.014, 0.046)),
        verdict.INCONCLUSIVE,
    ),
    "no baseline compared": (WIN, None, verdict.NO_BASELINE),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_constructed_case_gets_its_answer(case):
    vs_base, vs_baseline, expected = CASES[case]
    assert verdict.decide(vs_base, vs_baseline, min_gain=0.02) is expected


def test_every_answer_is_reached_by_a_constructed_case():
    assert {answer for *_, answer in CASES.values()} == set(verdict.ANSWERS)


def test_an_inconclusive_verdict_says_how_many_comments_would_settle_it():
    c = cmp(-0.025, -0.06, 0.01, 0.2, n=1000)
    half, needed = verdict.comments_to_settle(c, 0.02)
    assert half == pytest.approx(0.005)  # nearest decision edge: -0.02
    assert needed == pytest.approx(1000 * (0.035 / 0.005) ** 2, abs=1)  # about 49,000


def _answers(gold, right_share, seed):
    """Each comment answered right with probability ``right_share``, else with 'neutral'."""
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right_share else ["neutral"] for g in gold]


@pytest.mark.parametrize(
    ("shares", "answer"),
    [
        ((0.1, 0.9, 0.5), verdict.WORTH_IT),
        ((0.1, 0.6, 0.6), verdict.BASELINE_AS_GOOD),
        ((0.5, 0.1, 0.1), verdict.WORSE_THAN_BASE),
        ((0.1, 0.4, 0.9), verdict.BASELINE_BETTER),
    ],
)
def test_the_verdict_from_real_comparisons_names_margin_spread_floors_and_cost(shares, answer):
    gold = [[LABELS[i % len(LABELS)]] for i in range(600)]
    preds = {
        name: _answers(gold, share, seed)
        for name, share, seed in zip(
            ("base", "fine-tuned", "free baseline"), shares, (1, 2, 3), strict=True
        )
    }
    if answer is verdict.BASELINE_AS_GOOD:
        preds["free baseline"] = preds["fine-tuned"]  # the same answers: a difference of exactly 0
    comparisons = evaluate.compare_models(gold, preds, GOEMOTIONS, n_resamples=999)
    frame = comparisons.to_frame()
    assert set(frame["family"]) == {"primary", "secondary"}
    assert (frame["p (Holm, within family)"] >= frame["p"]).all()
    scores = metrics.score_models(
        gold, preds, source=GOEMOTIONS, levels=[GOEMOTIONS], n_resamples=199
    )
    per_seed = pd.DataFrame(
        {"macro_f1": [0.30, 0.31, 0.29], "micro_f1": 0.4, "exact_match": 0.3}, index=[1, 2, 3]
    )
    spread = baselines.SeedSpread(per_seed, own_seed=1)
    train = pd.DataFrame({"labels": [[27]] * 3 + [[17]]})  # goemotions ids: neutral x3, joy
    floor_table = baselines.floors(gold, train, GOEMOTIONS, seed=0)
    costs = verdict.Costs(usd_online=0.036, usd_batch=0.018, training_usd=1.5)
    v = verdict.verdict(
        comparisons,
        scores,
        taxonomy=GOEMOTIONS,
        costs=costs,
        compared="label-name matcher vs TF-IDF learner",
        spread=spread,
        floors=floor_table,
    )
    assert v.answer is answer and v.sentence.startswith(
        f"Verdict: {answer.text} (label-name matcher"
    )
    assert "600 test comments" in v.sentence and "$1.50 of training" in v.sentence
    assert "The margin worth paying for is 0.020" in v.sentence and "unadjusted" in v.sentence
    assert "SD 0.0100 over 3 training draws" in v.sentence and "always 'neutral'" in v.sentence
    assert ("Each macro-F1 point gained" in v.sentence) == (answer is verdict.WORTH_IT)
    assert v.headline.startswith("Headline macro-F1 (95% BCa interval) on 600 test comments: base ")
    record = v.to_dict()
    assert record["answer"] == answer.text and record["answer_key"] == answer.key


def test_floors_score_the_majority_and_the_label_prior_answers():
    gold = [["neutral"]] * 60 + [["joy"]] * 40
    train = pd.DataFrame({"labels": [[27]] * 6 + [[17]] * 4})
    table = baselines.floors(gold, train, GOEMOTIONS, seed=0)
    majority = table.loc["always 'neutral'"]
    assert majority["exact_match"] == pytest.approx(0.6) and majority["micro_f1"] == pytest.approx(
        0.6
    )
    assert majority["macro_f1"] == pytest.approx((0.75 + 0.0) / 2)  # neutral F1 0.75, joy 0
    random = table.loc["random by label prior"]
    assert 0.3 < random["micro_f1"] < 0.65 and random["exact_match"] < majority["exact_match"]


def test_the_readme_lists_the_verdicts_answers_and_no_retired_one():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    listed = [line for line in readme.splitlines() if line[:1].isdigit() and ". **" in line]
    expected = [f"{i}. **{a.text}**: {a.rule}." for i, a in enumerate(verdict.ANSWERS, 1)]
    assert [line for line in listed if line in expected] == expected
    assert "no detectable gain at this sample size" not in readme


def test_the_score_table_carries_the_floors_at_the_runs_level():
    gold = [["neutral"]] * 6 + [["joy"]] * 4
    preds = {"base": [["neutral"]] * 10, "fine-tuned": gold}
    goemotions, sentiment = get_taxonomy("goemotions"), get_taxonomy("sentiment")
    table = metrics.score_models(
        gold, preds, source=goemotions, levels=[goemotions, sentiment], n_resamples=99
    )
    train = pd.DataFrame({"labels": [[27]] * 6 + [[17]] * 4})
    floor_table = baselines.floors(gold, train, goemotions, seed=0)
    shown = baselines.with_floors(table, floor_table, "goemotions", ("macro_f1", "exact_match"))
    assert shown.loc[("goemotions", "exact_match"), "floor: always 'neutral'"] == pytest.approx(0.6)
    assert shown.loc[("goemotions", "exact_match"), "base"] == pytest.approx(
        0.6
    )  # the base *is* the floor
    assert np.isnan(shown.loc[("sentiment", "macro_f1"), "floor: always 'neutral'"])


def test_the_headline_plot_draws_an_interval_that_misses_its_point_estimate():
    from emotune import plots

    rows = [
        {"level": "x", "model": m, "metric": "macro_f1", "value": v, "ci_low": lo, "ci_high": hi}
        for m, v, lo, hi in (("base", 0.10, 0.12, 0.20), ("fine-tuned", 0.30, 0.25, 0.29))
    ]
    fig = plots.plot_headline(pd.DataFrame(rows), level="x", metrics=("macro_f1",))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["base", "fine-tuned"]
