"""Load GoEmotions-format data (local TSV mirror or the Hugging Face hub), clean it and sample it.

Both sources give the same ``datasets.DatasetDict``: splits train/validation/test with columns
``text`` (str), ``labels`` (list of label ids) and ``id`` (str).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core import config
from ..core.datasets import dataset_spec
from ..core.errors import ChecksumError, ConfigError, DataError
from ..core.taxonomy import Taxonomy, get_taxonomy

SPEC = dataset_spec()  # the catalogue's default dataset, in its release format (the one this loader reads)
HUB_ID, HUB_CONFIG = SPEC.hub_id, SPEC.hub_config
SPLIT_FILES = SPEC.release_files
KNOWN_SHA256 = SPEC.release_sha256  # published checksums of the release files


@dataclass
class LoadedData:
    """A DatasetDict plus where it came from and the checksums of what was read."""

    dataset: object  # datasets.DatasetDict
    source: str
    checksums: dict[str, str] = field(default_factory=dict)

    def split_sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {name: len(split) for name, split in self.dataset.items()}


@dataclass
class CleaningReport:
    """What :func:`clean` dropped and what it noticed."""

    dropped_empty: dict[str, int]
    duplicate_ids_across_splits: list[str]

    def to_frame(self) -> pd.DataFrame:
        """One row per split."""
        return pd.DataFrame({"split": list(self.dropped_empty), "empty texts dropped": list(self.dropped_empty.values())})


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_split_tsv(path: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """Read one release-format TSV (no header: text, comma-separated label ids, id), checking every row.

    The release is CSV-quoted: a comment holding a quote or a tab is wrapped in quotes with inner quotes
    doubled, so it is read with the csv module's default quoting (words such as "NA" stay text). Read that
    way every text equals the Hugging Face copy.
    """
    texts, labels, ids = [], [], []
    n = len(taxonomy)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for lineno, parts in enumerate(csv.reader(f, delimiter="\t"), start=1):
                if len(parts) != 3:
                    raise DataError(f"expected 3 tab-separated columns (text, labels, id), found {len(parts)}",
                                    path=str(path), line=lineno, rule="columns")
                text, label_field, row_id = parts
                if not label_field.strip():
                    raise DataError("no label ids", path=str(path), line=lineno, rule="labels-missing")
                try:
                    row = [int(tok) for tok in label_field.split(",")]
                except ValueError:
                    raise DataError(f"label ids must be integers, got {label_field!r}",
                                    path=str(path), line=lineno, rule="label-not-integer") from None
                bad = [i for i in row if not 0 <= i < n]
                if bad:
                    raise DataError(f"label id {bad[0]} is outside 0-{n - 1} for taxonomy {taxonomy.name}",
                                    path=str(path), line=lineno, rule="label-out-of-range")
                if not row_id.strip():
                    raise DataError("empty id", path=str(path), line=lineno, rule="id-missing")
                texts.append(text)
                labels.append(sorted(set(row)))
                ids.append(row_id)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 (byte {exc.start} of a chunk): {exc.reason}", path=str(path), rule="encoding") from None
    except csv.Error as exc:
        raise DataError(f"unreadable as tab-separated text ({exc})", path=str(path), rule="columns") from None
    return pd.DataFrame({"text": texts, "labels": labels, "id": ids})


def _features(taxonomy: Taxonomy):
    import datasets

    return datasets.Features({
        "text": datasets.Value("string"),
        "labels": datasets.Sequence(datasets.ClassLabel(names=list(taxonomy.labels))),
        "id": datasets.Value("string"),
    })


def load_local(folder: str | Path, *, taxonomy: str | Taxonomy | None = None, verify: bool = True) -> LoadedData:
    """Load train/dev/test TSVs from a folder; files with a published checksum must match it."""
    import datasets

    tax = get_taxonomy(taxonomy or SPEC.label_set)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("is not a folder", path=str(folder), rule="data-dir")
    checksums, splits = {}, {}
    for split, name in SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"missing {name} (expected {', '.join(SPLIT_FILES.values())})", path=str(folder), rule="split-missing")
        digest = sha256_file(path)
        checksums[name] = digest
        if verify and name in KNOWN_SHA256 and digest != KNOWN_SHA256[name]:
            raise ChecksumError(f"sha256 {digest[:12]}… does not match the published {KNOWN_SHA256[name][:12]}…; "
                                "the file is damaged or not the GoEmotions release (pass verify=False for other data)",
                                path=str(path), rule="checksum")
        splits[split] = datasets.Dataset.from_pandas(read_split_tsv(path, tax), features=_features(tax), preserve_index=False)
    return LoadedData(datasets.DatasetDict(splits), source=f"local:{folder.name}", checksums=checksums)


def load_hub(hub_id: str = HUB_ID, hub_config: str = HUB_CONFIG) -> LoadedData:
    """Load the dataset from the Hugging Face hub (needs network access or a warm cache)."""
    import datasets

    dd = datasets.load_dataset(hub_id, hub_config)
    checksums = {split: ds._fingerprint for split, ds in dd.items()}
    return LoadedData(dd, source=f"hub:{hub_id}/{hub_config}", checksums=checksums)


def load(source: str | Path | None = None, *, dataset: str | None = None, taxonomy: str | Taxonomy | None = None,
         verify: bool = True) -> LoadedData:
    """Load a catalogue dataset (the default one unless ``dataset`` names another): its release files from a
    local folder (``source`` or ``EMOTUNE_DATA_DIR``), else the hub.

    When neither works, one :class:`DataError` names both remedies.
    """
    spec = dataset_spec(dataset)
    if spec.name != SPEC.name:
        raise ConfigError(f"dataset {spec.name!r} has no loader here; this loader reads {SPEC.name!r} only")
    folder = config.data_dir(source if source and Path(source).exists() else None)
    if folder is not None:
        return load_local(folder, taxonomy=taxonomy, verify=verify)
    hub_id = str(source) if source else HUB_ID
    try:
        return load_hub(hub_id)
    except Exception as exc:  # datasets raises many types offline; one clear message instead
        raise DataError(
            f"could not load {hub_id!r} from the Hugging Face hub ({type(exc).__name__}). Either set "
            "EMOTUNE_DATA_DIR to a folder holding train.tsv, dev.tsv and test.tsv, or allow network access "
            "(and unset HF_DATASETS_OFFLINE).", rule="data-source") from None


def clean(dd) -> tuple[object, CleaningReport]:
    """Drop empty or whitespace-only texts and report ids that occur in more than one split."""
    import datasets

    dropped, seen, dupes, out = {}, {}, set(), {}
    for name, split in dd.items():
        keep = [i for i, t in enumerate(split["text"]) if t and t.strip()]
        dropped[name] = len(split) - len(keep)
        out[name] = split.select(keep) if dropped[name] else split
        for row_id in out[name]["id"]:
            if row_id in seen and seen[row_id] != name:
                dupes.add(row_id)
            seen.setdefault(row_id, name)
    return datasets.DatasetDict(out), CleaningReport(dropped, sorted(dupes))


def to_frame(split) -> pd.DataFrame:
    """A split as a DataFrame (text, labels as list of ids, id)."""
    frame = split.to_pandas()
    frame["labels"] = [list(map(int, ids)) for ids in frame["labels"]]
    return frame[["text", "labels", "id"]]


def multi_hot(label_lists, n_labels: int) -> np.ndarray:
    """An (n_rows, n_labels) 0/1 matrix from lists of label ids."""
    y = np.zeros((len(label_lists), n_labels), dtype=np.int8)
    for row, ids in enumerate(label_lists):
        y[row, list(ids)] = 1
    return y


def stratified_sample(frame: pd.DataFrame, n: int, *, seed: int, n_labels: int) -> pd.DataFrame:
    """n rows whose per-label support follows the population's (iterative stratification), seeded.

    Uses ``iterstrat``'s MultilabelStratifiedShuffleSplit, then tops up or trims at random (same seed)
    to exactly n rows, since iterative stratification only approximates the requested size.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    if not 0 < n <= len(frame):
        raise DataError(f"cannot sample {n} rows from {len(frame)}", rule="sample-size")
    if n == len(frame):
        return frame.reset_index(drop=True)
    y = multi_hot(frame["labels"].tolist(), n_labels)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, train_size=n, test_size=len(frame) - n, random_state=seed)
    chosen, rest = next(splitter.split(np.zeros(len(frame)), y))
    rng = np.random.default_rng(seed)
    if len(chosen) < n:
        chosen = np.concatenate([chosen, rng.choice(rest, n - len(chosen), replace=False)])
    elif len(chosen) > n:
        chosen = rng.choice(chosen, n, replace=False)
    chosen = _ensure_every_label(np.sort(chosen), y, rng)
    return frame.iloc[np.sort(chosen)].reset_index(drop=True)


