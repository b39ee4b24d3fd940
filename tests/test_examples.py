import json

import pytest

from emotune import ConfigError
from emotune.core.prompts import (
    PromptStyle,
    assistant_text,
    format_answer,
    last_user_text,
    parse_answer,
    prompt_messages,
    render_example,
)
from emotune.core.taxonomy import DEFAULT, get_taxonomy, taxonomy_names


@pytest.mark.parametrize(
    "level, labels",
    [
        ("goemotions", ["embarrassment", "joy"]),
        ("ekman", ["fear", "neutral"]),
        ("sentiment", ["ambiguous"]),
    ],
)
@pytest.mark.parametrize("style", ["verbose", "compact"])
@pytest.mark.parametrize("fmt", ["comma", "json"])
def test_render_then_parse_round_trips(level, labels, style, fmt):
    ex = render_example("some comment", labels, style=style, label_format=fmt, taxonomy=level)
    roles = [m["role"] for m in ex["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert last_user_text(ex["messages"]).endswith("some comment")
    parsed = parse_answer(assistant_text(ex["messages"]), level)
    assert parsed.ok and list(parsed.labels) == labels


def test_verbose_lists_every_label_and_compact_is_short():
    verbose = prompt_messages("x", style="verbose", taxonomy="goemotions")[0]["content"]
    compact = prompt_messages("x", style="compact", taxonomy="goemotions")[0]["content"]
    assert all(label in verbose for label in ("admiration", "embarrassment", "neutral"))
    assert len(compact) < 60 < len(verbose)


def test_custom_style():
    mine = PromptStyle("mine", "Emotions please, {format_rule}", "Comment: {text}")
    msgs = prompt_messages("hi", style=mine, label_format="json", taxonomy="goemotions")
    assert msgs[1]["content"] == "Comment: hi" and '"labels"' in msgs[0]["content"]
    with pytest.raises(ConfigError, match="must contain"):
        prompt_messages(
            "hi", style=PromptStyle("bad", "s", "no placeholder"), taxonomy="goemotions"
        )
    with pytest.raises(ConfigError, match="unknown prompt style"):
        prompt_messages("hi", style="chatty", taxonomy="goemotions")
    with pytest.raises(ConfigError, match="label_format"):
        format_answer(["joy"], "xml")


@pytest.mark.parametrize(
    "answer, labels",
    [
        ("joy, love", ("joy", "love")),
        ("Love,JOY", ("joy", "love")),
        ("  joy ,  joy , love. ", ("joy", "love")),
        ("Embarassment", ("embarrassment",)),
        ("gratitude; admiration", ("admiration", "gratitude")),
        ("anger and annoyance", ("anger", "annoyance")),
        ('{"labels": ["Joy", "love"]}', ("joy", "love")),
        ('```json\n{"labels": ["fear"]}\n```', ("fear",)),
        ('["sadness"]', ("sadness",)),
        ("neutral!", ("neutral",)),
    ],
)
def test_parser_forgives_what_is_safe(answer, labels):
    parsed = parse_answer(answer, "goemotions")
    assert parsed.ok and parsed.labels == labels


@pytest.mark.parametrize(
    "answer, status, unknown",
    [
        ("happy", "unknown", ("happy",)),
        ("joy, happy, HAPPY", "partial", ("happy",)),
        ("", "unparseable", ()),
        (None, "unparseable", ()),
        ('{"labels": "joy"}', "unparseable", ()),
        ('{"labels": [', "unparseable", ()),
        (",,,", "unparseable", ()),
        ("I think this comment expresses joy", "unknown", ("i think this comment expresses joy",)),
    ],
)
def test_parser_is_strict_where_it_must_be(answer, status, unknown):
    parsed = parse_answer(answer, "goemotions")
    assert parsed.status == status and parsed.unknown == unknown
    assert "neutral" not in parsed.labels


def test_open_vocabulary_keeps_words_as_written():
    assert parse_answer("Spam, ham", any_label=True).labels == ("spam", "ham")
    assert parse_answer("embarassment", any_label=True).labels == ("embarassment",)


def test_json_answer_is_json():
    assert json.loads(format_answer(["joy"], "json")) == {"labels": ["joy"]}
    assert set(taxonomy_names()) >= {"goemotions", "ekman", "sentiment"}


def test_build_files_are_deterministic_atomic_and_recorded(tmp_path):
    import hashlib

    import pandas as pd

    from emotune import Run, build_training_files

    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(20)],
            "labels": [[i % 28] for i in range(20)],
            "id": [str(i) for i in range(20)],
        }
    )
    samples = {"train": frame, "validation": frame.head(5), "eval": frame.tail(3)}
    run = Run(tmp_path / "r")
    a = build_training_files(
        run, samples, style="compact", label_format="json", taxonomy=get_taxonomy("ekman"), seed=1
    )
    first = (tmp_path / "r" / "train.jsonl").read_bytes()
    b = build_training_files(
        run, samples, style="compact", label_format="json", taxonomy=get_taxonomy("ekman"), seed=1
    )
    assert a == b and a["train"]["sha256"] == hashlib.sha256(first).hexdigest()
    build_training_files(
        run, samples, style="compact", label_format="json", taxonomy=get_taxonomy("ekman"), seed=2
    )
    assert (tmp_path / "r" / "train.jsonl").read_bytes() != first  # another seed, another order
    lines = [json.loads(x) for x in first.decode().splitlines()]
    assert len(lines) == 20 and all(
        json.loads(x["messages"][-1]["content"])["labels"][0]
        in ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
        for x in lines
    )
    m = run.manifest()["jsonl"]
    assert (
        m["files"]["validation"]["examples"] == 5
        and m["taxonomy"] == "ekman"
        and m["prompt_style"] == "compact"
    )
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "r").iterdir())


