"""Notebook 06's files: a sweep recorded for the committed notebook (the sweep file and each
finished run's manifest, nothing else; ``notebooks/recorded-sweep/`` is the one it reads) and the
notebook executed and rendered for a sweep folder (what ``emotune sweep`` does at its end)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .core.errors import ConfigError, NotebookFailed
from .core.runs import atomic_write_json
from .curve import AXIS, finished_manifests, load_curve, read_plan
from .series import SWEEP_NOTEBOOK
from .sweep_plan import SweepPlan, locked


def save_sweep_recording(folder: Path, dest: Path) -> list[str]:
    """Copy what notebook 06 reads of a sweep (``sweep.json`` and each finished run's manifest, its
    ``run_dir`` emptied: no path of this machine) into ``dest`` (emptied first); returns the files
    written, relative to ``dest``."""
    folder, dest = Path(folder), Path(dest)
    read_plan(folder)  # a sweep folder, or a clear error before anything is removed
    finished = finished_manifests(folder)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(folder / "sweep.json", dest / "sweep.json")
    written = ["sweep.json"]
    for name, m in finished.items():
        if (m.get("parameters") or {}).get("run_dir"):  # this machine's path stays here
            m["parameters"]["run_dir"] = ""
        atomic_write_json(dest / name / "manifest.json", m)
        written.append(f"{name}/manifest.json")
    return written


def render_notebook(folder: Path) -> Path:
    """Execute notebook 06 on a sweep folder into ``<folder>/notebooks/`` and render it to
    ``<folder>/html/06_how_many_examples.html``; returns the page. The notebook runs in the sweep
    folder with ``sweep_dir="."``, so no path of this machine is saved in it."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    from .core.config import headless_kernels
    from .core.runs import atomic_write_text
    from .report import for_readers
    from .series import KERNEL_ARGUMENTS, SWEEP_NOTEBOOK, default_notebooks_dir

    folder = Path(folder).resolve()
    source = default_notebooks_dir() / SWEEP_NOTEBOOK
    out = folder / "notebooks" / SWEEP_NOTEBOOK
    out.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: shards of one sweep may render at once
    partial = out.with_name(f".{out.stem}.{os.getpid()}.running.ipynb")
    try:
        with headless_kernels():
            pm.execute_notebook(
                str(source),
                str(partial),
                parameters={"sweep_dir": "."},
                cwd=str(folder),
                progress_bar=False,
                record_timing=False,
                kernel_name="python3",
                log_output=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
    except pm.PapermillExecutionError as exc:
        failed = out.with_name(f"{out.stem}.failed.ipynb")
        partial.replace(failed)
        raise NotebookFailed(
            f"{SWEEP_NOTEBOOK} failed in cell {exc.exec_count or exc.cell_index}: {exc.ename}: "
            f"{exc.evalue}\n(executed notebook with the error: {failed})"
        ) from None
    nb = nbformat.read(partial, as_version=4)
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, partial)
    partial.replace(out)
    body, _ = HTMLExporter().from_notebook_node(for_readers(nb))
    return atomic_write_text(folder / "html" / f"{out.stem}.html", body)


def render_for_sweep(
    plan: SweepPlan, shared: str, *, changed: bool, say: Callable[[str], None]
) -> None:
    """At the end of ``emotune sweep``: notebook 06 rendered for a sweep over n_train once two sizes
    have finished runs (again only when a run finished since); one line says why not where no curve
    can be drawn."""
    if AXIS not in plan.varying:
        return
    page = plan.folder / "html" / SWEEP_NOTEBOOK.replace(".ipynb", ".html")
    if not changed and page.is_file():
        say(f"learning curve (notebook 06): {page} (no run finished since)")
        return
    try:
        # one render at a time: the last one to start (after every shard's runs) sees them all
        with locked(plan.folder / shared):
            load_curve(plan.folder)  # a curve to draw, or the one line that says why not
            say(f"learning curve (notebook 06): {render_notebook(plan.folder)}")
    except (ConfigError, NotebookFailed) as exc:
        say(f"learning curve (notebook 06) not rendered: {exc}")
