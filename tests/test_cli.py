"""The command line with a clumsy user: every mistake is one line on stderr and a non-zero exit, never a
traceback."""

from __future__ import annotations

import json
import os

import pytest

from emotune import cli

CHAT = {
    "messages": [{"role": "user", "content": "I love it"}, {"role": "assistant", "content": "love"}]
}


def fails(argv, capsys, *needles, code=2):
    """Run the CLI; assert the exit code and a one-line error naming every needle."""
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def usage_error(argv, capsys, *needles):
    """argparse's own refusal: exit 2 with a usage line and one error line."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(CHAT) + "\n" for _ in range(12)))
    return path


def test_validate_a_directory_a_missing_file_and_a_device(tmp_path, capsys):
    fails(["validate", str(tmp_path)], capsys, str(tmp_path), "is a directory")
    fails(["validate", str(tmp_path / "nope.jsonl")], capsys, "nope.jsonl", "no such file")
    if os.path.exists("/dev/zero"):  # would read until memory runs out
        fails(["validate", "/dev/zero"], capsys, "/dev/zero", "not a regular file")


def test_validate_a_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"messages": "\xff\xfe"}\n')
    rc = cli.main(["validate", str(bad)])
    err = capsys.readouterr()
    assert rc != 0 and "Traceback" not in err.err + err.out


def test_estimate_mistakes(tmp_path, jsonl, capsys):
    fails(["estimate", str(tmp_path)], capsys, "is a directory")
    fails(
        ["estimate", str(jsonl), "--catalog", str(tmp_path / "mine.json")],
        capsys,
        "--catalog",
        "no such file",
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    fails(
        ["estimate", str(jsonl), "--catalog", str(broken)],
        capsys,
        "--catalog",
        "not a pricing catalogue",
    )
    usage_error(["estimate", str(jsonl), "--epochs", "-3"], capsys, "--epochs", "outside 1..50")
    usage_error(
        ["estimate", str(jsonl), "--epochs", "two"], capsys, "--epochs", "neither 'auto' nor"
    )
    usage_error(["estimate", str(jsonl), "--budget", "-1"], capsys, "--budget", "negative")
    assert cli.main(["estimate", str(jsonl), "--epochs", "3"]) == 0
    assert "x 3 epochs" in capsys.readouterr().out


def test_show_mistakes(tmp_path, capsys):
    fails(["show", str(tmp_path / "nope")], capsys, "not a directory")
    fails(["show", str(tmp_path)], capsys, "no manifest.json")
    (tmp_path / "manifest.json").write_text('{"run": ')
    fails(["show", str(tmp_path)], capsys, "manifest.json", "not valid JSON")
    (tmp_path / "manifest.json").write_text('{"stages": 3}')
    fails(["show", str(tmp_path)], capsys, "manifest.json", "malformed")
    (tmp_path / "manifest.json").write_text("[1, 2]")
    fails(["show", str(tmp_path)], capsys, "not a JSON object")


def test_run_rejects_before_creating_the_run_directory(tmp_path, capsys):
    target = tmp_path / "r"
    fails(
        ["run", "--run-dir", str(target), "--from", "05", "--to", "02"],
        capsys,
        "--from 05",
        "after --to 02",
    )
    fails(
        ["run", "--run-dir", str(target), "--from", "09"],
        capsys,
        "--from 09",
        "no such notebook",
        "01, 02",
    )
    fails(["run", "--run-dir", str(target), "--to", "77"], capsys, "--to 77")
    fails(
        ["run", "--run-dir", str(target), "-p", "seed=seven"], capsys, "seed", "not a whole number"
    )
    fails(
        ["run", "--run-dir", str(target), "-p", "n_train=[x"],
        capsys,
        "-p n_train",
        "is not a value",
    )
    fails(
        ["run", "--run-dir", str(target), "-p", "seed=!!python/object:os.system"],
        capsys,
        "is not a value",
    )
    fails(
        ["run", "--run-dir", str(target), "-p", "n_train=.inf"],
        capsys,
        "n_train",
        "not a whole number",
    )
    fails(
        ["run", "--run-dir", str(target), "-p", "budget_usd=nan"],
        capsys,
        "budget_usd",
        "finite number",
    )
    (tmp_path / "keys.yaml").write_text("1: 2\nseed: 3\n")
    fails(
        ["run", "--run-dir", str(target), "--params", str(tmp_path / "keys.yaml")],
        capsys,
        "must be text",
    )
    fails(["run", "--run-dir", str(target), "-p", "seeed=3"], capsys, "unknown parameter(s): seeed")
    fails(["run", "--run-dir", str(target), "-p", "novalue"], capsys, "NAME=VALUE")
    fails(
        ["run", "--run-dir", str(target), "--params", str(tmp_path / "p.yaml")],
        capsys,
        "p.yaml",
        "cannot read",
    )
    assert not target.exists()


def test_run_with_an_unwritable_run_directory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    fails(["run", "--run-dir", str(blocker), "--to", "01"], capsys, "not a directory")
    fails(
        ["run", "--run-dir", str(blocker / "sub"), "--to", "01"],
        capsys,
        "cannot create the run directory",
    )
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        fails(
            ["run", "--run-dir", str(locked / "r"), "--to", "01"],
            capsys,
            "cannot create the run directory",
            "Permission denied",
        )


def test_show_refuses_a_manifest_nested_to_exhaust_the_parser(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    fails(["show", str(tmp_path)], capsys, "nested too deeply")


def test_show_escapes_terminal_control_characters(tmp_path, capsys):
    manifest = {"run": {"name": "x\x1b[31mred\rover", "updated_at": "now"}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main(["show", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "x\\x1b[31mred\\rover" in out


def test_serve_on_a_busy_port_is_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "emotune.cli",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"emotune: error: port {port} on 127.0.0.1 is in use"
    )
