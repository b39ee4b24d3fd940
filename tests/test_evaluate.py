import openai
import pandas as pd
import pytest

from emotune.providers.compatible import CompatibleProvider
from emotune.providers.openai_api import OpenAIProvider
from emotune.stages import evaluate, metrics
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
    frame = pd.DataFrame({"id": [str(i) for i in range(len(labels))], "answer": "", "labels": labels, "status": "ok",
                          "unknown": [()] * len(labels), "cached": False})
    return Predictions(model, frame, [], len(labels), prompt * len(labels), completion * len(labels))


def test_cost_and_verdict():
    gold = [["joy"]] * 50 + [["anger"]] * 50
    base = [["neutral"]] * 100
    tuned = [["joy"]] * 50 + [["anger"]] * 40 + [["fear"]] * 10
    preds = {"base": fake("gpt-4o-mini-2024-07-18", base), "fine-tuned": fake("ft:gpt-4o-mini-2024-07-18:o:x:1", tuned)}
    models = {"base": "gpt-4o-mini-2024-07-18", "fine-tuned": "ft:gpt-4o-mini-2024-07-18:o:x:1"}
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    cost = evaluate.cost_per_1000(OpenAIProvider(client, "https://api.openai.com/v1"), preds, models)
    unpriced = evaluate.cost_per_1000(CompatibleProvider(client, "http://127.0.0.1:9/v1"), preds, models)
    assert unpriced["USD per 1,000 (online)"].isna().all() and unpriced["pricing"].str.startswith("not priced").all()
    assert cost.loc["fine-tuned", "USD per 1,000 (online)"] == pytest.approx(1000 * (100 * 0.3 + 5 * 1.2) / 1e6)
    assert cost.loc["fine-tuned", "USD per 1,000 (batch)"] == pytest.approx(cost.loc["fine-tuned", "USD per 1,000 (online)"] / 2)
    v = evaluate.verdict(gold, base, tuned, taxonomy="goemotions", cost=cost, training_usd=1.5)
    assert v["macro_f1"]["gain"] > 0 and v["macro_f1"]["significant"] and "significant" in v["sentence"]
    assert "$1.50 of training" in v["sentence"] and v["reference_macro_f1"] == 0.46
    table = evaluate.paired_table(gold, {"base": base, "fine-tuned": tuned}, "goemotions")
    assert table["comparison"].tolist() == ["fine-tuned - base"] * 2 and table["significant"].all()
