"""Any other OpenAI-compatible server (vLLM, a gateway, ...): chat only unless told otherwise,
never priced.

Chosen when ``OPENAI_BASE_URL`` points somewhere other than OpenAI. emotune does not know its prices
or its lifecycle, so it neither prices it as OpenAI nor applies OpenAI's wind-down dates, and it
assumes no fine-tuning jobs and no batches (most such servers have neither).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Provider


@dataclass
class CompatibleProvider(Provider):
    kind = "compatible"

    def describe(self, model: str | None = None) -> str:
        return (
            f"OpenAI-compatible server at {self.base_url} (not OpenAI: not priced, no wind-down "
            "dates)" + (f"; model {model}" if model else "")
        )
