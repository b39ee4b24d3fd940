import numpy as np
import pytest
from sklearn.metrics import f1_score, hamming_loss, jaccard_score

from emotune.stages import metrics


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
    # label 0: tp 2 -> F1 1; label 1: fn 2 -> 0; label 2: fp 1 -> 0; macro over the 3 labels that occur
    assert s["macro_f1"] == pytest.approx(1 / 3)
    assert s["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # tp 2, fp 1, fn 2
    assert s["exact_match"] == pytest.approx(1 / 3)
    assert s["jaccard"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert s["hamming_loss"] == pytest.approx(3 / 9)


def test_a_label_absent_from_gold_and_predictions_does_not_count():
    y = np.array([[1, 0], [1, 0]])
    assert metrics.scores(y, y)["macro_f1"] == 1.0


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    y, p = random_case(0, n=200)
    small = metrics.confidence_intervals(y, p, n_boot=500).set_index("metric")
    y2, p2 = random_case(0, n=3000)
    big = metrics.confidence_intervals(y2, p2, n_boot=500).set_index("metric")
    for m in ("micro_f1", "exact_match"):
        assert small.loc[m, "ci_low"] <= small.loc[m, "value"] <= small.loc[m, "ci_high"]
        assert (big.loc[m, "ci_high"] - big.loc[m, "ci_low"]) < (small.loc[m, "ci_high"] - small.loc[m, "ci_low"])


def test_paired_test_detects_a_real_difference_and_not_a_fake_one():
    y, good = random_case(3, n=600, noise=0.05)
    _, bad = random_case(3, n=600, noise=0.25)
    real = metrics.paired_test(y, bad, good, "micro_f1", n_boot=1000)
    assert real.difference > 0 and real.significant and real.p_value < 0.01
    same = metrics.paired_test(y, good, good, "macro_f1", n_boot=200)
    assert same.difference == 0 and not same.significant
    reverse = metrics.paired_test(y, good, bad, "micro_f1", n_boot=1000)
    assert reverse.difference == pytest.approx(-real.difference) and reverse.ci_high < 0


def test_levels_and_confusions():
    gold = [["annoyance"], ["joy", "love"], ["neutral"]]
    pred = [["anger"], ["joy"], ["curiosity"]]
    table = metrics.score_models(gold, {"m": pred}, n_boot=50)
    ekman = table[(table.level == "ekman") & (table.metric == "exact_match")]["value"].iloc[0]
    fine = table[(table.level == "goemotions") & (table.metric == "exact_match")]["value"].iloc[0]
    assert fine == 0 and ekman == pytest.approx(2 / 3)  # annoyance/anger and joy/love agree at the Ekman level
    conf = metrics.top_confusions(gold, pred)
    assert conf.iloc[0].tolist() == ["annoyance", "anger", 1] and len(conf) == 2  # a missed label with nothing said instead is no confusion
    assert metrics.to_matrix([["joy", "nonsense"]], "goemotions").sum() == 1


def test_single_label_accuracy_and_confusion_match_scikit_learn():
    from sklearn.metrics import accuracy_score

    from emotune.core.taxonomy import from_labels, register_taxonomy
    from emotune.stages.metrics import single_label_report

    tax = register_taxonomy(from_labels("queues-test", ["billing", "bug", "login"], multi_label=False))
    gold = [["billing"], ["bug"], ["login"], ["bug"]]
    tuned = [["billing"], ["login"], ["login"], ["bug", "login"]]
    report = single_label_report(gold, {"base": [["bug"]] * 4, "fine-tuned": tuned}, tax)
    assert report["accuracy"].loc["fine-tuned", "accuracy"] == accuracy_score(
        ["billing", "bug", "login", "bug"], ["billing", "login", "login", "(other)"]) == 0.5
    assert report["confusion"].loc["bug", "login"] == 1 and report["confusion"].loc["bug", "(other)"] == 1
    multi = single_label_report(gold, {"fine-tuned": tuned}, "goemotions")
    assert "multi-label" in multi["accuracy"]["note"].iloc[0] and multi["confusion"].empty
