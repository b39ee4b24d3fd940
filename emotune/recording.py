"""The committed tutorial replays a recorded run: the notebooks' outputs come from a real run of the
series on its defaults (SmolLM2 fine-tuned on this kind of machine), and CI re-executes them without
training or generating anything.

A recording is the part of a run directory that the notebooks read back when they resume: the
manifest (upload and job ids, the estimate), the prediction cache, and the local backend's records
(files, the job, its events and checkpoints' records, the result CSV). Never the model weights, the
training folder, the uploaded training files (notebook 02 rebuilds them, byte for byte) or the
rendered pages.

Replaying copies the recording into a fresh run directory and sets ``EMOTUNE_REPLAY``: notebooks
01-03 recompute their figures from the data, notebook 04 finds its upload and its finished job,
notebook 05 its answers; anything not in the recording (a new upload, job, batch or answer) stops
the notebook with an error (:func:`emotune.core.config.refuse_in_replay`) instead of training or
generating.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .core.errors import ConfigError

RECORDED_FILES = ("manifest.json", "predictions/cache.jsonl", "predictions/batch-check.jsonl")
RECORDED_FOLDERS = (
    "local-backend/jobs",
    "local-backend/events",
    "local-backend/models",
    "local-backend/files",
    "local-backend/batches",
)
# uploaded files whose bytes the notebooks rebuild (training data, batch requests) stay out
_REBUILT_PURPOSES = ("fine-tune", "batch")


def default_recording() -> Path:
    """The recording the committed notebooks replay: ``notebooks/recorded/`` in a source
    checkout."""
    return Path(__file__).resolve().parent.parent / "notebooks" / "recorded"


def save_recording(run_dir: Path, dest: Path) -> list[str]:
    """Copy what a replay needs from ``run_dir`` into ``dest`` (emptied first); returns the
    files written, relative to ``dest``."""
    run_dir, dest = Path(run_dir), Path(dest)
    if not (run_dir / "manifest.json").is_file():
        raise ConfigError(f"{run_dir} holds no manifest.json: not a run directory")
    if not (json.loads((run_dir / "manifest.json").read_text("utf-8")).get("evaluation")):
        raise ConfigError(f"{run_dir}: the run has no evaluation yet; run the whole series first")
    if dest.exists():
        shutil.rmtree(dest)
    wanted = [run_dir / f for f in RECORDED_FILES if (run_dir / f).is_file()]
    for folder in RECORDED_FOLDERS:
        wanted += sorted(p for p in (run_dir / folder).glob("*") if p.is_file())
    for record in sorted((run_dir / "local-backend" / "files").glob("*.json")):
        purpose = json.loads(record.read_text("utf-8")).get("purpose")
        blob = run_dir / "local-backend" / "blobs" / record.stem
        if purpose not in _REBUILT_PURPOSES and blob.is_file():
            wanted.append(blob)
    written = []
    for path in wanted:
        relative = path.relative_to(run_dir)
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / relative)
        written.append(str(relative))
    manifest = json.loads((dest / "manifest.json").read_text("utf-8"))
    if manifest.get("parameters", {}).get("run_dir"):  # this machine's path: a replay sets its own
        manifest["parameters"]["run_dir"] = ""
    (dest / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8"
    )
    return written


def restore_recording(src: Path, run_dir: Path) -> None:
    """A fresh ``run_dir`` holding the recording ``src``, ready to replay (with
    ``EMOTUNE_REPLAY``)."""
    src, run_dir = Path(src), Path(run_dir)
    if not (src / "manifest.json").is_file():
        raise ConfigError(
            f"{src} is not a recording (no manifest.json); make refresh-notebooks makes one"
        )
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(src, run_dir)


REPLAY_MISS = "is not in the recording"  # the words of config.refuse_in_replay's error


def record(run_dir: Path, dest: Path) -> list[str]:
    """Run the series on its defaults into ``run_dir`` (emptied first: the full, real run) and keep
    what a replay needs in ``dest``."""
    import subprocess
    import sys

    if Path(run_dir).exists():
        shutil.rmtree(run_dir)
    # exactly what a user's `make run` does, its progress on this console
    subprocess.run(
        [sys.executable, "-m", "emotune.cli", "run", "--run-dir", str(run_dir)], check=True
    )
    return save_recording(Path(run_dir), Path(dest))


def refresh(dest: Path | None = None, *, fresh: bool = False, workdir: Path = Path("runs")) -> str:
    """Bring the committed notebooks up to date (06 from its recorded sweep), and say how:
    re-rendered from the recording (about a minute) when it holds every request they make, else (or
    with ``fresh``) re-recorded from scratch first (the full run) and then re-rendered."""
    from .core import config
    from .series import SWEEP_NOTEBOOK, default_notebooks_dir, list_notebooks

    dest = Path(dest) if dest else default_recording()

    def render() -> None:
        restore_recording(dest, workdir / "tutorial")
        with config.replay_kernels(workdir / "tutorial"):
            # notebook 06 reads the recorded sweep (notebooks/recorded-sweep/), not this run
            refresh_committed([*list_notebooks(), default_notebooks_dir() / SWEEP_NOTEBOOK])

    how = "re-recorded from scratch (asked for)"
    if not fresh:
        try:
            render()
            return "re-rendered from the recording: it holds every request the notebooks make"
        except Exception as exc:  # papermill's error carries the notebook's own message
            if REPLAY_MISS not in str(exc):
                raise
            how = f"re-recorded: the notebooks ask for something the recording lacks ({exc!s:.300})"
    record(workdir / "recorded", dest)
    render()
    return how


def refresh_committed(notebooks: list[Path]) -> None:
    """Re-execute notebooks in place with their default parameters (how the committed outputs are
    made).

    No parameters are injected, timing and papermill metadata are dropped, and widget state is
    stripped, so the committed files hold only what a reader should see. Each notebook finds its run
    directory with ``emotune.open_run`` (``EMOTUNE_RUN_DIR``, else ``runs/tutorial`` beside the
    notebooks).
    """
    import nbformat
    import papermill as pm

    from .core import config
    from .series import KERNEL_ARGUMENTS

    for nb in notebooks:
        tmp = nb.with_name(f".{nb.stem}.refresh.ipynb")
        try:
            with config.headless_kernels():
                pm.execute_notebook(
                    str(nb),
                    str(tmp),
                    cwd=str(nb.parent),
                    progress_bar=False,
                    record_timing=False,
                    kernel_name="python3",
                    extra_arguments=KERNEL_ARGUMENTS,
                )
        except BaseException:
            tmp.unlink(missing_ok=True)  # the committed notebook stays as it was
            raise
        out = nbformat.read(tmp, as_version=4)
        out.metadata.pop("papermill", None)
        out.metadata.pop("widgets", None)
        for cell in out.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nbformat.write(out, tmp)
        tmp.replace(nb)
