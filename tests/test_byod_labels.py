"""Your own labels, read safely and scored correctly: a label the answer formats cannot carry is
refused when the label set is made (notebook 01), naming the label and the rule; every label the
rule lets through comes back intact from both answer formats; a data file that is a pipe or a
device is never read; the headline figures draw intervals that do not contain their estimate."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotune import ConfigError
from emotune.core.datasets import DatasetParams, resolve_spec
from emotune.core.prompts import format_answer, parse_answer
from emotune.core.taxonomy import LABEL_PATTERN, check_labels, from_labels
from emotune.stages import data


def load(path, **strings):
    spec = resolve_spec(DatasetParams.from_parameters({"dataset": str(path), **strings}))
    return data.load_own(spec)


def rows(labels, n=40):
    return pd.DataFrame(
        {"text": [f"text {i} about {labels[i % len(labels)]}" for i in range(n)]}
        | {"label": [labels[i % len(labels)] for i in range(n)]}
    )


@pytest.mark.parametrize(
    "bad",
    ["refund, please", 'say "hi"', "two\nlines", "<unk>", "ends with a dot.", "a|b", "x" * 62],
)
def test_a_label_the_answer_formats_cannot_carry_is_refused_in_one_line(tmp_path, bad):
    path = tmp_path / "tickets.csv"
    rows(["billing", bad, "login"]).to_csv(path, index=False)
    with pytest.raises(ConfigError) as caught:
        load(path)
    message = str(caught.value)
    assert repr(bad[:80]) in message and "a label is 1 to 61" in message
    if "," in bad or "|" in bad:
        assert "label_separator" in message


def test_labels_an_answer_cannot_tell_apart_are_refused(tmp_path):
    path = tmp_path / "tickets.csv"
    rows(["Billing", "billing", "login"]).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="'Billing' and 'billing' differ only in case"):
        load(path)


def test_labels_with_and_symbols_and_accents_are_carried_through(tmp_path):
    labels = ["rock and roll", "R&B", "C++", "U.S. news", "café au lait"]
    path = tmp_path / "music.csv"
    rows(labels, n=100).to_csv(path, index=False)
    loaded = load(path)
    assert sorted(loaded.taxonomy.labels) == sorted(labels)
    for fmt in ("comma", "json"):
        answer = format_answer(["rock and roll", "C++"], fmt)
        got = parse_answer(answer, loaded.taxonomy).labels
        assert sorted(got) == ["C++", "rock and roll"]


LABEL = st.from_regex(LABEL_PATTERN, fullmatch=True).filter(lambda s: "\n" not in s)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LABEL, min_size=2, max_size=8), st.data())
def test_every_label_the_rule_lets_through_comes_back_from_both_formats(labels, draw):
    try:
        tax = from_labels("fuzz", labels, multi_label=True)
    except ConfigError as exc:  # repeats, case twins or doubled spaces: refused, and said so
        assert "fuzz" in str(exc)
        return
    chosen = draw.draw(st.lists(st.sampled_from(labels), min_size=1, max_size=3, unique=True))
    expected = tuple(sorted(chosen, key=tax.index))
    for fmt in ("comma", "json"):
        parsed = parse_answer(format_answer(chosen, fmt), tax)
        assert parsed.labels == expected and parsed.status == "ok", (fmt, chosen, parsed)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=70))
def test_any_text_is_a_label_that_round_trips_or_is_refused_by_the_rule(label):
    other = "zz other label"
    try:
        check_labels("fuzz", [label, other])
    except ConfigError as exc:
        assert "\n" not in str(exc).replace(repr(label[:80]), "")
        return
    tax = from_labels("fuzz", [label, other], multi_label=False)
    for fmt in ("comma", "json"):
        assert parse_answer(format_answer([label], fmt), tax).labels == (label,)


def test_a_dataset_that_is_a_pipe_or_a_device_is_refused_before_reading(tmp_path):
    fifo = tmp_path / "train.csv"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        resolve_spec(DatasetParams.from_parameters({"dataset": str(fifo)}))


def test_a_release_folder_whose_split_is_a_pipe_or_a_device_is_refused(tmp_path):
    from emotune import DataError

    os.mkfifo(tmp_path / "train.tsv")
    (tmp_path / "dev.tsv").symlink_to("/dev/zero")
    (tmp_path / "test.tsv").write_text("hi\t1\tx\n")
    with pytest.raises(DataError, match="train.tsv.*not a regular file"):
        data.load_local(tmp_path, verify=False)


def test_a_huge_label_names_file_is_refused(tmp_path):
    names = tmp_path / "names.txt"
    with open(names, "wb") as f:
        f.truncate(2 * 1024 * 1024)
    with pytest.raises(ConfigError, match="label_names=.*bytes"):
        DatasetParams.from_parameters({"dataset": "x.csv", "label_names": str(names)})


def test_error_bars_of_an_interval_that_misses_its_estimate_are_drawn():
    from emotune.plots.run import _error_bars, plot_headline

    bars = _error_bars([0.5, 0.2, np.nan], [0.6, 0.1, 0.1], [0.55, np.nan, 0.3])
    assert (bars >= 0).all() and not np.isnan(bars).any()
    scores = pd.DataFrame(
        {
            "level": "x",
            "metric": "macro_f1",
            "model": ["base", "tuned"],
            "value": [0.01, 0.3],
            "ci_low": [0.02, 0.25],  # a BCa interval above its estimate (1,000 labels)
            "ci_high": [0.05, np.nan],
        }
    )
    plot_headline(scores, metrics=("macro_f1",))
