"""The provider interface: what a backend can do, asked in one place.

A :class:`Provider` wraps the official ``openai`` client pointed at one server and declares its
capabilities: whether it runs fine-tuning jobs and batches, how a model is priced there (dollars per
token, compute seconds, or not priced), and whether OpenAI's
lifecycle dates apply. Stages never test a backend's name; they ask its provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from ..core.errors import ConfigError, LifecycleError
from ..core.pricing import Pricing, lifecycle, load_catalog

# 429s and 5xx are retried with back-off that honours Retry-After (openai client)
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT_S = 60.0


@dataclass
class Provider:
    """One OpenAI-compatible endpoint and what it can do. Subclasses set the class-level
    capabilities."""

    kind: ClassVar[str] = "abstract"
    fine_tuning: ClassVar[bool] = False  # runs /v1/fine_tuning/jobs
    batches: ClassVar[bool] = False  # runs /v1/batches
    lifecycle_applies: ClassVar[bool] = False  # OpenAI's wind-down dates gate job creation
    # what base_model="auto" fine-tunes here; None: the user must name one
    default_base_model: ClassVar[str | None] = None

    client: object  # openai.OpenAI
    base_url: str
    options: dict = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """The provider's kind (``openai``, ``compatible``, ``local``...), as recorded in the
        manifest."""
        return self.kind

    def async_client(self):
        """An ``openai.AsyncOpenAI`` with the same endpoint, key, retries and timeout.

        It runs on aiohttp (``openai[aiohttp]``): at 64 requests in flight the default httpx
        transport spends about twice the CPU per request (benchmarks/bench_local.py).
        """
        import openai

        return openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.client.api_key,
            http_client=openai.DefaultAioHttpClient(),
            **self.options,
        )

    def describe(self, model: str | None = None) -> str:
        """One line saying what answers (and, given a model, what that model really is)."""
        raise NotImplementedError

    def model_kind(self, model: str) -> str:
        """What really answers for ``model`` here, in a few words."""
        return f"{model} on the {self.kind} server"

    def display_name(self, model: str) -> str:
        """``model`` as progress bars and figure titles show it: saying what really answers where
        the name alone does not."""
        return model

    def comparison(self, base: str, tuned: str) -> str:
        """What notebook 05's verdict compares here, and what its cost figures mean (a few
        words)."""
        money = {
            "usd": "dollars at OpenAI's prices",
            "compute-seconds": "costs are compute time on your hardware",
        }.get(self.pricing(tuned).unit, "not priced")
        return f"{self.model_kind(base)} vs {self.model_kind(tuned)}; {money}"

    def auto_epochs(self, model: str) -> int | None:
        """The epochs ``n_epochs="auto"`` trains ``model`` for here, where it is not OpenAI's
        rule."""
        return None

    def answers_are_cheap(self, model: str) -> bool:
        """Whether a further pass of answers from ``model`` costs little (cents or seconds), so
        notebook 05's optional passes run by default."""
        return True

    def pricing(self, model: str) -> Pricing:
        """How ``model`` is paid for on this provider."""
        return Pricing.not_priced(model, f"{self.kind} server: no price list")

    def check_can_fine_tune(self, model: str, today: date | None = None) -> None:
        """Raise before any upload-to-job step when this provider cannot fine-tune ``model``
        today."""
        if not self.fine_tuning:
            raise ConfigError(
                f"the {self.kind} provider at {self.base_url} runs no fine-tuning jobs; "
                "fine-tune with "
                "backend='local' (free, offline) or backend='openai', then evaluate here"
            )
        if self.lifecycle_applies:
            state = lifecycle(model, today)
            if not state.can_create_job:
                raise LifecycleError(state.message)

    def lifecycle_note(self, model: str, today: date | None = None) -> str:
        """What OpenAI's wind-down means for ``model`` on this provider, in one or two sentences."""
        return f"{self.kind} server, not OpenAI: OpenAI's fine-tuning wind-down dates do not apply to it."

    def record(self) -> dict:
        """What the manifest keeps about this provider (never the key)."""
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "fine_tuning": self.fine_tuning,
            "batches": self.batches,
            "max_retries": self.options.get("max_retries"),
            "timeout_s": self.options.get("timeout"),
        }


def catalog_pricing(model: str, note: str) -> Pricing:
    """Dollars per token from the model catalogue (fine-tuned names priced at their base's
    fine-tuned
    rates)."""
    try:
        price = load_catalog().model(model)
    except ConfigError:
        return Pricing.not_priced(model, f"{model} is not in the pricing catalogue")
    return Pricing("usd", model, note, price)
