"""Load a labelled text dataset (GoEmotions from its release or the hub, or your own file, folder
or hub id).

Every source gives the same ``datasets.DatasetDict``: splits train/validation/test with columns
``text`` (str), ``labels`` (list of label ids into the dataset's label set) and ``id`` (str), plus
the label set itself (:class:`~emotune.taxonomy.Taxonomy`) and a count of the rows dropped, per
split and reason. The file readers are in :mod:`.files`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ..core import config
from ..core.datasets import (
    FILE_FORMATS,
    SPLIT_ALIASES,
    DatasetParams,
    DatasetSpec,
    default_label_set,
    resolve_spec,
    split_files,
)
from ..core.errors import ChecksumError, ConfigError, DataError
from ..core.taxonomy import (
    Taxonomy,
    from_labels,
    get_taxonomy,
    resolve_level,
    taxonomy_names,
)
from .files import (  # noqa: F401  (data.sha256_file stays importable)
    check_data_file,
    check_text_file,
    dataset_dict,
    read_split_tsv,
    sha256_file,
)
from .labels import DROP_REASONS, label_rows
from .sampling import (  # noqa: F401  (data.multi_hot, ... stay importable)
    multi_hot,
    split_frame,
    stratified_sample,
    to_frame,
)

SPLITS = ("train", "validation", "test")
_BUILTIN = frozenset(taxonomy_names())  # label sets that ship with emotune (at import)
# share of the train split cut off for a validation or test split the data lacks
MADE_SPLIT_SHARE = 0.1


@dataclass
class LoadedData:
    """A DatasetDict plus what it is, where it came from, and what reading it dropped."""

    dataset: object  # datasets.DatasetDict
    source: str
    checksums: dict[str, str] = field(default_factory=dict)
    spec: DatasetSpec | None = None
    taxonomy: Taxonomy | None = None
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    made_splits: dict[str, str] = field(default_factory=dict)  # split -> how it was made

    def split_sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {name: len(split) for name, split in self.dataset.items()}


@dataclass
class CleaningReport:
    """What loading and :func:`clean` dropped, per split and reason, and what they noticed."""

    dropped: dict[str, dict[str, int]]
    duplicate_ids_across_splits: list[str]

    @property
    def dropped_empty(self) -> dict[str, int]:
        return {split: d.get("empty text", 0) for split, d in self.dropped.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per split, one column per reason."""
        rows = [
            {"split": split} | {f"dropped: {r}": d.get(r, 0) for r in DROP_REASONS}
            for split, d in self.dropped.items()
        ]
        return pd.DataFrame(rows)


def load_local(
    folder: str | Path, *, spec: DatasetSpec | None = None, verify: bool = True
) -> LoadedData:
    """Load a catalogue dataset's release files from a folder; files with a published checksum must
    match it."""
    spec = spec or resolve_spec("goemotions")
    tax = get_taxonomy(spec.label_set)
    files, known = spec.release["files"], spec.release.get("sha256", {})
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("is not a folder", path=str(folder), rule="data-dir")
    checksums, frames = {}, {}
    for split, name in files.items():
        path = folder / name
        if not path.exists():
            raise DataError(
                f"missing {name} (expected {', '.join(files.values())})",
                path=str(folder),
                rule="split-missing",
            )
        check_data_file(path)  # a FIFO or a device is refused before its checksum is read
        digest = sha256_file(path)
        checksums[name] = digest
        if verify and name in known and digest != known[name]:
            raise ChecksumError(
                f"sha256 {digest[:12]}… does not match the published {known[name][:12]}…; the "
                "file is "
                f"damaged or not the {spec.name} release (pass verify=False for other data)",
                path=str(path),
                rule="checksum",
            )
        frames[split] = read_split_tsv(path, tax)
    return LoadedData(
        dataset_dict(frames, tax),
        source=f"local:{folder.name}",
        checksums=checksums,
        spec=spec,
        taxonomy=tax,
        dropped={s: {} for s in frames},
    )


