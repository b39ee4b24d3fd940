"""Chat examples: one labelled row in, one chat example out; one model answer in, labels out.

The same functions build training files and evaluation prompts, and the same parser reads training
targets (in the local backend's learner) and model answers (in evaluation), so the two can't drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .taxonomy import DEFAULT, LABEL_PATTERN, Taxonomy, get_taxonomy

LABEL_FORMATS = ("comma", "json")


@dataclass(frozen=True)
class PromptStyle:
    """A system prompt template and a user message template.

    ``system`` may use ``{labels}`` (the label list), ``{taxonomy}`` (the label set's name),
    ``{item}`` (what one example is), ``{label_kind}``, ``{how}`` ("one or more labels" or "exactly
    one label"), ``{multi_rule}`` and ``{format_rule}``; ``user`` must use ``{text}``.
    """

    name: str
    system: str
    user: str = "{text}"


VERBOSE = PromptStyle(
    "verbose",
    "You are a highly intelligent text classification assistant. You carefully read a {item} and "
    "label it "
    "with "
    "{how} from a fixed list. The labels are: {labels}. {multi_rule}Do not invent labels that "
    "are not in "
    "the list. "
    "{format_rule}",
    "Label this {item}: {text}",
)
COMPACT = PromptStyle("compact", "Label the {label_kind} ({taxonomy}).")
ZERO_SHOT = PromptStyle(
    "zero-shot", "Classify the {item} with {how} from this list: {labels}. {format_rule}"
)
PROMPT_STYLES = {s.name: s for s in (VERBOSE, COMPACT, ZERO_SHOT)}

_FORMAT_RULES = {
    ("comma", True): "Answer with the labels only, separated by commas.",
    ("json", True): 'Answer with JSON only, in the form {"labels": ["label", ...]}.',
    ("comma", False): "Answer with exactly one label and nothing else.",
    (
        "json",
        False,
    ): 'Answer with JSON only, in the form {"labels": ["label"]}, holding exactly one label.',
}


def get_style(style: str | PromptStyle) -> PromptStyle:
    """A prompt style by name (``verbose``, ``compact``, ``zero-shot``) or your own
    :class:`PromptStyle`."""
    if isinstance(style, PromptStyle):
        if "{text}" not in style.user:
            raise ConfigError(
                f"prompt style {style.name!r}: the user template must contain {{text}}"
            )
        return style
    try:
        return PROMPT_STYLES[style]
    except KeyError:
        raise ConfigError(
            f"unknown prompt style {style!r}; use one of {sorted(PROMPT_STYLES)} or a PromptStyle"
        ) from None


def _check_format(label_format: str) -> str:
    if label_format not in LABEL_FORMATS:
        raise ConfigError(f"label_format must be one of {LABEL_FORMATS}, not {label_format!r}")
    return label_format


@dataclass(frozen=True)
class PromptSpec:
    """How a model is asked: a prompt style, an answer format and a label set, resolved once."""

    style: PromptStyle
    label_format: str
    taxonomy: Taxonomy

    @classmethod
    def resolve(
        cls,
        style: str | PromptStyle | PromptSpec = "compact",
        label_format: str = "comma",
        taxonomy: str | Taxonomy = DEFAULT,
    ) -> PromptSpec:
        """A spec from names or objects (a spec passes through); ``taxonomy`` is a label set or
        its name.

        :data:`~emotune.core.taxonomy.DEFAULT` is the default dataset's label set (the catalogue's
        ``_default``).
        """
        if isinstance(style, PromptSpec):
            return style
        return cls(get_style(style), _check_format(label_format), get_taxonomy(taxonomy))

    def messages(self, text: str) -> list[dict]:
        """The system and user messages that ask a model to label ``text``."""
        tax, multi = self.taxonomy, self.taxonomy.multi_label
        multi_rule = (
            "An item can carry several labels at once; choose every label that clearly applies"
            + (
                ", and choose 'neutral' only when no other label applies. "
                if "neutral" in tax.labels
                else ". "
            )
            if multi
            else ""
        )
        words = {
            "labels": ", ".join(tax.labels),
            "taxonomy": tax.name,
            "item": tax.item,
            "label_kind": tax.label_kind,
            "how": "one or more labels" if multi else "exactly one label",
            "multi_rule": multi_rule,
            "format_rule": _FORMAT_RULES[(self.label_format, multi)],
        }
        return [
            {"role": "system", "content": self.style.system.format(**words)},
            {"role": "user", "content": self.style.user.format(text=text, item=tax.item)},
        ]

    def to_record(self) -> dict:
        """What the manifest keeps: enough to tell two specs apart."""
        return {
            "style": self.style.name,
            "system": self.style.system,
            "user": self.style.user,
            "label_format": self.label_format,
            "label_set": self.taxonomy.name,
            "labels": list(self.taxonomy.labels),
            "multi_label": self.taxonomy.multi_label,
        }

    @classmethod
    def from_record(cls, record: dict, taxonomy: Taxonomy | None = None) -> PromptSpec:
        """The spec a :meth:`to_record` record describes, asking with ``taxonomy`` when given (the
        run's label set of that name); else a built-in label set by name, or one made from the
        recorded labels."""
        from .taxonomy import from_labels, taxonomy_names

        style = PromptStyle(record["style"], record["system"], record["user"])
        name = record["label_set"]
        if taxonomy is None or taxonomy.name != name:
            taxonomy = (
                get_taxonomy(name)
                if name in taxonomy_names()
                else from_labels(name, record["labels"], multi_label=record["multi_label"])
            )
        return cls(style, record["label_format"], taxonomy)

    def describe(self) -> str:
        """One line naming the spec."""
        return (
            f"style={self.style.name!r}, label_format={self.label_format!r}, "
            f"labels={self.taxonomy.name!r}"
        )


def prompt_spec(
    style: str | PromptStyle | PromptSpec = "compact",
    label_format: str = "comma",
    taxonomy: str | Taxonomy = DEFAULT,
) -> PromptSpec:
    """A checked :class:`PromptSpec` (unknown styles, formats and label sets are errors here,
    once)."""
    return PromptSpec.resolve(style, label_format, taxonomy)


def check_prompt_spec(trained: PromptSpec | dict | None, asked: PromptSpec | dict) -> PromptSpec:
    """The spec to ask a fine-tuned model with: the one it was trained with; asking otherwise is
    an error that
    says both specs."""
    if trained is None:
        return asked if isinstance(asked, PromptSpec) else PromptSpec.from_record(asked)
    rec = {
        k: v
        for k, v in (trained.to_record() if isinstance(trained, PromptSpec) else trained).items()
    }
    now = asked.to_record() if isinstance(asked, PromptSpec) else asked

    def line(r: dict) -> str:
        return (
            f"style={r['style']!r}, label_format={r['label_format']!r}, labels={r['label_set']!r}"
        )

    if rec != now:
        raise ConfigError(
            f"the fine-tuned model was trained with prompt ({line(rec)}) but is asked with "
            f"({line(now)}); "
            "evaluate with the same prompt_style, label_format and taxonomy as notebook 02 used, "
            "or rebuild the files and train again"
        )
    if isinstance(trained, PromptSpec):
        return trained
    return PromptSpec.from_record(
        trained, asked.taxonomy if isinstance(asked, PromptSpec) else None
    )


def prompt_messages(
    text: str,
    *,
    style: str | PromptStyle | PromptSpec = "compact",
    label_format: str = "comma",
    taxonomy: str | Taxonomy = DEFAULT,
) -> list[dict]:
    """The system and user messages that ask a model to label ``text`` (``style`` may be a whole
    PromptSpec)."""
    return PromptSpec.resolve(style, label_format, taxonomy).messages(text)


def format_answer(labels: Sequence[str], label_format: str = "comma") -> str:
    """The assistant answer for a label set."""
    if _check_format(label_format) == "json":
        return json.dumps({"labels": list(labels)})
    return ", ".join(labels)


def render_example(
    text: str,
    labels: Sequence[str],
    *,
    style: str | PromptStyle | PromptSpec = "compact",
    label_format: str = "comma",
    taxonomy: str | Taxonomy = DEFAULT,
) -> dict:
    """One chat fine-tuning example: system, user and the assistant's target answer."""
    spec = PromptSpec.resolve(style, label_format, taxonomy)
    messages = spec.messages(text)
    messages.append({"role": "assistant", "content": format_answer(labels, spec.label_format)})
    return {"messages": messages}


@dataclass(frozen=True)
class ParsedAnswer:
    """Labels read from an answer; ``status`` is ok, partial (some unknown), unknown, extra or
    unparseable.

    ``extra``: a single-label task answered with several known labels (all kept in ``labels``).
    """

    labels: tuple[str, ...]
    unknown: tuple[str, ...] = ()
    status: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_SPLIT = re.compile(r"[,;\n|]+")
_STRIP = " \t\"'`.!?:*-[](){}"


def _candidates(answer: str, is_label=lambda word: False) -> tuple[list[str] | None, str]:
    """The words of an answer: JSON's list, or the parts between separators (a part that is no
    label, "joy and love", is split at its "and")."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if text[:1] in "{[":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"invalid JSON ({exc.msg})"
        if isinstance(obj, dict):
            obj = obj.get("labels")
        if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
            return None, 'JSON without a "labels" list of strings'
        return obj, ""
    parts = [p.strip(_STRIP) for p in _SPLIT.split(text)]
    words = [
        p
        for chunk in parts
        for p in ([chunk] if is_label(chunk) else re.split(r"\s+and\s+", chunk))
    ]
    return [w.strip(_STRIP) for w in words if w.strip(_STRIP)], ""


def parse_answer(
    answer: str | None,
    taxonomy: str | Taxonomy = DEFAULT,
    *,
    any_label: bool = False,
    forgive_misspellings: bool = True,
) -> ParsedAnswer:
    """Read labels from a model answer, forgiving case, spacing, order, repeats and known
    misspellings.

    With a taxonomy, words outside it are reported as ``unknown``, never dropped silently or turned
    into 'neutral'. Without a taxonomy argument the default dataset's label set is used. With
    ``any_label=True`` any label-like word is accepted and ``taxonomy`` is not used (the open
    vocabulary the local backend's learner uses when it reads training targets).
    ``forgive_misspellings=False`` reports a known misspelling as unknown (what a training-file
    check wants: the model would learn it).
    """
    if answer is None or not answer.strip():
        return ParsedAnswer((), (), "unparseable", "empty answer")
    tax = None if any_label else get_taxonomy(taxonomy)
    words, problem = _candidates(
        answer,
        (lambda w: bool(LABEL_PATTERN.match(" ".join(w.split()))))
        if tax is None
        else (lambda w: tax.normalise(w) is not None),
    )
    if words is None:
        return ParsedAnswer((), (), "unparseable", problem)
    whole = (
        tax.normalise(answer.strip().strip(_STRIP))
        if tax is not None and forgive_misspellings
        else None
    )
    if whole is not None:  # a label that itself holds a separator ("rock and roll")
        words = [whole]
    found, unknown = [], []
    for word in words:
        key = " ".join(word.lower().split())
        if tax is None:
            label = key if LABEL_PATTERN.match(key) else None
        else:
            label = (
                tax.normalise(key) if forgive_misspellings else (key if key in tax.labels else None)
            )
        if label is None:
            unknown.append(key)
        elif label not in found:
            found.append(label)
    if tax:
        found.sort(key=tax.index)
    if not found and not unknown:
        return ParsedAnswer((), (), "unparseable", "no labels in answer")
    status = "ok" if not unknown else ("partial" if found else "unknown")
    if status == "ok" and tax is not None and not tax.multi_label and len(found) > 1:
        return ParsedAnswer(
            tuple(found), (), "extra", f"{len(found)} labels for a single-label task"
        )
    return ParsedAnswer(tuple(found), tuple(dict.fromkeys(unknown)), status)


def last_user_text(messages: Sequence[dict]) -> str:
    """The text of the last user message (content parts joined)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


def assistant_text(messages: Sequence[dict]) -> str | None:
    """The text of the last assistant message, if any."""
    for message in reversed(messages):
        if message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content
    return None


def example_labels(
    ids: Sequence[int], taxonomy: Taxonomy, base: Taxonomy | None = None
) -> list[str]:
    """A row's label ids (into the base label set) as names at the chosen level.

    ``base`` defaults to the base label set the level groups (the label set itself for a dataset's
    own labels).
    """
    from .taxonomy import base_of, map_labels

    src = base if base is not None else base_of(taxonomy)
    return map_labels(src.names(ids), src, taxonomy)
