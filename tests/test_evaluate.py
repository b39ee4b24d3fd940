import openai
import pandas as pd
import pytest

from emotune.core.taxonomy import get_taxonomy
from emotune.providers.compatible import CompatibleProvider
from emotune.providers.openai_api import OpenAIProvider
from emotune.stages import baselines, evaluate, metrics
from emotune.stages.predict import Predictions

GOEMOTIONS = get_taxonomy("goemotions")


def test_error_analysis_finds_fixed_and_broken_comments():
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"]})
    gold = [["joy"], ["anger"], ["fear"], ["love"]]
    base = [["neutral"], ["anger"], ["fear"], ["neutral"]]
    tuned = [["joy"], ["annoyance"], ["fear"], ["neutral"]]
    table = evaluate.error_analysis(frame, gold, base, tuned)
    assert table["change"].tolist() == ["fixed", "broke"] and table["comment"].tolist() == [
        "a",
        "b",
    ]


def test_baseline_learns_on_the_real_mirror(loaded_mirror):
    from emotune.stages import data

    dd = loaded_mirror.dataset
    train = data.stratified_sample(data.to_frame(dd["train"]), 2000, seed=0, n_labels=28)
    valid = data.stratified_sample(data.to_frame(dd["validation"]), 400, seed=0, n_labels=28)
    test = data.stratified_sample(data.to_frame(dd["test"]), 400, seed=0, n_labels=28)
    model = baselines.train_baseline(train, valid, GOEMOTIONS, seed=0)
    preds = model.predict(test["text"])
    gold = baselines.gold_labels(test, GOEMOTIONS)
    s = metrics.scores(metrics.to_matrix(gold, GOEMOTIONS), metrics.to_matrix(preds, GOEMOTIONS))
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
    return Predictions(
        model, frame, [], len(labels), prompt * len(labels), completion * len(labels)
    )


def _cost(preds, models):
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    return evaluate.cost_per_1000(
        OpenAIProvider(client, "https://api.openai.com/v1"), preds, models
    )


def test_cost_per_1000_in_dollars_or_not_priced():
    base, tuned = [["neutral"]] * 100, [["joy"]] * 100
    preds = {
        "base": fake("gpt-4o-mini-2024-07-18", base),
        "fine-tuned": fake("ft:gpt-4o-mini-2024-07-18:o:x:1", tuned),
    }
    models = {"base": "gpt-4o-mini-2024-07-18", "fine-tuned": "ft:gpt-4o-mini-2024-07-18:o:x:1"}
    cost = _cost(preds, models)
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    unpriced = evaluate.cost_per_1000(
        CompatibleProvider(client, "http://127.0.0.1:9/v1"), preds, models
    )
    assert list(unpriced.to_frame().columns) == [
        "pricing",
        "items",
    ]  # no dollar column of NaNs, and no timing was recorded
    assert all(r.pricing.startswith("not priced") for r in unpriced.rows)
    assert unpriced.get("fine-tuned").usd_online is None and not unpriced.priced
    # 1,000 answers in 350 s
    preds["fine-tuned"].seconds_per_answer = preds["base"].seconds_per_answer = 0.35
    timed = evaluate.cost_per_1000(
        CompatibleProvider(client, "http://127.0.0.1:9/v1"), preds, models
    )
    assert evaluate.cost_axis(timed) == "compute s per 1,000 (online)" and evaluate.cost_axis(
        cost
    ).startswith("USD")
    assert timed.to_frame().loc["fine-tuned", "compute s per 1,000 (online)"] == 350.0
    assert timed.get("fine-tuned").compute_seconds_online == 350.0
    assert timed.axis_values().to_dict() == {"base": 350.0, "fine-tuned": 350.0}
    from emotune.stages.verdict import Costs

    assert Costs.from_table(timed, None, 594.0).words() == (
        "1,000 predictions take 350 compute seconds online on this machine, "
        "after 594 compute seconds of training"
    )
    frame = cost.to_frame()
    assert (
        "compute s per 1,000 (online)" not in frame.columns
    )  # priced in dollars: no compute column
    assert frame.loc["fine-tuned", "USD per 1,000 (online)"] == pytest.approx(
        1000 * (100 * 0.3 + 5 * 1.2) / 1e6
    )
    assert frame.loc["fine-tuned", "USD per 1,000 (batch)"] == pytest.approx(
        frame.loc["fine-tuned", "USD per 1,000 (online)"] / 2
    )
    row = cost.get("fine-tuned")
    assert row.usd_online == frame.loc["fine-tuned", "USD per 1,000 (online)"] and row.items == 100
    assert Costs.from_table(cost).usd_batch == row.usd_batch


def test_prompt_specs_ask_each_model_by_its_role():
    from emotune.core.prompts import prompt_spec

    trained = prompt_spec("compact", "json", "goemotions")
    specs = evaluate.prompt_specs(trained)
    assert specs["fine-tuned"] == trained and specs[evaluate.BASE_ON_TRAINING_PROMPT] == trained
    system = specs["base"].messages("I love it")[0]["content"]
    assert all(label in system for label in trained.taxonomy.labels) and '{"labels"' in system
