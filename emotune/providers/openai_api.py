"""OpenAI itself (api.openai.com): billed in dollars per token, and subject to the fine-tuning
wind-down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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

    def describe(self, model: str | None = None) -> str:
        return f"OpenAI backend: {self.base_url}" + (f"; model {model}" if model else "")

    def model_kind(self, model: str) -> str:
        return f"OpenAI {'fine-tuned ' if model.startswith('ft:') else ''}model {model}"

    def pricing(self, model: str) -> Pricing:
        return catalog_pricing(model, "billed by OpenAI")

    def lifecycle_note(self, model: str, today: date | None = None) -> str:
        return lifecycle(model, today).message
