"""Label sets as data (``emotune/catalog/taxonomies.json``): a dataset's labels, coarser levels, and yours.

A :class:`Taxonomy` is a name, its labels in id order, and (for a coarse level) the groups of base
labels each of its labels stands for. Mapping a label set between levels goes through the base.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from .errors import ConfigError


@dataclass(frozen=True)
class Taxonomy:
    """A named, ordered label set; a coarse one also says which base labels each label groups."""

    name: str
    labels: tuple[str, ...]
    base: str | None = None
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"taxonomy {self.name!r} repeats a label")

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        """The id of a label."""
        return self.labels.index(label)

    def names(self, ids: Iterable[int]) -> list[str]:
        """Label names for ids."""
        return [self.labels[i] for i in ids]

    def normalise(self, word: str) -> str | None:
        """The canonical label for a word (case, spacing and known misspellings forgiven), else None."""
        key = " ".join(word.strip().lower().split())
        if key in self.labels:
            return key
        return self.aliases.get(key)

    def base_members(self, label: str) -> tuple[str, ...]:
        """The base labels a label stands for (itself, for a base taxonomy)."""
        return tuple(self.groups[label]) if self.base else (label,)


def _load_builtin() -> dict[str, Taxonomy]:
    raw = json.loads(resources.files("emotune").joinpath("catalog/taxonomies.json").read_text("utf-8"))
    out: dict[str, Taxonomy] = {}
    for name, spec in raw.items():
        if name.startswith("_"):
            continue
        if "groups" in spec:
            groups = {k: tuple(v) for k, v in spec["groups"].items()}
            out[name] = Taxonomy(name, tuple(groups), base=spec["base"], groups=groups)
        else:
            out[name] = Taxonomy(name, tuple(spec["labels"]), aliases=dict(spec.get("aliases", {})))
    return out


_REGISTRY: dict[str, Taxonomy] = _load_builtin()


def register_taxonomy(taxonomy: Taxonomy) -> Taxonomy:
    """Make another dataset's label set available by name."""
    if taxonomy.base and taxonomy.base not in _REGISTRY:
        raise ConfigError(f"taxonomy {taxonomy.name!r} groups unknown base {taxonomy.base!r}")
    _REGISTRY[taxonomy.name] = taxonomy
    return taxonomy


DEFAULT = "default"  # the label set of the catalogue's default dataset (where None means something else)


def get_taxonomy(name: str | Taxonomy | None = None) -> Taxonomy:
    """A registered taxonomy by name (``ekman``, ``sentiment``, a dataset's label set or one you registered);
    None means the label set of the catalogue's default dataset."""
    if isinstance(name, Taxonomy):
        return name
    if name is None or name == DEFAULT:
        from .datasets import dataset_spec

        name = dataset_spec().label_set
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown taxonomy {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def taxonomy_names() -> list[str]:
    """Names of every registered taxonomy."""
    return sorted(_REGISTRY)


def _base_name(t: Taxonomy) -> str:
    return t.base or t.name


def map_labels(labels: Iterable[str], source: str | Taxonomy, target: str | Taxonomy) -> list[str]:
    """Map a label set from one level to another, in the target's label order.

    Mapping works towards coarser levels (28 -> Ekman -> sentiment); a label that would split into
    several target labels is an error, not a guess.
    """
    src, dst = get_taxonomy(source), get_taxonomy(target)
    if _base_name(src) != _base_name(dst):
        raise ConfigError(f"taxonomies {src.name!r} and {dst.name!r} do not share a base label set")
    to_target = {m: lab for lab in dst.labels for m in dst.base_members(lab)}
    out: set[str] = set()
    for label in labels:
        if label not in src.labels:
            raise ConfigError(f"{label!r} is not a {src.name} label")
        hits = {to_target[m] for m in src.base_members(label) if m in to_target}
        if len(hits) != 1:
            raise ConfigError(f"{src.name} label {label!r} maps to {sorted(hits)} in {dst.name}; map towards a coarser level")
        out |= hits
    return [lab for lab in dst.labels if lab in out]
