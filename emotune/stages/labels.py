"""Read a dataset's labels in any common shape into label ids, dropping (and counting) rows that
have none.

Shapes: one label per row (a string, or an integer id named by a ``ClassLabel`` or ``label_names``),
a list per row (a JSON/Parquet list, a JSON list in a string, or a string split on
``label_separator``), or one 0/1 column per label (``label_columns``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.datasets import LABEL_GUESSES, TEXT_GUESSES, DatasetSpec
from ..core.errors import DataError

DROP_REASONS = ("empty text", "missing labels", "unknown label")


@dataclass
class Labelled:
    """Each split as a frame (text, labels as ids, id), the label names, the shape, and the
    drops."""

    frames: dict[str, pd.DataFrame]
    label_names: tuple[str, ...]
    multi_label: bool
    dropped: dict[str, dict[str, int]]


def _where(paths: Mapping[str, Path], split: str, spec: DatasetSpec) -> str:
    return str(paths.get(split) or f"{spec.location} ({split} split)")


def _row(i: int, path) -> int:
    """1-based line of a data row (a CSV/TSV header is line 1)."""
    return i + (2 if str(path).lower().endswith((".csv", ".tsv")) else 1)


def _column(columns: list[str], asked: str, guesses, what: str, where: str) -> str:
    if asked:
        if asked not in columns:
            raise DataError(
                f"has no {what} column {asked!r}; its columns are: {', '.join(columns)}",
                path=where,
                rule="column-missing",
            )
        return asked
    for guess in guesses:
        if guess in columns:
            return guess
    raise DataError(
        f"no obvious {what} column; set {what}_column to one of: {', '.join(columns)}",
        path=where,
        rule="column-missing",
    )


def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_list(value, separator: str):
    """A cell as ('list', items) or ('one', item)."""
    if isinstance(value, list | tuple | np.ndarray):
        return "list", [v for v in value if not _missing(v)]
    if isinstance(value, str):
        text = value.strip()
        if separator:
            return "list", [p.strip() for p in text.split(separator) if p.strip()]
        if text.startswith("[") and text.endswith("]"):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                items = None
            if isinstance(items, list):
                return "list", [str(v).strip() if isinstance(v, str) else v for v in items]
        return "one", [text]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "one", [value]


def _id_names(spec: DatasetSpec, feature) -> tuple[str, ...]:
    names = getattr(feature, "names", None) or getattr(
        getattr(feature, "feature", None), "names", None
    )
    return tuple(spec.label_names) or tuple(names or ())


def _one_hot(frame: pd.DataFrame, columns: tuple[str, ...], where: str, path) -> list[list[str]]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"has no label column(s) {', '.join(map(repr, missing))}; its columns are: "
            f"{', '.join(frame.columns)}",
            path=where,
            rule="column-missing",
        )
    out = []
    for i, row in enumerate(frame[list(columns)].itertuples(index=False)):
        labels = []
        for name, v in zip(columns, row, strict=True):
            flag = str(v).strip().lower()
            if flag in ("1", "1.0", "true"):
                labels.append(name)
            elif flag not in ("0", "0.0", "false", "", "nan", "none"):
                raise DataError(
                    f"row {i + 1}: column {name!r} holds {v!r}; one-hot label columns hold 0 or 1",
                    path=where,
                    line=_row(i, path),
                    rule="label-not-binary",
                )
        out.append(labels)
    return out


def label_rows(
    splits: Mapping[str, object], spec: DatasetSpec, paths: Mapping[str, Path]
) -> Labelled:
    """Text, label ids and ids for every split, with the label set and a count of dropped rows
    per reason."""
    raw: dict[str, tuple[pd.DataFrame, list, list]] = {}
    shapes: dict[str, tuple[str, int]] = {}
    feature = None
    for split, ds in splits.items():
        where = _where(paths, split, spec)
        frame = ds.to_pandas()
        frame.columns = [str(c).lstrip("\ufeff") for c in frame.columns]
        text_col = _column(list(frame.columns), spec.text_field, TEXT_GUESSES, "text", where)
        if spec.label_columns:
            cells = [
                ("list", labs)
                for labs in _one_hot(frame, spec.label_columns, where, paths.get(split))
            ]
        else:
            label_col = _column(
                list(frame.columns), spec.label_field, LABEL_GUESSES, "label", where
            )
            feature = ds.features.get(label_col, feature) if hasattr(ds, "features") else feature
            cells = [
                None
                if _missing(v) or (isinstance(v, list | np.ndarray) and len(v) == 0)
                else _as_list(v, spec.label_separator)
                for v in frame[label_col].tolist()
            ]
        for i, cell in enumerate(cells):
            if cell is not None:
                shapes.setdefault(cell[0], (split, i))
        raw[split] = (frame, text_col, cells)
    if len(shapes) > 1:
        split, i = max(shapes.values(), key=lambda si: (si[0] != "train", si[1]))
        kind = next(k for k, v in shapes.items() if v == (split, i))
        raise DataError(
            f"row {i + 1} holds {'a list of labels' if kind == 'list' else 'a single label'} "
            "while earlier "
            "rows "
            "hold the other shape; every row must be single-label or every row a label list",
            path=_where(paths, split, spec),
            line=_row(i, paths.get(split)),
            rule="mixed-label-shapes",
        )
    declared = tuple(spec.label_columns) or _id_names(spec, feature)
    values = [v for _, _, cells in raw.values() for c in cells if c for v in c[1]]
    if any(isinstance(v, int | np.integer) for v in values) and not declared:
        raise DataError(
            "labels are integer ids but nothing names them; pass label_names=a,b,c (in id order) "
            "or a "
            "file with one name per line",
            path=spec.location,
            rule="label-names-missing",
        )
    names = declared or tuple(sorted({str(v) for v in values}))
    train_labels = set()
    frames, dropped, multi = {}, {}, False
    for split in sorted(raw, key=lambda s: s != "train"):
        frame, text_col, cells = raw[split]
        where = _where(paths, split, spec)
        counts = dict.fromkeys(DROP_REASONS, 0)
        texts, ids, rows = [], [], []
        has_id = "id" in frame.columns
        for i, (text, cell) in enumerate(zip(frame[text_col].tolist(), cells, strict=True)):
            if _missing(text):
                counts["empty text"] += 1
                continue
            if cell is None or not cell[1]:
                counts["missing labels"] += 1
                continue
            label_ids = sorted(
                {_label_id(v, names, declared, where, _row(i, paths.get(split))) for v in cell[1]}
            )
            if split != "train" and not set(label_ids) <= train_labels:
                counts["unknown label"] += 1  # never seen in training: the model cannot learn it
                continue
            if split == "train":
                train_labels |= set(label_ids)
            multi |= len(label_ids) > 1
            texts.append(str(text))
            rows.append(label_ids)
            ids.append(str(frame["id"].iat[i]) if has_id else f"{split}-{i + 1}")
        frames[split] = pd.DataFrame({"text": texts, "labels": rows, "id": ids})
        dropped[split] = counts
    if not declared:  # a label set taken from the data keeps only what training can learn
        kept = sorted(train_labels)
        remap = {old: new for new, old in enumerate(kept)}
        names = tuple(names[i] for i in kept)
        for frame in frames.values():
            frame["labels"] = [[remap[i] for i in ids] for ids in frame["labels"]]
    return Labelled(frames, names, multi, dropped)


def _label_id(
    value, names: tuple[str, ...], declared: tuple[str, ...], where: str, line: int
) -> int:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if not 0 <= int(value) < len(names):
            raise DataError(
                f"label id {value} is outside 0-{len(names) - 1} ({len(names)} label names)",
                path=where,
                line=line,
                rule="label-out-of-range",
            )
        return int(value)
    key = str(value).strip()
    if key in names:
        return names.index(key)
    if key.lstrip("-").isdigit() and declared and 0 <= int(key) < len(names):
        return int(key)
    raise DataError(
        f"label {key!r} is not in label_names "
        f"({', '.join(names[:20])}{'…' if len(names) > 20 else ''})",
        path=where,
        line=line,
        rule="label-unknown",
    )
