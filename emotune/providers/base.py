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

from ..core import config
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
    needs_key: ClassVar[bool] = False  # OPENAI_API_KEY must be set (a paid service)
    bills_dollars: ClassVar[bool] = False  # its requests cost money: runs say so before the first

    client: object  # openai.OpenAI
    base_url: str
    options: dict = field(default_factory=dict)

    @classmethod
    def build(cls, options: dict, *, run=None, state_dir=None, **local_options) -> Provider:
        """This provider, with the client it needs, configured from the environment.

        ``options`` are the client's ``max_retries`` and ``timeout``; ``run`` is the run the
        provider serves (a provider may read what an earlier notebook recorded about it);
        ``state_dir`` and ``local_options`` matter to providers that start a server of their own.
        The default builds an ``openai.OpenAI`` client for ``OPENAI_BASE_URL`` with
        ``OPENAI_API_KEY`` (a keyless server gets a placeholder key).
        """
        import openai

        key = config.openai_key()
        if cls.needs_key and not key:
            raise ConfigError(
                f"backend {cls.kind!r} needs OPENAI_API_KEY in the environment (never as a "
                "parameter); or use backend='local' to run offline for free"
            )
        client = openai.OpenAI(
            api_key=key or "not-needed", base_url=config.openai_base_url(), **options
        )
        return cls(client, str(client.base_url), options)

    @classmethod
    def accept_base_model(cls, model: str) -> None:
        """Note that the run's owner named ``model`` as the base to fine-tune (a provider that
        serves only the models it was given registers it here)."""

    @classmethod
    def check_default_model(cls) -> None:
        """Raise when ``base_model=auto`` cannot use :attr:`default_base_model` on this machine."""

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

    def serving_name(self, model: str) -> str:
        """The name a request for ``model`` carries (an Azure deployment; elsewhere the model)."""
        return model

    def explain_failures(self, model: str, failures: dict[str, str]) -> None:
        """Raise one clear error when ``failures`` (row id -> message) mean that ``model`` cannot
        answer here at all; by default they are reported row by row."""

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
        return (
            f"{self.kind} server, not OpenAI: OpenAI's fine-tuning wind-down dates do not apply "
            "to it."
        )

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
