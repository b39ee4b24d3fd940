"""Dataset specs as catalogue data (``emotune/catalog/datasets.json``): where a dataset comes from, which
fields hold its text and labels, its label set and coarser levels, its splits and a published reference.

The series runs on the catalogue's default dataset unless told otherwise; adding a known dataset is one
catalogue entry (see docs/architecture.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from .errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the catalogue."""

    name: str
    title: str
    label_set: str  # the name of its base label set (a taxonomy)
    levels: tuple[str, ...]  # the label set and the coarser levels it maps to
    text_field: str = "text"
    label_field: str = "labels"
    id_field: str = "id"
    multi_label: bool = True
    hub_id: str | None = None
    hub_config: str | None = None
    release_files: dict[str, str] = field(default_factory=dict)  # split -> file name in a local release folder
    release_sha256: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)  # train / validation / test -> the source's split name
    reference: dict | None = None  # a published score to show beside ours
    source: str = ""

    def reference_score(self, metric: str, level: str) -> float | None:
        """The published score for ``metric`` at ``level``, when the catalogue has one."""
        ref = self.reference or {}
        return ref.get("value") if ref.get("metric") == metric and ref.get("level") == level else None


@lru_cache(maxsize=1)
def _catalogue() -> dict:
    return json.loads(resources.files("emotune").joinpath("catalog/datasets.json").read_text("utf-8"))


def dataset_names() -> list[str]:
    """The datasets the catalogue knows by name."""
    return sorted(_catalogue()["datasets"])


def default_dataset() -> str:
    """The catalogue's default dataset (the tutorial's worked example)."""
    return _catalogue()["default"]


def dataset_spec(name: str | None = None) -> DatasetSpec:
    """A dataset spec by catalogue name (the default dataset when None)."""
    name = name or default_dataset()
    raw = _catalogue()["datasets"].get(name)
    if raw is None:
        raise ConfigError(f"unknown dataset {name!r}; the catalogue knows {', '.join(dataset_names())}")
    hub, release = raw.get("hub") or {}, raw.get("release") or {}
    return DatasetSpec(name=name, title=raw.get("title", name), label_set=raw["label_set"], levels=tuple(raw["levels"]),
                       text_field=raw.get("text_field", "text"), label_field=raw.get("label_field", "labels"),
                       id_field=raw.get("id_field", "id"), multi_label=bool(raw.get("multi_label", True)),
                       hub_id=hub.get("id"), hub_config=hub.get("config"), release_files=dict(release.get("files", {})),
                       release_sha256=dict(release.get("sha256", {})), splits=dict(raw.get("splits", {})),
                       reference=raw.get("reference"), source=raw.get("source", ""))
