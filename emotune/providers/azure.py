"""Azure OpenAI: OpenAI's models on Azure, fine-tuned on Azure's own schedule.

Built on the official client's ``AzureOpenAI``: ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``
(or, without a key, a Microsoft Entra ID token from ``azure-identity`` when it is installed) and
``OPENAI_API_VERSION`` (default: the catalogue's GA version). Files, fine-tuning jobs and batches
are the data plane's ``/openai/...`` routes; chat goes to ``/openai/deployments/{name}/...``.

A model answers on Azure only once it is *deployed*, and deploying is a management-plane step (the
Foundry portal, ``az cognitiveservices account deployment create``, or ARM), which the data-plane
key cannot do. emotune sends each request to the deployment named after its model, or to the one
``AZURE_OPENAI_DEPLOYMENTS`` names (``model=deployment,...``); when Azure answers
``DeploymentNotFound`` the run stops with one message saying what to deploy and how to name it.

Costs are estimated at OpenAI's list prices (Azure's own prices and a deployed fine-tune's hourly
hosting fee are not in the catalogue); OpenAI's wind-down dates do not apply, Azure's retirement
dates (``catalog/azure.json``, and the model's own ``deprecation`` dates where Azure reports them)
do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources

from ..core import config
from ..core.errors import ConfigError, LifecycleError
from ..core.pricing import Pricing
from .base import Provider, catalog_pricing

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


@cache
def azure_catalog() -> dict:
    """``catalog/azure.json``: the default API version, retirement dates and their sources."""
    return json.loads(resources.files("emotune").joinpath("catalog/azure.json").read_text("utf-8"))


def parse_deployments(text: str | None) -> dict[str, str]:
    """``model=deployment,model2=deployment2`` as a dict; a malformed entry is one clear error."""
    found: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        model, sep, deployment = entry.partition("=")
        if not sep or not model.strip() or not deployment.strip():
            raise ConfigError(
                f"AZURE_OPENAI_DEPLOYMENTS: {entry.strip()!r} is not model=deployment "
                "(entries are separated by commas)"
            )
        found[model.strip()] = deployment.strip()
    return found


def _credentials(settings: dict) -> dict:
    """The key, or an Entra ID token provider; one line naming what is missing otherwise."""
    if settings["api_key"]:
        return {"api_key": settings["api_key"]}
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError:
        raise ConfigError(
            "backend 'azure' needs AZURE_OPENAI_API_KEY in the environment, or azure-identity "
            "installed (pip install azure-identity) to sign in with Microsoft Entra ID"
        ) from None
    return {
        "azure_ad_token_provider": get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    }


@dataclass
class AzureProvider(Provider):
    kind = "azure"
    fine_tuning = True
    batches = True
    bills_dollars = True
    default_base_model = "gpt-4.1-mini-2025-04-14"
    api_version: str = ""
    deployments: dict = field(default_factory=dict)
    credentials: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, options: dict, *, run=None, state_dir=None, **local_options) -> Provider:
        import openai

        settings = config.azure_settings()
        if not settings["endpoint"]:
            raise ConfigError(
                "backend 'azure' needs AZURE_OPENAI_ENDPOINT (https://<resource>.openai.azure.com)"
            )
        version = settings["api_version"] or azure_catalog()["default_api_version"]
        credentials = _credentials(settings)
        client = openai.AzureOpenAI(
            azure_endpoint=settings["endpoint"], api_version=version, **credentials, **options
        )
        return cls(
            client,
            str(client.base_url),
            options,
            api_version=version,
            deployments=parse_deployments(settings["deployments"]),
            credentials=credentials,
        )

    def async_client(self):
        """An ``openai.AsyncAzureOpenAI`` with the same endpoint, credentials and options."""
        import openai

        return openai.AsyncAzureOpenAI(
            azure_endpoint=config.azure_settings()["endpoint"],
            api_version=self.api_version,
            http_client=openai.DefaultAioHttpClient(),
            **self.credentials,
            **self.options,
        )

    def serving_name(self, model: str) -> str:
        return self.deployments.get(model, model)

    def explain_failures(self, model: str, failures: dict[str, str]) -> None:
        if any("DeploymentNotFound" in message for message in failures.values()):
            raise ConfigError(
                f"Azure has no deployment named {self.serving_name(model)!r} for {model}: deploy "
                "it (Foundry portal > Deployments, or `az cognitiveservices account deployment "
                f"create ... --model-name {model} --model-format OpenAI`), naming the deployment "
                f"{model!r} or setting AZURE_OPENAI_DEPLOYMENTS='{model}=<deployment>'; then "
                "re-run (answers already received are kept). A deployed fine-tune bills an hourly "
                "hosting fee until you delete the deployment."
            )

    def describe(self, model: str | None = None) -> str:
        head = (
            f"Azure OpenAI at {self.base_url} (api-version {self.api_version}; costs estimated at "
            "OpenAI's list prices)"
        )
        if model is None:
            return head
        return f"{head}; model {model}, deployment {self.serving_name(model)}"

    def model_kind(self, model: str) -> str:
        return f"Azure OpenAI {'fine-tuned ' if '.ft-' in model else ''}model {model}"

    def pricing(self, model: str) -> Pricing:
        return catalog_pricing(
            model.split(".ft-")[0],
            "estimated at OpenAI's list prices; Azure bills at its own, plus hourly hosting for "
            "a deployed fine-tune",
        )

    def check_can_fine_tune(self, model: str, today: date | None = None) -> None:
        """Azure's own date for ``model`` (its ``deprecation.fine_tune``, where the models route
        reports one) must not have passed."""
        today = today or date.today()
        retired = self._training_retirement(model)
        if retired is not None and retired <= today:
            raise LifecycleError(
                f"Azure stopped fine-tuning {model} on {retired.isoformat()} (its deprecation "
                "date for fine-tuning, as the models route reports it)"
            )

    def _training_retirement(self, model: str) -> date | None:
        try:
            found = self.client.models.retrieve(model)
        except Exception:  # a model the route does not list: Azure's job creation will say so
            return None
        stamp = (getattr(found, "deprecation", None) or {}).get("fine_tune")
        return datetime.fromtimestamp(stamp, UTC).date() if isinstance(stamp, int | float) else None

    def lifecycle_note(self, model: str, today: date | None = None) -> str:
        listed = azure_catalog()["models"].get(model.split(".ft-")[0], {})
        when = listed.get("retirement_no_earlier_than")
        dated = f"Azure listed {model} as retiring no earlier than {when}; " if when else ""
        return (
            "Azure OpenAI keeps its own schedule: OpenAI's wind-down dates do not apply. "
            f"{dated}check Azure's model retirements page for your region before training "
            "(sources in emotune/catalog/azure.json)."
        )

    def record(self) -> dict:
        return super().record() | {
            "api_version": self.api_version,
            "deployments": self.deployments or None,
        }