def load_hub(hub_id: str, hub_config: str | None = None) -> object:
    """A DatasetDict from the Hugging Face hub (needs network access or a warm cache); one clear
    error
    otherwise."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, hub_config)
    except Exception as exc:  # datasets raises many types offline; one clear message instead
        hint = (
            "set EMOTUNE_DATA_DIR (or data_source) to a folder holding the release files, or "
            if hub_config
            else "pass a local file or folder as dataset=, or "
        )
        raise DataError(
            f"could not load {hub_id!r} from the Hugging Face hub ({type(exc).__name__}). Either "
            f"{hint}"
            "allow network access (and unset HF_DATASETS_OFFLINE and HF_HUB_OFFLINE).",
            rule="data-source",
        ) from None


def _read_files(spec: DatasetSpec) -> tuple[object, dict[str, str], dict[str, Path]]:
    """Read a local file or folder through Hugging Face ``datasets``' csv/json/parquet builders."""
    import datasets

    location = Path(spec.location)
    by_split = split_files(location) if spec.source == "folder" else {"train": [location]}
    kind = FILE_FORMATS[next(iter(by_split.values()))[0].suffix.lower()]
    checksums, first = {}, {}
    for split, paths in by_split.items():
        first[split] = paths[0]
        for p in paths:
            check_data_file(p)
            if kind != "parquet":
                check_text_file(p)
            checksums[p.name] = sha256_file(p)
    builder, kw = {
        "csv": ("csv", {"encoding": "utf-8-sig"}),
        "tsv": ("csv", {"encoding": "utf-8-sig", "sep": "\t"}),
        "json": ("json", {}),
        "parquet": ("parquet", {}),
    }[kind]
    if kind in ("csv", "tsv"):
        kw["keep_default_na"], kw["na_values"] = False, [""]  # "NA" is a word, not a missing value
    try:
        dd = datasets.load_dataset(
            builder, data_files={s: [str(p) for p in ps] for s, ps in by_split.items()}, **kw
        )
    except Exception as exc:
        raise DataError(
            f"could not be read as {kind} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            path=str(location),
            rule="unreadable",
        ) from None
    return dd, checksums, first


def _own_splits(dd) -> dict[str, object]:
    out = {}
    for name, split in dd.items():
        target = SPLIT_ALIASES.get(name.lower())
        if target and target not in out:
            out[target] = split
    if "train" not in out:
        raise DataError(f"no train split (found {', '.join(dd)})", rule="split-missing")
    return out


def load_own(spec: DatasetSpec, *, seed: int = 42) -> LoadedData:
    """Load a dataset that is not in the catalogue: map its columns, label its rows, make missing
    splits."""
    if spec.source == "hub":
        dd, checksums, paths = load_hub(spec.location), {}, {}
        checksums = {s: ds._fingerprint for s, ds in dd.items()}
    else:
        dd, checksums, paths = _read_files(spec)
    splits = _own_splits(dd)
    labelled = label_rows(splits, spec, paths)
    if (
        spec.name in _BUILTIN
    ):  # a file named sentiment.csv must not replace the built-in sentiment level
        spec = replace(spec, name=f"{spec.name}-data")
    tax = from_labels(
        spec.name,
        labelled.label_names,
        multi_label=labelled.multi_label,
        item=spec.item,
        label_kind=spec.label_kind,
    )
    frames, made = dict(labelled.frames), {}
    missing = [s for s in SPLITS if s not in frames]
    if missing:
        shares = {"train": 1.0} | {s: MADE_SPLIT_SHARE for s in missing}
        frames |= split_frame(frames["train"], shares, seed=seed, n_labels=len(tax))
        made = {
            s: f"stratified {MADE_SPLIT_SHARE:.0%} of the file's train rows, seed {seed}"
            for s in missing
        }
    frames = {s: frames[s] for s in SPLITS}
    return LoadedData(
        dataset_dict(frames, tax),
        source=f"{spec.source}:{spec.location}",
        checksums=checksums,
        spec=spec,
        taxonomy=tax,
        dropped=labelled.dropped,
        made_splits=made,
    )


def load(
    dataset: DatasetParams | str | Path = "goemotions", *, seed: int = 42, verify: bool = True
) -> LoadedData:
    """Load a dataset: a catalogue name, a local CSV/TSV/JSONL/Parquet file or folder, or a hub
    id, with
    the column mapping of :class:`DatasetParams` (a bare string is a dataset with no mapping).

    A catalogue dataset comes from ``data_source``, else ``EMOTUNE_DATA_DIR``, else the hub; when
    neither works, one :class:`DataError` names both remedies. Any other dataset is read with the
    column mapping.
    """
    params = (
        dataset
        if isinstance(dataset, DatasetParams)
        else DatasetParams(str(dataset or "goemotions"))
    )
    data_source = params.data_source
    spec = resolve_spec(params)
    if spec.source != "catalog":
        if data_source:
            raise ConfigError(
                f"data_source is for catalogue datasets only; dataset={params.dataset!r} is read "
                "directly"
            )
        return load_own(spec, seed=seed)
    folder = config.data_dir(data_source)
    if folder is not None:
        return load_local(folder, spec=spec, verify=verify)
    dd = load_hub(spec.hub["id"], spec.hub.get("config"))
    return LoadedData(
        dd,
        source=f"hub:{spec.hub['id']}/{spec.hub.get('config')}",
        checksums={split: ds._fingerprint for split, ds in dd.items()},
        spec=spec,
        taxonomy=get_taxonomy(spec.label_set),
        dropped={s: {} for s in dd},
    )


