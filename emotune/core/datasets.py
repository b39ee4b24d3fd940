"""Dataset specs: what a dataset is (source, fields, label set, levels, splits), as catalogue
data or from
parameters.

The catalogue (``catalog/datasets.json``) holds the datasets emotune knows by name (GoEmotions); any
other ``dataset`` parameter is a local file or folder, or a Hugging Face hub id, described by the
column-mapping parameters (:func:`resolve_spec`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import ConfigError

FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
}
# Names a file's own splits may carry, mapped to the series' split names ("dev" is validation).
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
MAX_NAMES_BYTES = 1024 * 1024  # a label_names file: one name a line
TEXT_GUESSES = ("text", "sentence", "content", "comment", "review", "body")
LABEL_GUESSES = ("label", "labels", "category", "class", "target")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: where it comes from, which fields hold text and labels, and how labels are
    shaped."""

    name: str
    source: str  # "catalog", "file", "folder" or "hub"
    location: str = ""  # the file, folder or hub id
    text_field: str = ""  # empty: guess
    label_field: str = ""  # empty: guess (unless label_columns)
    label_columns: tuple[str, ...] = ()
    label_separator: str = ""
    label_names: tuple[str, ...] = ()
    label_set: str = ""  # a registered taxonomy (catalogue datasets); empty: taken from the data
    levels: tuple[str, ...] = ()
    splits: dict[str, str] = field(default_factory=dict)
    hub: dict[str, str] = field(default_factory=dict)
    release: dict = field(default_factory=dict)
    item: str = "text"
    label_kind: str = "text"
    reference: dict | None = None  # a published score to show beside ours (catalogue datasets)

    def reference_score(self, metric: str, level: str) -> float | None:
        """The published score for ``metric`` at ``level``, when the catalogue has one."""
        ref = self.reference or {}
        return (
            ref.get("value") if ref.get("metric") == metric and ref.get("level") == level else None
        )

    def to_record(self) -> dict:
        """What the run manifest keeps about the dataset."""
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "text_field": self.text_field,
            "label_field": self.label_field,
            "label_columns": list(self.label_columns),
            "label_separator": self.label_separator,
            "levels": list(self.levels),
        }


@lru_cache(maxsize=1)
def _catalogue() -> dict:
    raw = json.loads(
        resources.files("emotune").joinpath("catalog/datasets.json").read_text("utf-8")
    )
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def default_label_set() -> str:
    """The label set of the series' default dataset (what a prompt or parser uses when given
    none)."""
    raw = json.loads(
        resources.files("emotune").joinpath("catalog/datasets.json").read_text("utf-8")
    )
    return catalogue_spec(raw["_default"]).label_set


def dataset_spec(name: str | None = None) -> DatasetSpec:
    """A catalogue dataset's spec (the default dataset when None)."""
    raw = json.loads(
        resources.files("emotune").joinpath("catalog/datasets.json").read_text("utf-8")
    )
    return catalogue_spec(name or raw["_default"])


def dataset_names() -> list[str]:
    """The datasets emotune knows by name."""
    return sorted(_catalogue())


def catalogue_spec(name: str) -> DatasetSpec:
    """The catalogue entry for a dataset name."""
    try:
        raw = _catalogue()[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; known: {', '.join(dataset_names())}"
        ) from None
    return DatasetSpec(
        name,
        "catalog",
        text_field=raw["text_field"],
        label_field=raw["label_field"],
        label_set=raw["label_set"],
        levels=tuple(raw.get("levels", ())),
        splits=dict(raw["splits"]),
        hub=dict(raw.get("hub", {})),
        release=dict(raw.get("release", {})),
        item=raw.get("item", "text"),
        label_kind=raw.get("label_kind", "text"),
        reference=raw.get("reference"),
    )


def _text(value: object) -> str | None:
    """A papermill string parameter as it was given (a separator may be a space); empty or
    missing is
    None."""
    return None if value in (None, "") else str(value)