def test_prompt_tax_and_gallery():
    import pandas as pd

    from emotune import example_gallery, prompt_tax

    frame = pd.DataFrame(
        {"text": ["I love this so much", "what?"], "labels": [[18], [7]], "id": ["a", "b"]}
    )
    tax = prompt_tax(frame, "gpt-4o-mini", taxonomy=get_taxonomy("goemotions"))
    ratios = dict(zip(tax["style"], tax["x minimum"], strict=True))
    assert (
        ratios["minimum (comment + answer)"] == 1.0
        and ratios["compact"] < 2 < 4 < ratios["verbose"]
    )
    assert (
        len(example_gallery("hi", ["joy"], get_taxonomy("goemotions"))) == 6
    )  # 3 styles x 2 formats


def test_misspellings_can_be_reported_for_training_checks():
    assert parse_answer("embarassment", "goemotions", forgive_misspellings=False).unknown == (
        "embarassment",
    )


def _tickets():
    from emotune.core.taxonomy import from_labels, register_taxonomy

    return register_taxonomy(
        from_labels("tickets", ["billing", "bug", "Login problem"], multi_label=False)
    )


def test_zero_shot_lists_the_datasets_labels_and_asks_for_one():
    tickets = _tickets()
    system = prompt_messages("x", style="zero-shot", taxonomy=tickets)[0]["content"]
    assert all(label in system for label in tickets.labels) and "exactly one label" in system
    for style in ("verbose", "zero-shot", "compact"):
        content = " ".join(
            m["content"] for m in prompt_messages("x", style=style, taxonomy=tickets)
        )
        assert "Reddit" not in content and "emotion" not in content
    multi = prompt_messages("x", style="zero-shot", taxonomy="goemotions")[0]["content"]
    assert "one or more labels" in multi and "separated by commas" in multi


def test_single_label_parser_reports_extra_labels_and_forgives_case():
    tickets = _tickets()
    assert parse_answer("login PROBLEM", tickets).labels == ("Login problem",)
    extra = parse_answer("billing, bug", tickets)
    assert extra.status == "extra" and extra.labels == ("billing", "bug") and not extra.ok


def test_prompt_spec_round_trips_and_a_different_spec_is_an_error_naming_both():
    from emotune import PromptSpec, check_prompt_spec

    trained = PromptSpec.resolve("compact", "comma", "goemotions")
    assert PromptSpec.from_record(trained.to_record()) == trained
    check_prompt_spec(trained.to_record(), trained)
    check_prompt_spec(None, trained)  # nothing trained yet: nothing to compare
    with pytest.raises(ConfigError) as info:
        check_prompt_spec(trained.to_record(), PromptSpec.resolve("verbose", "json", "ekman"))
    msg = str(info.value)
    assert (
        "style='compact'" in msg
        and "style='verbose'" in msg
        and "'ekman'" in msg
        and "'goemotions'" in msg
    )
    assert (
        PromptSpec.resolve("compact", "comma", DEFAULT).taxonomy.name == "goemotions"
    )  # the catalogue's default


def test_build_files_record_the_prompt_spec(tmp_path):
    import pandas as pd

    from emotune import PromptSpec, Run, build_training_files
    from emotune.stages.examples import trained_prompt_spec

    tickets = _tickets()
    frame = pd.DataFrame(
        {
            "text": [f"t{i}" for i in range(12)],
            "labels": [[i % 3] for i in range(12)],
            "id": [str(i) for i in range(12)],
        }
    )
    run = Run(tmp_path / "r")
    spec = PromptSpec.resolve("zero-shot", "json", tickets)
    build_training_files(run, {"train": frame, "validation": frame}, style=spec, seed=0)
    assert trained_prompt_spec(run).to_record() == spec.to_record()
    line = json.loads((tmp_path / "r" / "train.jsonl").read_text().splitlines()[0])
    assert json.loads(line["messages"][-1]["content"])["labels"][0] in tickets.labels
