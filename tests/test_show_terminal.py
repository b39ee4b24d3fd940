"""``emotune show`` writes nothing a terminal would obey: control characters, bidi overrides and line
separators in a manifest come out as visible escapes, and a manifest nested to exhaust the parser
is one line."""

from __future__ import annotations

import json

from emotune import cli
from emotune.summary import shown


def test_invisible_characters_that_reorder_or_hide_text_are_escaped():
    text = "name\u202eevil\u2028next\u2066x\x9bcolor\x07"
    out = shown(text)
    assert out == "name\\u202eevil\\u2028next\\u2066x\\x9bcolor\\x07"
    assert shown("plain text, émotions 😊\nand a tab\t") == "plain text, émotions 😊\nand a tab\t"


def test_show_of_a_manifest_with_bidi_overrides_and_escapes(tmp_path, capsys):
    manifest = {"run": {"name": "ok\u202edesrever\x1b]0;title\x07", "updated_at": "now"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for argv in (["show", str(tmp_path)], ["show", str(tmp_path), "--json"]):
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "\u202e" not in out and "\x1b" not in out and "\x07" not in out, out


def test_show_of_a_deep_manifest_is_one_line(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"run": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert cli.main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_validate_escapes_what_a_file_put_into_its_report(tmp_path, capsys):
    path = tmp_path / "train\x1b[2J.jsonl"
    path.write_text('{"messages": "\x1b]0;owned\x07"}\nnot json \x1b[31m\n')
    assert cli.main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out, out
