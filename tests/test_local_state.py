"""State the local backend can trust: one server per directory, corrupt records moved aside, crash leftovers
removed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from emotune import BackendError
from emotune.local import LocalServer
from emotune.local.server import holder, running_server


def test_a_second_server_on_the_same_directory_is_refused_naming_the_first(tmp_path):
    with LocalServer(tmp_path / "s") as first:
        with pytest.raises(
            BackendError,
            match=rf"in use by another emotune server \(pid \d+, {first.base_url[:-3]}",
        ):
            LocalServer(tmp_path / "s")
        assert holder(tmp_path / "s")["url"] == first.base_url.removesuffix("/v1")
    assert holder(tmp_path / "s") is None  # released on stop
    with LocalServer(tmp_path / "s"):
        pass


def test_another_process_attaches_to_the_running_server(tmp_path):
    with LocalServer(tmp_path / "s") as srv:
        script = textwrap.dedent(f"""
            from emotune import connect
            conn = connect("local", state_dir={str(tmp_path / "s")!r})
            print(conn.base_url)
            print(conn.client.models.retrieve("gpt-4o-mini").id)
        """)
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == [srv.base_url, "gpt-4o-mini"]
        assert running_server(tmp_path / "s") == srv.base_url


def test_corrupt_records_are_moved_aside_and_the_rest_is_served(tmp_path, caplog):
    state = tmp_path / "s"
    with LocalServer(state) as srv:
        import openai

        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        good = c.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        bad = c.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    (state / "files" / f"{bad.id}.json").write_text('{"id": "file-tru')  # cut short
    (state / "blobs" / ".big-upload.tmp").write_bytes(b"x" * 1000)  # an upload a crash cut short
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        assert [f.id for f in c.files.list()] == [good.id]
        with pytest.raises(openai.NotFoundError):
            c.files.retrieve(bad.id)
    assert (state / "files" / f"{bad.id}.json.corrupt").exists()
    assert not (state / "blobs" / ".big-upload.tmp").exists()
    assert "moved corrupt record" in caplog.text


class _Planted:
    """Unpickling this would create the marker file: the proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_planted_among_the_weights_is_never_loaded(tmp_path):
    import json
    import pickle

    import openai
    from conftest import wait_job

    from emotune.core.prompts import render_example

    state, marker = tmp_path / "s", tmp_path / "PWNED"
    lines = "".join(
        json.dumps(render_example(f"thank you {i}", ["gratitude"])) + "\n" for i in range(12)
    )
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        upload = c.files.create(file=("t.jsonl", lines.encode()), purpose="fine-tune")
        job = wait_job(
            c, c.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=upload.id).id
        )
        model = job.fine_tuned_model
    weights = state / "weights" / model.replace(":", "~")
    assert sorted(p.name for p in weights.iterdir()) == [
        "model.json",
        "model.npz",
    ]  # arrays and JSON only
    for saved in weights.iterdir():
        saved.unlink()
    (weights / "model.pkl").write_bytes(pickle.dumps(_Planted(marker)))
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.NotFoundError, match="fine-tune it again"):
            c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "thank you"}]
            )
    assert not marker.exists()


def test_links_fifos_and_folders_planted_in_the_state_directory_are_never_followed(tmp_path):
    import os

    import openai

    state, outside = tmp_path / "s", tmp_path / "outside.txt"
    outside.write_text("precious\n")
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        linked, fifo, folder = (
            c.files.create(file=(f"{n}.jsonl", b"{}\n"), purpose="batch") for n in "abc"
        )
    for kind in (linked, fifo, folder):
        (state / "blobs" / kind.id).unlink()
    (state / "blobs" / linked.id).symlink_to(outside)
    os.mkfifo(state / "blobs" / fifo.id)
    (state / "blobs" / folder.id).mkdir()
    (state / "requests.log").unlink()
    (state / "requests.log").symlink_to(outside)
    with pytest.raises(BackendError, match="requests.log|not a regular file"), LocalServer(state):
        pass
    (state / "requests.log").unlink()
    (state / "server.lock").unlink()
    (state / "server.lock").symlink_to(outside)
    with pytest.raises(BackendError, match="server.lock .* is not a regular file"):
        LocalServer(state)
    (state / "server.lock").unlink()
    with LocalServer(state) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=10)
        for planted in (linked, fifo, folder):
            with pytest.raises(openai.NotFoundError, match="content of"):
                c.files.content(planted.id)
    assert outside.read_text() == "precious\n"  # never truncated, appended to or served
