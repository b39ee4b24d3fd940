"""The local backend's "base model" for OpenAI model names: an untrained label-word matcher, honest
about it."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from ...core.prompts import format_answer, last_user_text
from ...core.taxonomy import DEFAULT, get_taxonomy, map_labels, taxonomy_names
from .base import wants_json


@lru_cache(maxsize=1)
def _lexicons() -> dict[str, dict[str, list[str]]]:
    """Word forms per label, per label set (``catalog/lexicon.json``); a label set without one
    matches label
    names."""
    raw = json.loads(resources.files("emotune").joinpath("catalog/lexicon.json").read_text("utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def _pattern(words: list[str]) -> re.Pattern:
    return re.compile(r"(?<![a-z])(" + "|".join(re.escape(w) for w in words) + r")(?![a-z])")


class ZeroShotModel:
    """The local "base model": matches label names and their word forms; untrained, and honest
    about it."""

    kind = "zero-shot label-word matcher"

    def __init__(self):
        self._patterns = {
            name: {label: _pattern(words) for label, words in lex.items() if words}
            for name, lex in _lexicons().items()
        }

    @staticmethod
    def detect_taxonomy(system: str):
        """The label set the prompt asks for: named in it, else the one whose labels it lists
        most, else the
        default."""
        lowered = system.lower()
        for name in taxonomy_names():
            if re.search(rf"\b{re.escape(name)}\b", lowered):
                return get_taxonomy(name)
        scored = [
            (
                sum(lab in lowered for lab in get_taxonomy(n).labels) / len(get_taxonomy(n)),
                len(get_taxonomy(n)),
                n,
            )
            for n in taxonomy_names()
        ]
        best, _, name = max(scored)  # the largest label set among those best covered
        return get_taxonomy(name) if best >= 0.5 else get_taxonomy(DEFAULT)

    @staticmethod
    def strip_label_lists(text: str, taxonomy) -> str:
        """The text without a prompt's list of label names (three or more in a row,
        comma-separated), as in prompts that put the label list and the comment in one user message:
        only the comment is read."""
        names = "|".join(re.escape(lab) for lab in sorted(taxonomy.labels, key=len, reverse=True))
        return re.sub(
            rf"(?i)\b(?:{names})(?:\s*,\s*(?:and\s+|or\s+)?(?:{names})){{2,}}\b", " ", text
        )

    def predict(self, text: str, taxonomy) -> list[str]:
        lowered = text.lower()
        base = get_taxonomy(taxonomy.base) if taxonomy.base else taxonomy
        patterns = self._patterns.get(base.name)
        if patterns:
            hits = [label for label, pat in patterns.items() if pat.search(lowered)] or [
                base.labels[-1]
            ]
            return map_labels(hits, base, taxonomy)
        hits = [lab for lab in taxonomy.labels if re.search(rf"\b{re.escape(lab)}\b", lowered)]
        return hits or [taxonomy.labels[-1]]

    def answer(self, messages, response_format=None) -> str:
        system = " ".join(
            str(m.get("content", "")) for m in messages if m.get("role") in ("system", "developer")
        )
        taxonomy = self.detect_taxonomy(system or last_user_text(messages))
        labels = self.predict(self.strip_label_lists(last_user_text(messages), taxonomy), taxonomy)
        return format_answer(labels, "json" if wants_json(response_format, system) else "comma")
