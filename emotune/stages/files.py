"""Reading data files: checksums, the UTF-8 check, GoEmotions' release TSVs, frames to a
DatasetDict."""

from __future__ import annotations

import csv
import hashlib
import stat
from pathlib import Path

import datasets
import pandas as pd

from ..core.errors import DataError
from ..core.taxonomy import Taxonomy


def sha256_file(path: Path) -> str:
    """Hex sha256 of a data file (checked first: a FIFO or a device is refused, never read)."""
    check_data_file(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_DATA_FILE_BYTES = (
    2 * 1024**3
)  # one data file; GoEmotions' largest is 5 MB: this is a guard, not a limit


def check_data_file(path: Path) -> None:
    """A data file must be a regular file (a FIFO would hang the read, a device never end) of a
    bounded size;
    links are followed, to what they name must be such a file."""
    try:
        info = path.stat()
    except OSError as exc:
        raise DataError(
            f"cannot be read ({exc.strerror})", path=str(path), rule="unreadable"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(
            "is not a regular file (a FIFO, a device or a folder); give a data file",
            path=str(path),
            rule="not-a-file",
        )
    if info.st_size > MAX_DATA_FILE_BYTES:
        raise DataError(
            f"holds {info.st_size:,} bytes, over the {MAX_DATA_FILE_BYTES:,} a data file may "
            "have; split it",
            path=str(path),
            rule="too-large",
        )


def check_text_file(path: Path) -> None:
    """A text data file must be UTF-8 (a BOM is fine); otherwise a DataError naming the file and
    line."""
    check_data_file(path)
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"is not valid UTF-8 (byte {exc.start}); save it as UTF-8",
            path=str(path),
            line=line,
            rule="encoding",
        ) from None


def read_split_tsv(path: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """Read one GoEmotions release TSV (no header: text, comma-separated label ids, id), checking
    every row.

    The release is CSV-quoted (texts with quotes are wrapped in quotes, inner quotes doubled), so it
    is read with the ``csv`` module's default quoting; ``NA`` stays the text "NA".
    """
    texts, labels, ids = [], [], []
    n = len(taxonomy)
    check_text_file(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        for parts in reader:
            lineno = reader.line_num
            if len(parts) != 3:
                raise DataError(
                    f"expected 3 tab-separated columns (text, labels, id), found {len(parts)}",
                    path=str(path),
                    line=lineno,
                    rule="columns",
                )
            text, label_field, row_id = parts
            if not label_field.strip():
                raise DataError("no label ids", path=str(path), line=lineno, rule="labels-missing")
            try:
                row = [int(tok) for tok in label_field.split(",")]
            except ValueError:
                raise DataError(
                    f"label ids must be integers, got {label_field!r}",
                    path=str(path),
                    line=lineno,
                    rule="label-not-integer",
                ) from None
            bad = [i for i in row if not 0 <= i < n]
            if bad:
                raise DataError(
                    f"label id {bad[0]} is outside 0-{n - 1}",
                    path=str(path),
                    line=lineno,
                    rule="label-out-of-range",
                )
            if not row_id.strip():
                raise DataError("empty id", path=str(path), line=lineno, rule="id-missing")
            texts.append(text)
            labels.append(sorted(set(row)))
            ids.append(row_id)
    return pd.DataFrame({"text": texts, "labels": labels, "id": ids})


def dataset_features(taxonomy: Taxonomy):
    """The columns every loaded dataset has: text, label ids into ``taxonomy``, id."""
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.ClassLabel(names=list(taxonomy.labels))),
            "id": datasets.Value("string"),
        }
    )


def dataset_dict(frames: dict[str, pd.DataFrame], taxonomy: Taxonomy):
    """A ``datasets.DatasetDict`` of the split frames, with the label set as ``ClassLabel``
    names."""
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(
                frame[["text", "labels", "id"]],
                features=dataset_features(taxonomy),
                preserve_index=False,
            )
            for name, frame in frames.items()
        }
    )