def clean(data) -> tuple[object, CleaningReport]:
    """Drop empty or whitespace-only texts and report ids that occur in more than one split.

    Takes a :class:`LoadedData` (its loading drops are added to the report) or a bare DatasetDict.
    """
    import datasets

    dd = data.dataset if isinstance(data, LoadedData) else data
    before = data.dropped if isinstance(data, LoadedData) else {}
    dropped, seen, dupes, out = {}, {}, set(), {}
    for name, split in dd.items():
        keep = [i for i, t in enumerate(split["text"]) if t and t.strip()]
        counts = {reason: 0 for reason in DROP_REASONS} | dict(before.get(name, {}))
        counts["empty text"] += len(split) - len(keep)
        dropped[name] = counts
        out[name] = split.select(keep) if len(keep) < len(split) else split
        for row_id in out[name]["id"]:
            if row_id in seen and seen[row_id] != name:
                dupes.add(row_id)
            seen.setdefault(row_id, name)
    return datasets.DatasetDict(out), CleaningReport(dropped, sorted(dupes))


def record_dataset(run, loaded: LoadedData, cleaning: CleaningReport | None = None) -> dict:
    """Write the manifest's ``data`` section: the dataset, its source, columns, label set, splits
    and
    drops."""
    record = {
        "name": loaded.spec.name if loaded.spec else "goemotions",
        "source": loaded.source,
        "spec": loaded.spec.to_record() if loaded.spec else {},
        "checksums": loaded.checksums,
        "label_set": loaded.taxonomy.to_record(),
        "multi_label": loaded.taxonomy.multi_label,
        "levels": list(loaded.spec.levels) if loaded.spec else [],
        "split_sizes": loaded.split_sizes(),
        "made_splits": loaded.made_splits,
        "dropped": cleaning.dropped if cleaning else loaded.dropped,
        "duplicate_ids_across_splits": cleaning.duplicate_ids_across_splits if cleaning else [],
    }
    run.update(data=record)
    return record


SAMPLE_FILES = {
    "train": "train_sample.jsonl",
    "validation": "validation_sample.jsonl",
    "eval": "eval_sample.jsonl",
}


def save_samples(run, samples: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Write the samples into the run directory and record their size and id checksum in the
    manifest."""
    record = {}
    for name, frame in samples.items():
        path = run.write_frame(SAMPLE_FILES[name], frame)
        ids_sha = hashlib.sha256("\n".join(frame["id"]).encode()).hexdigest()
        record[name] = {
            "file": path.name,
            "rows": len(frame),
            "ids_sha256": ids_sha,
            "sha256": sha256_file(path),
        }
    run.update(samples=record)
    return record


def save_draws(run, draws: dict[int, dict[str, pd.DataFrame]]) -> list[dict]:
    """Write the baseline's extra training draws (``draws/seed-<seed>-<split>.jsonl``) and list
    them."""
    record = []
    for seed, frames in draws.items():
        files = {
            name: run.write_frame(f"draws/seed-{seed}-{name}.jsonl", f).name
            for name, f in frames.items()
        }
        record.append(
            {"seed": seed, "rows": {name: len(f) for name, f in frames.items()}, "files": files}
        )
    run.update(samples={"draws": record})
    return record


def load_draws(run) -> dict[int, dict[str, pd.DataFrame]]:
    """The draws :func:`save_draws` wrote, by seed (none for a run made before they existed)."""
    return {
        d["seed"]: {name: run.read_frame(f"draws/{file}") for name, file in d["files"].items()}
        for d in run.get("samples", "draws") or []
    }


def label_set(run, taxonomy: str | Taxonomy | None = None) -> Taxonomy:
    """The run's label set at the asked level: what later stages are given (they look nothing up
    by name).

    Reads the dataset's label set from the manifest notebook 01 wrote; ``taxonomy`` is the level
    (``goemotions``, ``ekman``, ``sentiment`` for GoEmotions; empty or the default means a dataset's
    own labels).
    """
    record = run.get("data", "label_set")
    if record is None:
        return resolve_level(default_label_set(), taxonomy)
    base = Taxonomy.from_record(record)
    if base.name in taxonomy_names():  # a built-in label set: the catalogue's, with its levels
        base = get_taxonomy(base.name)
    return resolve_level(base, taxonomy)


def load_samples(run) -> dict[str, pd.DataFrame]:
    """The samples notebook 01 wrote (the restart point of every later notebook); their label set is
    :func:`label_set`'s."""
    return {name: run.read_frame(fname) for name, fname in SAMPLE_FILES.items()}
