"""Label sets as data: the built-in ones from ``catalog/taxonomies.json``, and any dataset's own.

A :class:`Taxonomy` is a name, its labels in id order, whether an item may carry several of them
(``multi_label``), and (for a coarse level) the groups of base labels each of its labels stands for.
Mapping a label set between levels goes through the base. A dataset's label set is built from its
data (:func:`from_labels`) and recorded in the run manifest (:meth:`Taxonomy.to_record`); later
notebooks, which run in fresh kernels, rebuild it from there and pass the object on (only the
built-in label sets are looked up by name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from .errors import ConfigError

# The most labels an answer under the structured-output schema may hold: GoEmotions' raters gave a
# comment at most 5, and a cap stops a small model from repeating labels until its token limit cuts
# the JSON.
MAX_ANSWER_LABELS = 5

# What a dataset's label may be: the one rule the answer formats, the training files and the answer
# parser share. A comma, semicolon, bar or line break separates labels in an answer; quotes and
# brackets at a word's ends are stripped from it; a quote or <...> breaks the formats and looks like
# a special token to a model. So a label is a letter, digit or underscore, then at most 60 of those,
# spaces and . & / + ' -, ending in one of \w & / +.
LABEL_PATTERN = re.compile(r"^\w(?:[\w .&/+'-]{0,59}[\w&/+])?$")
LABEL_RULE = (
    "a label is 1 to 61 letters, digits, spaces and . & / + ' - _, starting with a letter, digit "
    "or _ and ending with one (or & / +): no , ; | quote, <...> or line break"
)


def check_labels(name: str, labels: Iterable[str]) -> None:
    """Raise ``ConfigError`` naming the first label that breaks :data:`LABEL_RULE`, or two labels
    an answer cannot tell apart (they differ only in case or spacing)."""
    seen: dict[str, str] = {}
    for label in labels:
        text = str(label)
        if not LABEL_PATTERN.match(text) or "  " in text:
            hint = (
                "; if the cell lists several labels, set label_separator"
                if any(c in text for c in ",;|")
                else ""
            )
            raise ConfigError(
                f"dataset {name!r}: label {text[:80]!r} is refused: {LABEL_RULE}{hint}"
            )
        key = " ".join(text.lower().split())
        if key in seen:
            raise ConfigError(
                f"dataset {name!r}: labels {seen[key]!r} and {text!r} differ only in case or "
                "spacing; an answer cannot tell them apart"
            )
        seen[key] = text


@dataclass(frozen=True)
class Taxonomy:
    """A named, ordered label set; a coarse one also says which base labels each label groups."""

    name: str
    labels: tuple[str, ...]
    base: str | None = None
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    multi_label: bool = True
    item: str = "text"  # what one example is, in prompts ("comment from Reddit", "support ticket")
    label_kind: str = "text"  # what is labelled, in the compact prompt ("emotions")

    def __post_init__(self):
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"taxonomy {self.name!r} repeats a label")
        if not self.labels:
            raise ConfigError(f"taxonomy {self.name!r} has no labels")

    def to_record(self) -> dict:
        """A JSON-ready record (what the run manifest keeps)."""
        return {
            "name": self.name,
            "labels": list(self.labels),
            "base": self.base,
            "groups": {k: list(v) for k, v in self.groups.items()},
            "aliases": dict(self.aliases),
            "multi_label": self.multi_label,
            "item": self.item,
            "label_kind": self.label_kind,
        }

    @classmethod
    def from_record(cls, record: Mapping) -> Taxonomy:
        """The taxonomy a :meth:`to_record` record describes."""
        return cls(
            record["name"],
            tuple(record["labels"]),
            base=record.get("base"),
            groups={k: tuple(v) for k, v in (record.get("groups") or {}).items()},
            aliases=dict(record.get("aliases") or {}),
            multi_label=bool(record.get("multi_label", True)),
            item=record.get("item", "text"),
            label_kind=record.get("label_kind", "text"),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def response_format(self) -> dict:
        """The ``response_format`` (OpenAI's strict structured outputs) of an answer ``{"labels":
        [...]}`` whose labels come from this set: at most :data:`MAX_ANSWER_LABELS` of them, or
        exactly one when single-label. A model decoding under it (an open-weights model here,
        OpenAI's own) cannot answer anything else."""
        most = min(MAX_ANSWER_LABELS, len(self.labels)) if self.multi_label else 1
        labels = {
            "type": "array",
            "items": {"type": "string", "enum": list(self.labels)},
            "maxItems": most,
        }
        if not self.multi_label:
            labels["minItems"] = 1
        schema = {
            "type": "object",
            "properties": {"labels": labels},
            "required": ["labels"],
            "additionalProperties": False,
        }
        return {
            "type": "json_schema",
            "json_schema": {"name": "labels", "strict": True, "schema": schema},
        }

    def index(self, label: str) -> int:
        """The id of a label."""
        return self.labels.index(label)

    def names(self, ids: Iterable[int]) -> list[str]:
        """Label names for ids."""
        return [self.labels[i] for i in ids]

    def normalise(self, word: str) -> str | None:
        """The canonical label for a word (case, spacing and known misspellings forgiven), else
        None."""
        key = " ".join(word.strip().lower().split())
        if key in self.labels:
            return key
        return self._lowered.get(key) or self.aliases.get(key)

    @property
    def _lowered(self) -> dict[str, str]:
        return {" ".join(label.lower().split()): label for label in self.labels}

    def base_members(self, label: str) -> tuple[str, ...]:
        """The base labels a label stands for (itself, for a base taxonomy)."""
        return tuple(self.groups[label]) if self.base else (label,)


def _load_builtin() -> dict[str, Taxonomy]:
    raw = json.loads(
        resources.files("emotune").joinpath("catalog/taxonomies.json").read_text("utf-8")
    )
    out: dict[str, Taxonomy] = {}
    for name, spec in raw.items():
        if name.startswith("_"):
            continue
        words = {k: spec[k] for k in ("item", "label_kind") if k in spec}
        if "groups" in spec:
            groups = {k: tuple(v) for k, v in spec["groups"].items()}
            base = raw[spec["base"]]
            words = {k: base[k] for k in ("item", "label_kind") if k in base} | words
            out[name] = Taxonomy(name, tuple(groups), base=spec["base"], groups=groups, **words)
        else:
            out[name] = Taxonomy(
                name, tuple(spec["labels"]), aliases=dict(spec.get("aliases", {})), **words
            )
    return out


_REGISTRY: dict[str, Taxonomy] = _load_builtin()


def from_labels(
    name: str,
    labels: Iterable[str],
    *,
    multi_label: bool,
    item: str = "text",
    label_kind: str = "text",
) -> Taxonomy:
    """A dataset's own label set, in the given order; one label only is an error (nothing to
    learn)."""
    labels = tuple(labels)
    check_labels(name, labels)
    if len(labels) < 2:
        raise ConfigError(
            f"dataset {name!r} has {len(labels)} label(s) ({', '.join(labels) or 'none'}); "
            "a classifier needs at least two"
        )
    return Taxonomy(name, labels, multi_label=multi_label, item=item, label_kind=label_kind)


def register_taxonomy(taxonomy: Taxonomy) -> Taxonomy:
    """Make another dataset's label set available by name."""
    if taxonomy.base and taxonomy.base not in _REGISTRY:
        raise ConfigError(f"taxonomy {taxonomy.name!r} groups unknown base {taxonomy.base!r}")
    _REGISTRY[taxonomy.name] = taxonomy
    return taxonomy


DEFAULT = "default"  # the one spelling of "the label set of the catalogue's default dataset"


def get_taxonomy(name: str | Taxonomy = DEFAULT) -> Taxonomy:
    """A registered taxonomy by name (``ekman``, ``sentiment``, a dataset's label set or one you
    registered);
    :data:`DEFAULT` is the label set of the catalogue's default dataset."""
    if isinstance(name, Taxonomy):
        return name
    if name == DEFAULT:
        from .datasets import default_label_set

        name = default_label_set()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown taxonomy {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def taxonomy_names() -> list[str]:
    """Names of every registered taxonomy."""
    return sorted(_REGISTRY)


def levels_of(base: str | Taxonomy) -> list[str]:
    """The base label set's name and every registered level that groups it (GoEmotions: ekman,
    sentiment)."""
    tax = get_taxonomy(base)
    return [tax.name] + sorted(n for n, t in _REGISTRY.items() if t.base == tax.name)


def level_taxonomies(base: Taxonomy) -> list[Taxonomy]:
    """The base label set and every registered level that groups it, as :func:`levels_of` names
    them."""
    return [base] + [_REGISTRY[n] for n in levels_of(base)[1:]]


def resolve_level(base: str | Taxonomy, level: str | Taxonomy | None) -> Taxonomy:
    """The label set to train and score at: ``level`` when it is the base or one of its levels.

    ``level`` empty, or the series' default (the default dataset's label set) on another dataset,
    means the dataset's own labels; any other level the dataset does not have is an error listing
    the ones it has.
    """
    from .datasets import default_label_set

    tax = get_taxonomy(base)
    name = level.name if isinstance(level, Taxonomy) else (level or tax.name)
    if name in (tax.name, default_label_set()):
        return tax
    if name not in levels_of(tax):
        raise ConfigError(
            f"taxonomy={name!r} is not a level of dataset {tax.name!r}; use one of {levels_of(tax)}"
        )
    return get_taxonomy(name)


def base_of(taxonomy: str | Taxonomy) -> Taxonomy:
    """The base label set a level groups (the label set itself for a base)."""
    tax = get_taxonomy(taxonomy)
    return get_taxonomy(tax.base) if tax.base else tax


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
            raise ConfigError(
                f"{src.name} label {label!r} maps to {sorted(hits)} in {dst.name}; map towards a "
                "coarser "
                "level"
            )
        out |= hits
    return [lab for lab in dst.labels if lab in out]
