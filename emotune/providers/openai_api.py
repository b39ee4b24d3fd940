"""OpenAI itself: billed in dollars per token, and subject to the fine-tuning wind-down.

Reached at api.openai.com, or through a gateway (LiteLLM proxy, Helicone, Portkey, a company's own)
named by ``OPENAI_BASE_URL``: asked for by name (``backend=openai``), a gateway is still OpenAI,
priced from the catalogue, with its jobs, batches and wind-down dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlparse

from ..core.pricing import Pricing, lifecycle
from .base import Provider, catalog_pricing

OPENAI_HOSTS = ("api.openai.com",)


@dataclass
class OpenAIProvider(Provider):
    kind = "openai"
    fine_tuning = True
    batches = True
    lifecycle_applies = True
    default_base_model = "gpt-4.1-mini-2025-04-14"
    needs_key = True
    bills_dollars = True

    @property
    def through_gateway(self) -> bool:
        """Whether requests reach OpenAI through a gateway rather than api.openai.com itself."""
        return urlparse(self.base_url).hostname not in OPENAI_HOSTS

    def describe(self, model: str | None = None) -> str:
        where = f"through the gateway at {self.base_url}" if self.through_gateway else self.base_url
        return f"OpenAI backend {where} (billed in dollars at OpenAI's prices)" + (
            f"; model {model}" if model else ""
        )

    def record(self) -> dict:
        """The base record, and whether a gateway stands in front of OpenAI (its URL, never the
        key)."""
        return super().record() | {"gateway": self.base_url if self.through_gateway else None}

    def model_kind(self, model: str) -> str:
        return f"OpenAI {'fine-tuned ' if model.startswith('ft:') else ''}model {model}"

    def pricing(self, model: str) -> Pricing:
        return catalog_pricing(model, "billed by OpenAI")

    def lifecycle_note(self, model: str, today: date | None = None) -> str:
        return lifecycle(model, today).message
