"""OpenAI's file rules: a corpus of malformed files, each reported under the right code and line."""

import json

import pytest

from emotune.core import file_rules as validate
from emotune.core.prompts import render_example

MODEL = "gpt-4o-mini-2024-07-18"


def good_lines(n=12):
    return [json.dumps(render_example(f"comment number {i}", ["joy"])) for i in range(n)]


def as_bytes(lines, newline_at_end=True):
    return ("\n".join(lines) + ("\n" if newline_at_end else "")).encode("utf-8")


def with_line(index, replacement, n=12):
    lines = good_lines(n)
    lines[index] = replacement if isinstance(replacement, str) else json.dumps(replacement)
    return as_bytes(lines)


SYS = {"role": "system", "content": "s"}
USER = {"role": "user", "content": "u"}
ASST = {"role": "assistant", "content": "joy"}

# (name, file bytes, expected code, expected line)
CORPUS = [
    ("invalid json", with_line(2, '{"messages": [}'), "invalid_json", 3),
    ("not an object", with_line(4, "[1, 2]"), "not_object", 5),
    ("no messages key", with_line(0, {"prompt": "x", "completion": "y"}), "missing_messages", 1),
    ("messages not a list", with_line(1, {"messages": "hi"}), "missing_messages", 2),
    ("empty messages", with_line(6, {"messages": []}), "empty_messages", 7),
    ("message not an object", with_line(3, {"messages": ["hi", ASST]}), "message_not_object", 4),
    (
        "unknown role",
        with_line(5, {"messages": [{"role": "bot", "content": "x"}, ASST]}),
        "unknown_role",
        6,
    ),
    (
        "unknown key",
        with_line(7, {"messages": [USER, {**ASST, "confidence": 0.9}]}),
        "unknown_key",
        8,
    ),
    ("missing content", with_line(8, {"messages": [{"role": "user"}, ASST]}), "missing_content", 9),
    (
        "content is a number",
        with_line(9, {"messages": [{"role": "user", "content": 5}, ASST]}),
        "bad_content_type",
        10,
    ),
    ("no assistant", with_line(10, {"messages": [SYS, USER]}), "no_assistant_message", 11),
    ("weight 0.5", with_line(11, {"messages": [USER, {**ASST, "weight": 0.5}]}), "bad_weight", 12),
    (
        "weight on user",
        with_line(0, {"messages": [{**USER, "weight": 1}, ASST]}),
        "weight_not_assistant",
        1,
    ),
    (
        "special token",
        with_line(2, {"messages": [{"role": "user", "content": "hi <|endoftext|>"}, ASST]}),
        "special_tokens",
        3,
    ),
    ("blank line", as_bytes(good_lines()[:5] + [""] + good_lines()[5:]), "blank_line", 6),
    (
        "truncated last line",
        as_bytes(good_lines() + ['{"messages": [{"role": "us'], newline_at_end=False),
        "truncated_last_line",
        13,
    ),
    ("byte-order mark", b"\xef\xbb\xbf" + as_bytes(good_lines()), "bom", 1),
    (
        "not utf-8",
        as_bytes(good_lines()[:3])
        + "caf\xe9".encode("latin-1")
        + b"\n"
        + as_bytes(good_lines()[3:]),
        "encoding",
        4,
    ),
    ("too few examples", as_bytes(good_lines(4)), "too_few_examples", None),
    (
        "label outside taxonomy",
        with_line(3, render_example("x", ["embarassment"])),
        "unknown_label",
        4,
    ),
    (
        "unparseable answer",
        with_line(4, {"messages": [USER, {"role": "assistant", "content": '{"labels": 3}'}]}),
        "unparseable_answer",
        5,
    ),
    ("duplicate example", with_line(9, good_lines()[2]), "duplicate_example", 10),
]


@pytest.mark.parametrize("name, raw, code, line", CORPUS, ids=[c[0] for c in CORPUS])
def test_each_malformed_file_is_reported_under_its_code_and_line(name, raw, code, line):
    report = validate.validate_bytes(raw, f"{name}.jsonl", MODEL)
    hits = [i for i in report.issues if i.code == code]
    assert hits, f"{code} not reported; got {[(i.code, i.line) for i in report.issues]}"
    assert hits[0].line == line
    assert report.ok == (validate.RULES_BY_CODE[code].severity == "warning")


