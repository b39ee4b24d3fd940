"""The local backend's "base model" for OpenAI model names: an untrained label-word matcher, honest about it."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from ...examples import format_answer, last_user_text
from ...taxonomy import GOEMOTIONS, get_taxonomy, map_labels, taxonomy_names
from .base import wants_json


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, list[str]]:
    raw = json.loads(resources.files("emotune").joinpath("catalog/lexicon.json").read_text("utf-8"))
    return raw["goemotions"]


class ZeroShotModel:
    """The local "base model": matches label names and their word forms; untrained, and honest about it."""

    kind = "zero-shot label-word matcher"

    def __init__(self):
        self._patterns = {label: re.compile(r"(?<![a-z])(" + "|".join(re.escape(w) for w in words) + r")(?![a-z])")
                          for label, words in _lexicon().items() if words}

    @staticmethod
    def detect_taxonomy(system: str):
        lowered = system.lower()
        for name in taxonomy_names():
            if re.search(rf"\b{re.escape(name)}\b", lowered):
                return get_taxonomy(name)
        scored = [(sum(lab in lowered for lab in get_taxonomy(n).labels) / len(get_taxonomy(n)), n) for n in taxonomy_names()]
        best, name = max(scored)
        return get_taxonomy(name) if best >= 0.5 else GOEMOTIONS

    def predict(self, text: str, taxonomy) -> list[str]:
        lowered = text.lower()
        if taxonomy.base == GOEMOTIONS.name or taxonomy is GOEMOTIONS:
            hits = [label for label, pat in self._patterns.items() if pat.search(lowered)] or ["neutral"]
            return map_labels(hits, GOEMOTIONS, taxonomy)
        hits = [lab for lab in taxonomy.labels if re.search(rf"\b{re.escape(lab)}\b", lowered)]
        return hits or [taxonomy.labels[-1]]

    def answer(self, messages, response_format=None) -> str:
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") in ("system", "developer"))
        labels = self.predict(last_user_text(messages), self.detect_taxonomy(system))
        return format_answer(labels, "json" if wants_json(response_format, system) else "comma")


