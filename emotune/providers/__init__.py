"""Providers: the servers emotune talks to, each behind the same interface (:class:`Provider`).

``connect(backend)`` picks one, in this order: the ``backend`` argument, ``EMOTUNE_BACKEND``, then
``auto``: the local backend, or the ``compatible`` provider when ``OPENAI_BASE_URL`` names a server
that is not OpenAI's (never priced or wind-down-checked as OpenAI). OpenAI costs money, so it is
only ever asked for by name (``backend="openai"``, through ``OPENAI_BASE_URL`` when that names a
gateway); an exported key alone never picks it. The key is read by :mod:`emotune.config` and handed
to the client only; it is never printed, stored or sent to the local backend.

Providers are found the way Python plugins are: each is an entry point in the ``emotune.providers``
group (name -> ``module:Class``). emotune registers its own in ``pyproject.toml``; a package of
yours adds one by declaring an entry point in that group (docs/backends.md), without touching
emotune's files. Each provider builds its own client (``Provider.build``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlparse

from ..core import config
from ..core.errors import ConfigError
from .base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, Provider
from .local import LOCAL_API_KEY, local_server, stop_local_servers
from .openai_api import OPENAI_HOSTS

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "ENTRY_POINT_GROUP",
    "LOCAL_API_KEY",
    "Provider",
    "connect",
    "local_server",
    "provider_names",
    "resolve_base_model",
    "spending_notice",
    "stop_local_servers",
]

ENTRY_POINT_GROUP = "emotune.providers"


def _registered() -> dict:
    """The providers installed: entry point name -> entry point."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if not found:
        raise ConfigError(
            "no providers are registered: emotune's own entry points are missing, so it is not "
            "installed as a package; run `pip install -e .` (or `make setup`) in its folder"
        )
    return found


def provider_names() -> list[str]:
    """Every backend name ``connect`` accepts (besides ``auto``)."""
    return sorted(_registered())


def _provider_class(name: str) -> type[Provider]:
    registered = _registered()
    if name not in registered:
        raise ConfigError(
            f"backend must be 'auto' or one of {', '.join(sorted(registered))}, not {name!r} "
            f"(a provider of yours is an entry point in the {ENTRY_POINT_GROUP!r} group)"
        )
    entry = registered[name]
    try:
        found = entry.load()
    except Exception as exc:  # a plugin that fails to import is named, never a traceback
        raise ConfigError(f"provider {name!r}: cannot load {entry.value} ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise ConfigError(f"provider {name!r}: {entry.value} is not a Provider subclass")
    return found


def _choose(backend: str | None) -> str:
    choice = config.backend_choice(backend)
    url = config.openai_base_url()
    if choice == "auto":  # paid runs are asked for by name: an exported key never picks OpenAI
        choice = "compatible" if url and urlparse(url).hostname not in OPENAI_HOSTS else "local"
    return choice  # "openai" with another OPENAI_BASE_URL is OpenAI through that gateway


def resolve_base_model(base_model: str, backend: str | None = "auto") -> str:
    """The model to fine-tune: ``base_model`` itself, or for ``auto`` the chosen backend's default
    (the local backend's is SmolLM2-135M-Instruct, a real LLM, which needs the open-weights extra).
    """
    name = _choose(backend)
    cls = _provider_class(name)
    if base_model not in ("", "auto"):
        cls.accept_base_model(base_model)  # the owner's choice (the local backend serves it)
        return base_model
    if cls.default_base_model is None:
        raise ConfigError(
            f"base_model=auto: the {name} backend has no default model; name the model to "
            "fine-tune (-p base_model=NAME)"
        )
    cls.check_default_model()
    return cls.default_base_model


def spending_notice(backend: str | None = "auto", budget_usd=None) -> str:
    """What a run on ``backend`` will spend, said before its first request (builds nothing, sends
    nothing): free, or billed in dollars with the budget the paid steps check first."""
    name = _choose(backend)
    if not _provider_class(name).bills_dollars:
        return f"backend {name}: nothing is billed in dollars"
    budget = budget_usd if budget_usd is not None else "the notebooks' default"
    return (
        f"backend {name} bills in dollars: notebook 03 stops unless its estimate of training and "
        f"answers fits budget_usd={budget}, and notebook 04 checks again before it creates the job"
    )


def connect(
    backend: str | None = "auto",
    *,
    state_dir: str | Path | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    run=None,
    **local_options,
) -> Provider:
    """The provider for the chosen backend, with the client it builds for itself.

    ``state_dir`` and ``local_options`` go to a provider that starts its own server (the local
    backend: where it keeps files, jobs and models, default the run directory's
    ``local-backend/``; fault injection ``latency_ms``, ``fail_429``, ``fail_500``). With ``run``,
    the provider (kind, URL and capabilities, never the key) is recorded in the run's manifest. It
    prints nothing: ``provider.describe()`` says what answers.
    """
    cls = _provider_class(_choose(backend))
    options = {"max_retries": max_retries, "timeout": timeout}
    provider = cls.build(options, run=run, state_dir=state_dir, **local_options)
    if run is not None:
        from ..core.manifest import BackendRecord

        run.put(BackendRecord(**provider.record()))
    return provider