def test_corpus_covers_at_least_15_distinct_codes():
    assert len({c[2] for c in CORPUS}) >= 15


def test_a_good_file_has_no_issues_and_exact_token_counts():
    raw = as_bytes(good_lines())
    report = validate.validate_bytes(raw, "ok.jsonl", MODEL)
    assert report.ok and report.issues == [] and report.n_examples == 12
    from emotune.core.tokens import count_chat_tokens, encoding_for

    enc = encoding_for(MODEL)
    assert report.tokens.tolist() == [
        count_chat_tokens(json.loads(x)["messages"], enc) for x in good_lines()
    ]
    assert report.assistant_tokens.tolist() == [len(enc.encode("joy"))] * 12


def test_token_limit_warns_with_the_line():
    report = validate.validate_bytes(as_bytes(good_lines()), "x.jsonl", MODEL, token_limit=5)
    assert [i.line for i in report.issues if i.code == "too_many_tokens"] == list(range(1, 13))
    assert report.ok


def test_file_size_limit(monkeypatch):
    monkeypatch.setattr(validate, "MAX_FILE_BYTES", 100)
    report = validate.validate_bytes(as_bytes(good_lines()), "big.jsonl", MODEL)
    assert [i.code for i in report.errors] == ["file_too_large"]


def test_overlap_between_train_and_validation():
    train = validate.validate_bytes(as_bytes(good_lines()), "train.jsonl", MODEL)
    val = validate.validate_bytes(as_bytes(good_lines(3)), "val.jsonl", MODEL, training=False)
    found = validate.check_overlap(train, val)
    assert [i.line for i in found] == [1, 2, 3] and all(
        i.code == "train_val_overlap" for i in val.issues
    )


def test_report_frame_and_rules_table():
    report = validate.validate_bytes(CORPUS[0][1], "x.jsonl", MODEL)
    frame = report.to_frame()
    assert frame.loc[0, "code"] == "invalid_json" and frame.loc[0, "first lines"] == "3"
    assert len(validate.rules_frame()) == len(validate.RULES)
    assert all(r.description and r.severity in ("error", "warning") for r in validate.RULES)


def test_seed_tutorial_files_validate_and_flag_the_misspelling(seed_tutorial):
    train = validate.validate_file(
        seed_tutorial / "training_data.jsonl", "gpt-3.5-turbo", token_limit=16385
    )
    val = validate.validate_file(
        seed_tutorial / "validation_data.jsonl", "gpt-3.5-turbo", training=False
    )
    assert train.ok and val.ok
    assert int(train.tokens.sum()) == 101_616 and int(val.tokens.sum()) == 47_892
    flagged = [i for i in train.issues if i.code == "unknown_label"]
    assert flagged and all("embarassment" in i.message for i in flagged)


def test_cli_validate_exit_codes(tmp_path, capsys):
    from emotune import cli

    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_bytes(as_bytes(good_lines()))
    bad.write_bytes(CORPUS[0][1])
    assert cli.main(["validate", str(good), "--model", MODEL]) == 0
    assert cli.main(["validate", str(bad), "--model", MODEL]) == 1
    assert "bad.jsonl:3: error [invalid_json]" in capsys.readouterr().out


def test_the_rule_codes_notebook_03_names_are_the_rules_codes():
    import json
    import re
    from pathlib import Path

    from emotune.core.file_rules import RULES_BY_CODE

    nb = Path(__file__).resolve().parents[1] / "notebooks" / "03_validate_cost.ipynb"
    cells = json.loads(nb.read_text("utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    named = set(re.findall(r"^- `([a-z_]+)`", text, re.M)) | set(
        re.findall(r"\bor `([a-z_]+)`", text)
    )
    assert named and named <= set(RULES_BY_CODE), named - set(RULES_BY_CODE)
