"""Parameters checked like a form: whatever a user types after ``-p`` or writes in a params file is
either a value of the parameter's kind, within its range, or one line naming the parameter and what
it accepts; never a traceback, never NaN or a negative amount let through."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotune import cli, series
from emotune.core.errors import EmotuneError
from emotune.series import DEFAULT_PARAMETERS, HYPERPARAMETERS, MAXIMUMS, MINIMUMS

NAMES = sorted(DEFAULT_PARAMETERS)
NUMERIC = [n for n, v in DEFAULT_PARAMETERS.items() if type(v) in (int, float)] + list(
    HYPERPARAMETERS
)
# words YAML gives meaning to: anchors, aliases, tags, flows, special floats, huge numbers
TRICKY = st.sampled_from(
    [
        "[x",
        "*a",
        "&a [*a]",
        "!!python/object/apply:os.system ['true']",
        "!!binary aGk=",
        ".inf",
        "-.inf",
        ".nan",
        "nan",
        "NaN",
        "inf",
        "1e400",
        "-1",
        "-0.0",
        "1.5",
        "true",
        "no",
        "~",
        "",
        "0x10",
        "1_000",
        "9" * 400,
        "[" * 5000,
        "{a: 1}",
        "2024-01-01",
        "\x1b[31m",
        "|",
        "? [1, 2]\n: 3",
    ]
)


def check(name: str, value: object) -> None:
    """A checked value has its parameter's kind and range; a refusal is one line naming it."""
    try:
        got = series.coerce(name, value)
    except EmotuneError as exc:
        text = str(exc)
        assert "\n" not in text and len(text) < 400, text
        assert text.startswith(f"parameter {name}: "), text
        return
    default = DEFAULT_PARAMETERS[name]
    if name in HYPERPARAMETERS:
        assert got == "auto" or (
            type(got) in (int, float) and 0 < got <= MAXIMUMS[name] and math.isfinite(got)
        )
    elif type(default) in (int, float):
        assert type(got) is type(default), (name, value, got)
        assert math.isfinite(got) and MINIMUMS.get(name, -math.inf) <= got <= MAXIMUMS[name]
    elif isinstance(default, str) and name not in ("base_on_training_prompt", "batch_check"):
        assert isinstance(got, str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.one_of(TRICKY, st.text(max_size=40)))
def test_any_text_after_dash_p_is_a_checked_value_or_one_line(name, raw):
    try:
        parsed = cli._parse_assignments([f"{name}={raw}"])
    except EmotuneError as exc:
        text = str(exc)
        assert "\n" not in text and len(text) < 400 and f"-p {name}" in text, text
        return
    check(name, parsed[name])


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(NUMERIC),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_money_and_counts_from_a_params_file_are_finite_and_in_range(name, value):
    check(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("budget_usd", float("nan")),
        ("budget_usd", float("-inf")),
        ("budget_usd", True),
        ("budget_usd", 10**400),
        ("n_eval", 1.5),
        ("n_seeds", True),
        ("seed", 2**40),
        ("n_train", 10**30),
        ("n_epochs", 1.5),
        ("n_epochs", 51),
        ("batch_size", 0),
        ("learning_rate_multiplier", float("nan")),
    ],
)
def test_what_the_old_checks_let_through_is_refused(name, value):
    with pytest.raises(EmotuneError, match=f"^parameter {name}: "):
        series.coerce(name, value)


def test_numbers_written_as_text_are_read(tmp_path):
    assert series.coerce("n_train", "1e3") == 1000 and series.coerce("n_train", 2.0) == 2
    assert series.coerce("budget_usd", "2.5") == 2.5 and series.coerce("n_epochs", "auto") == "auto"
    assert series.coerce("run_name", 2024) == "2024" and series.coerce("run_dir", None) == ""


def one_line(argv, capsys, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert len(err) < 400, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("item", "needles"),
    [
        ("n_train=[x", ("-p n_train", "is not a value")),
        ("*a", ("NAME=VALUE",)),
        ("seed=!!python/object/apply:os.system ['true']", ("-p seed", "is not a value")),
        ("n_train=.inf", ("n_train", "whole number from 0")),
        ("budget_usd=nan", ("budget_usd", "finite number from 0")),
        ("budget_usd=-1", ("budget_usd", "finite number from 0")),
        ("n_train=" + "9" * 100_000, ("-p n_train", "characters")),
        ("n_train=" + "[" * 100_000, ("-p n_train", "characters")),
    ],
)
def test_the_command_line_refuses_in_one_line(tmp_path, capsys, item, needles):
    one_line(["run", "--run-dir", str(tmp_path / "r"), "-p", item], capsys, *needles)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1: 2\nseed: 3\n", "must be text"),
        ("? [1, 2]\n: 3\n", "unhashable key at line 1"),
        ("a: &a [*a, *a]\nb: [" + "[" * 50_000 + "\n", "cannot read parameters"),
        ("budget_usd: .nan\n", "budget_usd"),
        ("run_name: true\n", "run_name"),
        ("- 1\n- 2\n", "mapping"),
        ("n_train: " + "9" * 10_000 + "\n", "cannot read parameters"),
    ],
)
def test_a_params_file_is_refused_in_one_line(tmp_path, capsys, text, needle):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    one_line(["run", "--run-dir", str(tmp_path / "r"), "--params", str(path)], capsys, needle)


def test_a_params_file_that_is_a_pipe_or_a_device_is_not_read(tmp_path, capsys):
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        one_line(
            ["run", "--run-dir", str(tmp_path / "r"), "--params", str(path)],
            capsys,
            "not a regular file",
        )
