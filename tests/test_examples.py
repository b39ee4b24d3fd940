import json

import pytest

from emotune import ConfigError, PromptStyle, parse_answer, prompt_messages
from emotune.core.prompts import (
    assistant_text,
    check_prompt_spec,
    format_answer,
    last_user_text,
    prompt_spec,
    render_example,
    trained_prompt_spec,
)
from emotune.core.taxonomy import taxonomy_names


@pytest.mark.parametrize("level, labels", [("goemotions", ["embarrassment", "joy"]), ("ekman", ["fear", "neutral"]),
                                           ("sentiment", ["ambiguous"])])
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
    verbose = prompt_messages("x", style="verbose")[0]["content"]
    compact = prompt_messages("x", style="compact")[0]["content"]
    assert all(label in verbose for label in ("admiration", "embarrassment", "neutral"))
    assert len(compact) < 60 < len(verbose)


def test_custom_style():
    mine = PromptStyle("mine", "Emotions please, {format_rule}", "Comment: {text}")
    msgs = prompt_messages("hi", style=mine, label_format="json")
    assert msgs[1]["content"] == "Comment: hi" and '"labels"' in msgs[0]["content"]
    with pytest.raises(ConfigError, match="must contain"):
        prompt_messages("hi", style=PromptStyle("bad", "s", "no placeholder"))
    with pytest.raises(ConfigError, match="unknown prompt style"):
        prompt_messages("hi", style="chatty")
    with pytest.raises(ConfigError, match="label_format"):
        format_answer(["joy"], "xml")


@pytest.mark.parametrize("answer, labels", [
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
])
def test_parser_forgives_what_is_safe(answer, labels):
    parsed = parse_answer(answer)
    assert parsed.ok and parsed.labels == labels


@pytest.mark.parametrize("answer, status, unknown", [
    ("happy", "unknown", ("happy",)),
    ("joy, happy, HAPPY", "partial", ("happy",)),
    ("", "unparseable", ()),
    (None, "unparseable", ()),
    ('{"labels": "joy"}', "unparseable", ()),
    ('{"labels": [', "unparseable", ()),
    (",,,", "unparseable", ()),
    ("I think this comment expresses joy", "unknown", ("i think this comment expresses joy",)),
])
def test_parser_is_strict_where_it_must_be(answer, status, unknown):
    parsed = parse_answer(answer)
    assert parsed.status == status and parsed.unknown == unknown
    assert "neutral" not in parsed.labels


def test_open_vocabulary_keeps_words_as_written():
    assert parse_answer("Spam, ham", None).labels == ("spam", "ham")
    assert parse_answer("embarassment", None).labels == ("embarassment",)


def test_the_trained_prompt_spec_is_recorded_and_a_different_one_is_refused(tmp_path):
    import pandas as pd

    from emotune import ConfigError, Run, build_training_files

    frame = pd.DataFrame({"text": ["I love it", "so sad"], "labels": [[18], [25]], "id": ["a", "b"]})
    run = Run(tmp_path / "run")
    build_training_files(run, {"train": frame, "validation": frame}, style="verbose", label_format="json",
                         taxonomy="ekman", seed=1)
    trained = trained_prompt_spec(run)
    assert trained == prompt_spec("verbose", "json", "ekman")
    assert check_prompt_spec(trained, prompt_spec("verbose", "json", "ekman")) is trained
    with pytest.raises(ConfigError, match="trained with style 'verbose', json answers, ekman labels.*style 'compact'"):
        check_prompt_spec(trained, prompt_spec("compact", "json", "ekman"))


def test_json_answer_is_json():
    assert json.loads(format_answer(["joy"], "json")) == {"labels": ["joy"]}
    assert set(taxonomy_names()) >= {"goemotions", "ekman", "sentiment"}


def test_build_files_are_deterministic_atomic_and_recorded(tmp_path):
    import hashlib

    import pandas as pd

    from emotune import Run, build_training_files

    frame = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "labels": [[i % 28] for i in range(20)],
                          "id": [str(i) for i in range(20)]})
    samples = {"train": frame, "validation": frame.head(5), "eval": frame.tail(3)}
    run = Run(tmp_path / "r")
    a = build_training_files(run, samples, style="compact", label_format="json", taxonomy="ekman", seed=1)
    first = (tmp_path / "r" / "train.jsonl").read_bytes()
    b = build_training_files(run, samples, style="compact", label_format="json", taxonomy="ekman", seed=1)
    assert a == b and a["train"]["sha256"] == hashlib.sha256(first).hexdigest()
    build_training_files(run, samples, style="compact", label_format="json", taxonomy="ekman", seed=2)
    assert (tmp_path / "r" / "train.jsonl").read_bytes() != first  # another seed, another order
    lines = [json.loads(x) for x in first.decode().splitlines()]
    assert len(lines) == 20 and all(json.loads(x["messages"][-1]["content"])["labels"][0] in
                                    ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral") for x in lines)
    m = run.manifest()["jsonl"]
    assert m["files"]["validation"]["examples"] == 5 and m["taxonomy"] == "ekman" and m["prompt_style"] == "compact"
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "r").iterdir())


def test_prompt_tax_and_gallery():
    import pandas as pd

    from emotune import example_gallery, prompt_tax

    frame = pd.DataFrame({"text": ["I love this so much", "what?"], "labels": [[18], [7]], "id": ["a", "b"]})
    tax = prompt_tax(frame, "gpt-4o-mini")
    ratios = dict(zip(tax["style"], tax["x minimum"], strict=True))
    assert ratios["minimum (comment + answer)"] == 1.0 and ratios["compact"] < 2 < 4 < ratios["verbose"]
    assert len(example_gallery("hi", ["joy"])) == 4


def test_misspellings_can_be_reported_for_training_checks():
    assert parse_answer("embarassment", forgive_misspellings=False).unknown == ("embarassment",)
