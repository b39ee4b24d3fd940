import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss, jaccard_score

from emotune.core.taxonomy import get_taxonomy
from emotune.stages import metrics, statistics


def random_case(seed, n=300, labels=12, p=0.15, noise=0.2):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < p).astype(np.int8)
    y[np.arange(n), rng.integers(0, labels, n)] = 1  # every row has a label
    flip = rng.random((n, labels)) < noise
    return y, np.where(flip, 1 - y, y).astype(np.int8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_scikit_learn(seed):
    y, p = random_case(seed)
    s = metrics.scores(y, p)
    assert s["micro_f1"] == pytest.approx(f1_score(y, p, average="micro"))
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, p, average="weighted", zero_division=0))
    assert s["hamming_loss"] == pytest.approx(hamming_loss(y, p))
    assert s["jaccard"] == pytest.approx(jaccard_score(y, p, average="samples", zero_division=1))
    assert s["exact_match"] == pytest.approx((y == p).all(axis=1).mean())
    report = metrics.per_label(y, p, [f"l{i}" for i in range(y.shape[1])])
    assert report["f1"].to_numpy() == pytest.approx(f1_score(y, p, average=None, zero_division=0))


def test_hand_computed_case():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    p = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0]])
    s = metrics.scores(y, p)
    # label 0: tp 2 -> F1 1; label 1: fn 2 -> 0; label 2: fp 1, no gold example -> not in the macro average
    assert s["macro_f1"] == pytest.approx(1 / 2)
    assert s["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # tp 2, fp 1, fn 2
    assert s["exact_match"] == pytest.approx(1 / 3)
    assert s["jaccard"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert s["hamming_loss"] == pytest.approx(3 / 9)


def test_macro_f1_averages_the_labels_with_gold_examples_like_scikit_learn():
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    p = np.array([[1, 0, 1], [1, 0, 0], [1, 0, 0]])
    s = metrics.scores(y, p)
    present = [
        0,
        1,
    ]  # label 2 has no gold example: its false positive shows in micro-F1, not in the average
    assert s["macro_f1"] == pytest.approx(
        f1_score(y, p, average="macro", labels=present, zero_division=0)
    )
    assert np.isnan(s["macro_f1_supported"])  # no label has 5 gold examples here


@pytest.mark.parametrize("seed", [0, 1])
def test_supported_macro_f1_leaves_out_rare_labels(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((400, 10)) < np.linspace(0.003, 0.3, 10)).astype(np.int8)
    p = np.where(rng.random(y.shape) < 0.1, 1 - y, y)
    support = y.sum(axis=0)
    s = metrics.scores(y, p)
    assert s["macro_f1_supported"] == pytest.approx(
        f1_score(y, p, average="macro", labels=np.flatnonzero(support >= 5), zero_division=0)
    )
    assert s["macro_f1"] == pytest.approx(
        f1_score(y, p, average="macro", labels=np.flatnonzero(support > 0), zero_division=0)
    )


def test_bca_intervals_equal_scipys_own_on_the_same_resamples():
    from scipy.stats import bootstrap

    y, p = random_case(4, n=250)
    ci = statistics.bca_intervals(y, p, n_resamples=2000, seed=11)
    rows = np.arange(len(y))

    def micro(idx, axis=-1):  # scikit-learn's micro-F1 on each resample, one at a time
        return np.apply_along_axis(lambda r: f1_score(y[r], p[r], average="micro"), axis, idx)

    ref = bootstrap(
        (rows,),
        micro,
        n_resamples=2000,
        vectorized=True,
        method="BCa",
        rng=np.random.default_rng(11),
    )
    assert ci["micro_f1"][1] == pytest.approx(ref.confidence_interval.low, abs=1e-9)
    assert ci["micro_f1"][2] == pytest.approx(ref.confidence_interval.high, abs=1e-9)


def test_bca_interval_contains_the_estimate_and_shrinks_with_n():
    y, p = random_case(0, n=200)
    small = metrics.confidence_intervals(y, p, n_resamples=999).set_index("metric")
    y2, p2 = random_case(0, n=3000)
    big = metrics.confidence_intervals(y2, p2, n_resamples=999).set_index("metric")
    for m in ("micro_f1", "exact_match", "macro_f1"):
        assert small.loc[m, "ci_low"] <= small.loc[m, "value"] <= small.loc[m, "ci_high"]
        assert (big.loc[m, "ci_high"] - big.loc[m, "ci_low"]) < (
            small.loc[m, "ci_high"] - small.loc[m, "ci_low"]
        )


def test_permutation_test_knows_a_real_difference_from_none():
    y, good = random_case(3, n=600, noise=0.05)
    _, bad = random_case(3, n=600, noise=0.25)
    real = statistics.compare(y, bad, good, "micro_f1", n_resamples=999)
    assert (
        real.difference > 0 and real.p_value == pytest.approx(1 / 1000) and real.ci_low > 0
    )  # (0 + 1) / (999 + 1)
    same = statistics.compare(y, good, good, "macro_f1", n_resamples=999)
    assert same.difference == 0 and same.p_value == 1.0 and not same.significant
    # two models that differ only by chance: the same gold labels, each flipped by its own 5% noise
    twins = [np.where(np.random.default_rng(s).random(y.shape) < 0.05, 1 - y, y) for s in (21, 22)]
    twin = statistics.compare(y, *twins, "micro_f1", n_resamples=999)
    assert twin.p_value > 0.01 and twin.ci_low < 0 < twin.ci_high
    reverse = statistics.compare(y, good, bad, "micro_f1", n_resamples=999)
    assert reverse.difference == pytest.approx(-real.difference) and reverse.ci_high < 0


def test_holm_adjusts_a_family_of_tests_like_statsmodels():
    from statsmodels.stats.multitest import multipletests

    base = statistics.Comparison("macro_f1", 0.1, 0.2, 0.1, 0.05, 0.15, 0.0, 100)
    family = [
        statistics.Comparison(**{**base.__dict__, "p_value": p}) for p in (0.01, 0.04, 0.03, 0.2)
    ]
    adjusted = statistics.holm(family)
    assert [c.p_holm for c in adjusted] == pytest.approx(
        multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    )
    assert [c.significant for c in adjusted] == [True, False, False, False]


def test_levels_and_confusions():
    gold = [["annoyance"], ["joy", "love"], ["neutral"]]
    pred = [["anger"], ["joy"], ["curiosity"]]
    table = metrics.score_models(
        gold, {"m": pred}, source=get_taxonomy("goemotions"), n_resamples=199
    )
    ekman = table[(table.level == "ekman") & (table.metric == "exact_match")]["value"].iloc[0]
    fine = table[(table.level == "goemotions") & (table.metric == "exact_match")]["value"].iloc[0]
    assert fine == 0 and ekman == pytest.approx(
        2 / 3
    )  # annoyance/anger and joy/love agree at the Ekman level
    conf = metrics.top_confusions(gold, pred)
    assert (
        conf.iloc[0].tolist() == ["annoyance", "anger", 1] and len(conf) == 2
    )  # a missed label with nothing said instead is no confusion
    assert metrics.to_matrix([["joy", "nonsense"]], get_taxonomy("goemotions")).sum() == 1


def test_single_label_accuracy_and_confusion_match_scikit_learn():
    from sklearn.metrics import accuracy_score

    from emotune.core.taxonomy import from_labels
    from emotune.stages.metrics import single_label_report

    tax = from_labels("queues-test", ["billing", "bug", "login"], multi_label=False)
    gold = [["billing"], ["bug"], ["login"], ["bug"]]
    tuned = [["billing"], ["login"], ["login"], ["bug", "login"]]
    report = single_label_report(gold, {"base": [["bug"]] * 4, "fine-tuned": tuned}, tax)
    assert (
        report["accuracy"].loc["fine-tuned", "accuracy"]
        == accuracy_score(
            ["billing", "bug", "login", "bug"], ["billing", "login", "login", "(other)"]
        )
        == 0.5
    )
    assert (
        report["confusion"].loc["bug", "login"] == 1
        and report["confusion"].loc["bug", "(other)"] == 1
    )
    multi = single_label_report(gold, {"fine-tuned": tuned}, get_taxonomy("goemotions"))
    assert "multi-label" in multi["accuracy"]["note"].iloc[0] and multi["confusion"].empty