def _names(value: str) -> tuple[str, ...]:
    """Label names from ``a,b,c`` or from a file with one name per line."""
    path = Path(value).expanduser()
    if path.is_file():
        if path.stat().st_size > MAX_NAMES_BYTES:
            raise ConfigError(
                f"label_names={value!r}: a file of {path.stat().st_size:,} bytes, over the "
                f"{MAX_NAMES_BYTES:,} a list of label names may have"
            )
        names = [line.strip() for line in path.read_text("utf-8-sig").splitlines()]
    else:
        names = [part.strip() for part in value.split(",")]
    names = [n for n in names if n]
    if len(set(names)) != len(names):
        raise ConfigError(f"label_names={value!r} repeats a name")
    return tuple(names)


@dataclass(frozen=True)
class DatasetParams:
    """The series' dataset parameters, parsed: None where unset, tuples where papermill gave
    ``a,b,c``."""

    dataset: str = "goemotions"  # a catalogue name, a local file or folder, or a hub id
    data_source: str | None = None  # catalogue datasets only: a release-format folder
    text_column: str | None = None
    label_column: str | None = None
    label_columns: tuple[str, ...] | None = None
    label_separator: str | None = None
    label_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.label_columns and self.label_column:
            raise ConfigError("set label_column or label_columns, not both")

    @classmethod
    def from_parameters(cls, params: Mapping[str, object]) -> DatasetParams:
        """Parse the notebook parameters once: "" is unset, "a,b,c" a tuple, label_names may name
        a file."""
        columns = _text(params.get("label_columns"))
        names = _text(params.get("label_names"))
        return cls(
            dataset=(_text(params.get("dataset")) or "goemotions").strip(),
            data_source=_text(params.get("data_source")),
            text_column=_text(params.get("text_column")),
            label_column=_text(params.get("label_column")),
            label_columns=tuple(c.strip() for c in columns.split(",") if c.strip())
            if columns
            else None,
            label_separator=_text(params.get("label_separator")),
            label_names=_names(names) if names else None,
        )


def resolve_spec(params: DatasetParams | str = "goemotions") -> DatasetSpec:
    """The spec for the ``dataset`` parameter: a catalogue name, a local file or folder, or a hub
    id."""
    if isinstance(params, str):
        params = DatasetParams(params or "goemotions")
    dataset = params.dataset.strip()
    if dataset in _catalogue():
        return catalogue_spec(dataset)
    path = Path(dataset).expanduser()
    common = dict(
        text_field=params.text_column or "",
        label_field=params.label_column or "",
        label_columns=params.label_columns or (),
        label_separator=params.label_separator or "",
        label_names=params.label_names or (),
    )
    if path.is_file():
        if path.suffix.lower() not in FILE_FORMATS:
            raise ConfigError(
                f"dataset={dataset!r}: unknown file type {path.suffix!r}; use one of "
                f"{', '.join(sorted(FILE_FORMATS))}"
            )
        return DatasetSpec(path.stem, "file", str(path.resolve()), **common)
    if path.is_dir():
        return DatasetSpec(path.name, "folder", str(path.resolve()), **common)
    if path.exists():  # a FIFO would hang the read, a device never end
        raise ConfigError(
            f"dataset={dataset!r} is not a regular file (a FIFO or a device); give a data file"
        )
    if "/" in dataset and not dataset.startswith((".", "/", "~")) and dataset.count("/") == 1:
        return DatasetSpec(dataset.split("/")[1], "hub", dataset, **common)
    raise ConfigError(
        f"dataset={dataset!r} is neither a known dataset ({', '.join(dataset_names())}), an "
        "existing "
        "file or folder, nor a Hugging Face hub id (owner/name)"
    )


def split_files(folder: Path) -> dict[str, list[Path]]:
    """A folder's data files by series split (``train.csv``, ``dev.jsonl``…); a lone file is the
    train
    split."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FILE_FORMATS)
    if not files:
        raise ConfigError(
            f"dataset folder {folder} holds no {', '.join(sorted(FILE_FORMATS))} file"
        )
    out: dict[str, list[Path]] = {}
    for p in files:
        split = SPLIT_ALIASES.get(p.stem.lower().split("-")[0].split("_")[0])
        if split:
            out.setdefault(split, []).append(p)
    if not out:
        if len(files) > 1:
            raise ConfigError(
                f"dataset folder {folder}: name its files train/validation (or dev)/test, "
                f"found {', '.join(p.name for p in files)}"
            )
        out["train"] = files
    if len({p.suffix.lower() for ps in out.values() for p in ps}) > 1:
        raise ConfigError(f"dataset folder {folder} mixes file types")
    return out
