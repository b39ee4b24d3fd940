import numpy as np
import openai
import pandas as pd
import pytest

from emotune.providers.compatible import CompatibleProvider
from emotune.providers.openai_api import OpenAIProvider
from emotune.stages import evaluate, metrics, verdict
from emotune.stages.predict import Predictions


def test_error_analysis_finds_fixed_and_broken_comments():
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"]})
    gold = [["joy"], ["anger"], ["fear"], ["love"]]
    base = [["neutral"], ["anger"], ["fear"], ["neutral"]]
    tuned = [["joy"], ["annoyance"], ["fear"], ["neutral"]]
    table = evaluate.error_analysis(frame, gold, base, tuned)
    assert table["change"].tolist() == ["fixed", "broke"] and table["comment"].tolist() == ["a", "b"]


def test_baseline_learns_on_the_real_mirror(loaded_mirror):
    from emotune.stages import data

    dd = loaded_mirror.dataset
    train = data.stratified_sample(data.to_frame(dd["train"]), 2000, seed=0, n_labels=28)
    valid = data.stratified_sample(data.to_frame(dd["validation"]), 400, seed=0, n_labels=28)
    test = data.stratified_sample(data.to_frame(dd["test"]), 400, seed=0, n_labels=28)
    model = evaluate.train_baseline(train, valid, seed=0)
    preds = model.predict(test["text"])
    gold = evaluate.gold_labels(test)
    s = metrics.scores(metrics.to_matrix(gold, "goemotions"), metrics.to_matrix(preds, "goemotions"))
    assert s["micro_f1"] > 0.35 and all(preds)


def fake(model, labels, prompt=100, completion=5):
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(labels))],
            "answer": "",
            "labels": labels,
            "status": "ok",
            "unknown": [()] * len(labels),
            "cached": False,
        }
    )
    return Predictions(model, frame, [], len(labels), prompt * len(labels), completion * len(labels))


def _cost(preds, models):
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    return evaluate.cost_per_1000(OpenAIProvider(client, "https://api.openai.com/v1"), preds, models)


def test_cost_per_1000_in_dollars_or_not_priced():
    base, tuned = [["neutral"]] * 100, [["joy"]] * 100
    preds = {
        "base": fake("gpt-4o-mini-2024-07-18", base),
        "fine-tuned": fake("ft:gpt-4o-mini-2024-07-18:o:x:1", tuned),
    }
    models = {"base": "gpt-4o-mini-2024-07-18", "fine-tuned": "ft:gpt-4o-mini-2024-07-18:o:x:1"}
    cost = _cost(preds, models)
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    unpriced = evaluate.cost_per_1000(CompatibleProvider(client, "http://127.0.0.1:9/v1"), preds, models)
    assert list(unpriced.columns) == [
        "pricing",
        "items",
    ]  # no dollar column of NaNs, and no timing was recorded
    assert unpriced["pricing"].str.startswith("not priced").all()
    preds["fine-tuned"].seconds_per_answer = preds["base"].seconds_per_answer = 0.35  # 1,000 answers in 350 s
    timed = evaluate.cost_per_1000(CompatibleProvider(client, "http://127.0.0.1:9/v1"), preds, models)
    assert evaluate.cost_axis(timed) == "compute s per 1,000 (online)" and evaluate.cost_axis(
        cost
    ).startswith("USD")
    assert timed.loc["fine-tuned", "compute s per 1,000 (online)"] == 350.0
    from emotune.stages.verdict import _cost_words

    assert _cost_words(timed, None, 594.0) == (
        "1,000 predictions take 350 compute seconds online on this machine, "
        "after 594 compute seconds of training"
    )
    assert "compute s per 1,000 (online)" not in cost.columns  # priced in dollars: no compute column
    assert cost.loc["fine-tuned", "USD per 1,000 (online)"] == pytest.approx(
        1000 * (100 * 0.3 + 5 * 1.2) / 1e6
    )
    assert cost.loc["fine-tuned", "USD per 1,000 (batch)"] == pytest.approx(
        cost.loc["fine-tuned", "USD per 1,000 (online)"] / 2
    )


LABELS = ["joy", "anger", "fear", "love", "sadness", "surprise"]


def _answers(gold, right_share, seed):
    """Each comment answered right with probability ``right_share``, else with 'neutral'."""
    rng = np.random.default_rng(seed)
    return [g if rng.random() < right_share else ["neutral"] for g in gold]


@pytest.mark.parametrize(
    ("shares", "answer"),
    [
        ((0.1, 0.9, 0.5), verdict.WORTH_IT),  # base, fine-tuned, free baseline: beats both
        ((0.1, 0.6, 0.6), verdict.BASELINE_AS_GOOD),  # beats the base model only
        ((0.5, 0.5, 0.2), verdict.NO_GAIN),  # no better than the base model
        ((0.1, 0.4, 0.9), verdict.BASELINE_BETTER),  # beats the base model, but the free baseline beats it
    ],
)
def test_the_verdict_computes_each_of_its_four_answers(shares, answer):
    gold = [[LABELS[i % len(LABELS)]] for i in range(240)]
    preds = {
        name: _answers(gold, share, seed)
        for (name, share, seed) in zip(
            ("base", "fine-tuned", "free baseline"), shares, (1, 2, 3), strict=True
        )
    }
    if answer == verdict.NO_GAIN:
        preds["fine-tuned"] = preds["base"]
    comparisons = evaluate.compare_models(gold, preds, "goemotions", n_resamples=999)
    assert set(comparisons["comparison"]) == {"fine-tuned - base", "fine-tuned - free baseline"}
    assert (comparisons["p (Holm)"] >= comparisons["p"]).all()
    scores = metrics.score_models(gold, preds, levels=["goemotions"], n_resamples=199)
    models = {"base": "gpt-4o-mini-2024-07-18", "fine-tuned": "ft:gpt-4o-mini-2024-07-18:o:x:1"}
    cost = _cost({k: fake(models[k], preds[k]) for k in models}, models)
    v = verdict.verdict(
        comparisons,
        scores,
        taxonomy="goemotions",
        cost=cost,
        training_usd=1.5,
        compared="label-name matcher vs TF-IDF learner; dollar figures are what OpenAI would charge",
    )
    assert v["answer"] == answer and v["sentence"].startswith(f"Verdict: {answer} (label-name matcher")
    assert "240 test comments" in v["sentence"] and "$1.50 of training" in v["sentence"]
    assert "Holm-adjusted permutation p = " in v["sentence"] and "95% CI" in v["sentence"]
    assert v["headline"].startswith("Headline macro-F1 (95% BCa interval) on 240 test comments: base ")


def test_prompt_specs_ask_each_model_by_its_role():
    from emotune.core.prompts import prompt_spec

    trained = prompt_spec("compact", "json", "goemotions")
    specs = evaluate.prompt_specs(trained)
    assert specs["fine-tuned"] == trained and specs[evaluate.BASE_ON_TRAINING_PROMPT] == trained
    system = specs["base"].messages("I love it")[0]["content"]
    assert all(label in system for label in trained.taxonomy.labels) and '{"labels"' in system
