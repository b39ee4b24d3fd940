from datetime import date

import numpy as np
import pytest

from emotune import BudgetError, ConfigError, LifecycleError
from emotune.core import pricing


@pytest.mark.parametrize(
    "n, epochs",
    [
        (1, 25),
        (3, 25),
        (4, 25),
        (5, 20),
        (33, 4),
        (34, 3),
        (100, 3),
        (8333, 3),
        (8334, 2),
        (12500, 2),
        (12501, 1),
        (43410, 1),
    ],
)
def test_default_epochs_rule_at_its_boundaries(n, epochs):
    assert pricing.default_epochs(n) == epochs


def test_catalogue_is_dated_sourced_and_complete():
    cat = pricing.load_catalog()
    assert cat.as_of and set(cat.sources) >= {"prices", "lifecycle"}
    for name in (
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
    ):
        assert cat.models[name].shutdown == date(2027, 1, 14)
    assert cat.models["gpt-3.5-turbo-0125"].shutdown == date(2026, 10, 23)
    assert cat.closed_to_new_orgs == date(2026, 5, 7) and cat.no_new_jobs_after == date(2027, 1, 6)
    assert cat.model("gpt-4o-mini").name == "gpt-4o-mini-2024-07-18"
    assert cat.model("ft:gpt-4.1-mini-2025-04-14:org:x:1").name == "gpt-4.1-mini-2025-04-14"
    with pytest.raises(ConfigError, match="not in the pricing catalogue"):
        cat.model("gpt-9")


def test_user_catalogue_overrides(tmp_path):
    import json
    from importlib import resources

    raw = json.loads(resources.files("emotune").joinpath("catalog/models.json").read_text())
    raw["models"]["gpt-4o-mini-2024-07-18"]["training_per_1m"] = 100.0
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(raw))
    est = pricing.estimate_training([50_000] * 20, "gpt-4o-mini", 1, pricing.load_catalog(path))
    assert est.training_usd == 100.0


def test_training_estimate_caps_examples_and_multiplies_epochs():
    est = pricing.estimate_training(np.array([100, 200, 20_000]), "gpt-3.5-turbo-0125", n_epochs=2)
    assert est.truncated_examples == 1 and est.tokens_per_epoch == 100 + 200 + 16_385
    assert est.billed_tokens == 2 * 16_685 and est.training_usd == pytest.approx(
        2 * 16_685 / 1e6 * 8.0, abs=1e-4
    )
    assert pricing.estimate_training(np.full(40, 10), "gpt-4o-mini").n_epochs == 3


def test_inference_and_batch_discount():
    online = pricing.estimate_inference(1000, 100, 5, "gpt-4o-mini", fine_tuned=True)
    assert online == pytest.approx(1000 * (100 * 0.3 + 5 * 1.2) / 1e6)
    assert pricing.estimate_inference(
        1000, 100, 5, "gpt-4o-mini", fine_tuned=True, batch=True
    ) == pytest.approx(online / 2)
    table = pricing.inference_table(500, 40, 3, "gpt-4.1-mini")
    assert len(table) == 4 and table["USD"].min() > 0


def test_budget_guard():
    pricing.check_budget(4.99, 5.0)
    with pytest.raises(BudgetError, match="nothing was spent"):
        pricing.check_budget(5.01, 5.0, "training")


@pytest.mark.parametrize(
    "model, today, can, warn",
    [
        ("gpt-4o-mini", date(2026, 11, 1), True, False),
        ("gpt-4o-mini", date(2026, 12, 20), True, True),
        ("gpt-4o-mini", date(2027, 1, 7), False, False),
        ("gpt-4o-mini", date(2027, 1, 15), False, False),
        ("gpt-3.5-turbo-0125", date(2026, 11, 1), False, False),
    ],
)
def test_lifecycle(model, today, can, warn):
    state = pricing.lifecycle(model, today)
    assert state.can_create_job is can and state.message.startswith("Warning") is warn
    if not can:
        with pytest.raises(LifecycleError):
            pricing.require_can_fine_tune(model, today)


def test_cost_table_across_models_and_styles():
    table = pricing.cost_table({"verbose": np.full(100, 180), "compact": np.full(100, 40)})
    assert set(table["style"]) == {"verbose", "compact"} and len(table) == 2 * len(
        pricing.load_catalog().models
    )
    row = table[(table.model == "gpt-4o-mini-2024-07-18") & (table["style"] == "compact")].iloc[0]
    assert row["billed tokens"] == 100 * 40 * 3


def test_cli_estimate_budget(tmp_path, capsys):
    import json

    from emotune import cli
    from emotune.core.prompts import render_example

    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(render_example(f"c{i}", ["joy"])) + "\n" for i in range(20)))
    assert cli.main(["estimate", str(f), "--model", "gpt-4o-mini", "--budget", "10"]) == 0
    assert "within the budget" in capsys.readouterr().out
    assert cli.main(["estimate", str(f), "--model", "gpt-4o-mini", "--budget", "0.000001"]) == 2


def test_a_non_dollar_pricing_counts_tokens_but_bills_nothing():
    compute = pricing.Pricing.compute("Qwen/Qwen2.5-0.5B-Instruct", "your hardware")
    est = pricing.estimate_training([100, 200, 70_000], compute, n_epochs=2)
    assert (
        est.training_usd is None and est.billed_tokens == 2 * 70_300 and est.truncated_examples == 0
    )
    with pytest.raises(ConfigError, match="not in the pricing catalogue"):
        pricing.load_catalog().model("Qwen/Qwen2.5-0.5B-Instruct")


def test_wind_down_dates_come_from_the_catalogue():
    text = pricing.wind_down_summary()
    cat = pricing.load_catalog()
    assert (
        str(cat.no_new_jobs_after) in text
        and str(cat.closed_to_new_orgs) in text
        and "2027-01-14" in text
    )
