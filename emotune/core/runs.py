"""The run directory and its manifest, the single record of a run.

``runs/<name>/manifest.json`` is merged, never clobbered: each stage updates its own keys, and every
write goes to a temporary file that is renamed over the old one, so a crash never leaves half a
file.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from . import config
from .errors import ConfigError
from .manifest import KEYED, Record

R = TypeVar("R", bound=Record)

MANIFEST = "manifest.json"
TRACKED_PACKAGES = (
    "emotune",
    "openai",
    "pandas",
    "numpy",
    "datasets",
    "tiktoken",
    "scikit-learn",
    "iterative-stratification",
    "matplotlib",
    "seaborn",
    "papermill",
    "fastapi",
)


def now_iso() -> str:
    """UTC now, to the second, ISO 8601."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically, indented and key-sorted so diffs stay readable."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def deep_merge(base: dict, update: dict) -> dict:
    """A new dict: ``update`` merged into ``base`` recursively (dicts merge, everything else
    replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class Run:
    """One run directory: its manifest and the files the notebooks hand to each other."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({self.name!r})"

    @property
    def name(self) -> str:
        """The run's name (its folder name)."""
        return self.path.resolve().name

    @property
    def id(self) -> str:
        """A stable id for the run (created with the manifest); it tags remote jobs as this
        run's."""
        return self.get("run", "id") or self.update()["run"]["id"]

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict:
        """The manifest as a dict ({} before the first write)."""
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{self.manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        except (
            RecursionError
        ):  # a manifest is a few levels deep; this one was made to exhaust the parser
            raise ConfigError(
                f"{self.manifest_path}: nested too deeply to be a run's manifest"
            ) from None

    def update(self, **sections: Any) -> dict:
        """Merge sections into the manifest and write it atomically; returns the new manifest."""
        merged = deep_merge(self.manifest(), sections)
        merged.setdefault("run", {}).update({"name": self.name, "updated_at": now_iso()})
        merged["run"].setdefault("id", uuid.uuid4().hex)
        merged["run"].setdefault("created_at", merged["run"]["updated_at"])
        merged["versions"] = package_versions()
        atomic_write_json(self.manifest_path, merged)
        return merged

    def put(self, record: Record, key: str | None = None) -> Record:
        """Write a typed section (merged into what is there); ``key`` names the entry of a keyed
        section."""
        body = record.to_dict()
        if record.section in KEYED:
            if not key:
                raise ConfigError(
                    f"manifest section {record.section!r} holds one record per key; pass key="
                )
            body = {key: body}
        self.update(**{record.section: body})
        return record

    def read(self, kind: type[R], key: str | None = None, *, required: bool = True) -> R | None:
        """A typed section; when it is missing, an error names the notebook that writes it (or
        None)."""
        data = self.get(kind.section, *([key] if key else []))
        if not data:
            if not required:
                return None
            raise ConfigError(
                f"the manifest of run {self.name!r} has no {kind.section}"
                + (f" for {key!r}" if key else "")
                + f" yet: run notebook {kind.written_by} first "
                "(or `emotune run --run-dir` on this run)"
            )
        return kind.from_dict(data)

    def get(self, *keys: str, default: Any = None) -> Any:
        """A nested manifest value, e.g. ``run.get("files", "train", "sha256")``."""
        node: Any = self.manifest()
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def file(self, name: str) -> Path:
        """A path inside the run directory."""
        return self.path / name

    def require(self, *names: str) -> list[Path]:
        """Paths of files an earlier stage must have written; a clear error names the first
        missing one."""
        paths = [self.file(n) for n in names]
        for name, path in zip(names, paths, strict=True):
            if not path.exists():
                raise ConfigError(
                    f"{name} is not in run {self.name!r} yet: run the notebook that writes it "
                    "first "
                    "(or `emotune run --run-dir` on this run)"
                )
        return paths

    def write_frame(self, name: str, frame: pd.DataFrame) -> Path:
        """Write a DataFrame as JSON lines, atomically."""
        return atomic_write_text(
            self.file(name), frame.to_json(orient="records", lines=True, force_ascii=False)
        )

    def read_frame(self, name: str) -> pd.DataFrame:
        """Read a DataFrame written by :meth:`write_frame`, with a clear error if an earlier
        stage has not
        run."""
        path = self.file(name)
        if not path.exists():
            raise ConfigError(
                f"{name} is not in run {self.name!r} yet: run the notebook that writes it first "
                "(or `emotune run --run-dir` on this run)"
            )
        return pd.read_json(path, orient="records", lines=True, dtype={"id": str})


def open_run(
    run_dir: str | Path | None = None, *, name: str = "tutorial", create: bool = True
) -> Run:
    """The run directory: the argument, else ``EMOTUNE_RUN_DIR``, else ``runs/<name>``."""
    path = config.run_dir(run_dir, name)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    elif not path.is_dir():
        raise ConfigError(f"run directory {path} does not exist")
    return Run(path)


def begin_stage(run: Run, stage: str, parameters: dict) -> Run:
    """Record that a stage started, with the parameters it runs on (never a secret: keys aren't
    parameters)."""
    run.update(
        parameters=dict(parameters), stages={stage: {"started_at": now_iso(), "status": "running"}}
    )
    return run


def finish_stage(run: Run, stage: str, wrote: list[str]) -> dict:
    """Record that a stage finished and which files it wrote; returns the stage's manifest entry."""
    manifest = run.update(
        stages={stage: {"finished_at": now_iso(), "status": "done", "wrote": sorted(wrote)}}
    )
    return manifest["stages"][stage]