def _ensure_every_label(chosen: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap rows in so that every label the population has appears at least once in the sample.

    Proportional allocation rounds a label with expected count below one down to zero; for each such
    label one row carrying it replaces a row whose labels all stay present without it.
    """
    chosen = chosen.copy()
    for label in np.argsort(y.sum(axis=0)):
        if y[:, label].sum() == 0 or y[chosen, label].any():
            continue
        counts = y[chosen].sum(axis=0)
        removable = [i for i, row in enumerate(chosen) if np.all(counts[y[row] == 1] > 1)]
        if not removable:
            break
        candidates = np.setdiff1d(np.flatnonzero(y[:, label]), chosen)
        chosen[rng.choice(removable)] = rng.choice(candidates)
    return chosen


def support_table(population: pd.DataFrame, sample: pd.DataFrame, taxonomy: str | Taxonomy | None = None) -> pd.DataFrame:
    """Per-label share of rows in the population and the sample, side by side."""
    tax = get_taxonomy(taxonomy)
    pop = multi_hot(population["labels"].tolist(), len(tax)).mean(axis=0)
    smp = multi_hot(sample["labels"].tolist(), len(tax)).mean(axis=0)
    return pd.DataFrame({
        "label": tax.labels,
        "population %": np.round(pop * 100, 2),
        "sample %": np.round(smp * 100, 2),
        "difference (pp)": np.round((smp - pop) * 100, 2),
    })


SAMPLE_FILES = {"train": "train_sample.jsonl", "validation": "validation_sample.jsonl", "eval": "eval_sample.jsonl"}


def make_samples(dd, *, n_train: int, n_validation: int, n_eval: int, seed: int) -> dict[str, pd.DataFrame]:
    """Stratified, seeded samples: train from train, validation from the dev split, eval from test.

    Only the eval sample touches the test split, and only notebook 05 reads it. A size of 0 takes the whole split.
    """
    plan = {"train": ("train", n_train), "validation": ("validation", n_validation), "eval": ("test", n_eval)}
    frames = {name: to_frame(dd[split]) for name, (split, _) in plan.items()}
    n_labels = len(dd["train"].features["labels"].feature.names)
    return {name: stratified_sample(frames[name], n or len(frames[name]), seed=seed, n_labels=n_labels)
            for name, (_, n) in plan.items()}


def save_samples(run, samples: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Write the samples into the run directory and record their size and id checksum in the manifest."""
    record = {}
    for name, frame in samples.items():
        path = run.write_frame(SAMPLE_FILES[name], frame)
        ids_sha = hashlib.sha256("\n".join(frame["id"]).encode()).hexdigest()
        record[name] = {"file": path.name, "rows": len(frame), "ids_sha256": ids_sha, "sha256": sha256_file(path)}
    run.update(samples=record)
    return record


def load_samples(run) -> dict[str, pd.DataFrame]:
    """The samples notebook 01 wrote (the restart point of every later notebook)."""
    return {name: run.read_frame(fname) for name, fname in SAMPLE_FILES.items()}
