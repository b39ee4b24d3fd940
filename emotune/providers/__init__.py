"""Providers: the servers emotune talks to, each behind the same interface (:class:`Provider`).

``connect(backend)`` picks one, in this order: the ``backend`` argument, ``EMOTUNE_BACKEND``, then
``auto``: the local backend, or the ``compatible`` provider when ``OPENAI_BASE_URL`` names a server
that is not OpenAI's (never priced or wind-down-checked as OpenAI). OpenAI costs money, so it is
only ever asked for by name (``backend="openai"``, through ``OPENAI_BASE_URL`` when that names a
gateway); an exported key alone never picks it. The key is read by :mod:`emotune.config` and handed
to the client only; it is never printed, stored or sent to the local backend.

Providers are catalogue data (``emotune/catalog/providers.json``: name -> ``module:Class``); a file
named by ``EMOTUNE_PROVIDERS`` adds your own entries (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import json
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from ..core import config
from ..core.errors import ConfigError
from .base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, Provider
from .local import LOCAL_API_KEY, LocalProvider, local_server, stop_local_servers
from .openai_api import OPENAI_HOSTS

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "LOCAL_API_KEY",
    "Provider",
    "connect",
    "provider_names",
    "resolve_base_model",
    "stop_local_servers",
]


def _catalog() -> dict[str, str]:
    entries = json.loads(
        resources.files("emotune").joinpath("catalog/providers.json").read_text("utf-8")
    )
    extra = config.providers_file()
    if extra is not None:
        try:
            entries |= json.loads(Path(extra).read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"EMOTUNE_PROVIDERS={extra}: cannot read it as JSON ({exc})"
            ) from None
    return {k: v for k, v in entries.items() if not k.startswith("_")}


def provider_names() -> list[str]:
    """Every backend name ``connect`` accepts (besides ``auto``)."""
    return sorted(_catalog())


def _provider_class(name: str) -> type[Provider]:
    entries = _catalog()
    if name not in entries:
        raise ConfigError(
            f"backend must be 'auto' or one of {', '.join(sorted(entries))}, not {name!r}"
        )
    module, _, cls = entries[name].partition(":")
    try:
        found = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"provider {name!r}: cannot load {entries[name]} ({exc})") from None
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise ConfigError(f"provider {name!r}: {entries[name]} is not a Provider subclass")
    return found


def _choose(backend: str | None) -> str:
    choice = config.backend_choice(backend)
    url = config.openai_base_url()
    if (
        choice == "auto"
    ):  # paid runs are asked for by name: a key in the environment alone never picks OpenAI
        choice = "compatible" if url and urlparse(url).hostname not in OPENAI_HOSTS else "local"
    return choice  # "openai" with another OPENAI_BASE_URL is OpenAI through that gateway


def resolve_base_model(base_model: str, backend: str | None = "auto") -> str:
    """The model to fine-tune: ``base_model`` itself, or for ``auto`` the chosen backend's default
    (the local backend's is SmolLM2-135M-Instruct, a real LLM, which needs the open-weights extra).
    """
    if base_model not in ("", "auto"):
        return base_model
    name = _choose(backend)
    model = _provider_class(name).default_base_model
    if model is None:
        raise ConfigError(
            f"base_model=auto: the {name} backend has no default model; name the model to "
            "fine-tune (-p base_model=NAME)"
        )
    if issubclass(_provider_class(name), LocalProvider):
        LocalProvider.require_default_model()
    return model


def _share_label_set(run) -> None:
    """Make the run's own label set known to the in-process local backend, which recognises the
    label set a
    prompt or a training file uses among the known ones (each notebook runs in a fresh kernel)."""
    from ..core.taxonomy import Taxonomy, register_taxonomy, taxonomy_names

    record = run.get("data", "label_set")
    if record is not None and record["name"] not in taxonomy_names():
        register_taxonomy(Taxonomy.from_record(record))


def connect(
    backend: str | None = "auto",
    *,
    state_dir: str | Path | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    run=None,
    **local_options,
) -> Provider:
    """The provider for the chosen backend, with a configured client; the local server is started
    if needed.

    ``state_dir`` is where the local backend keeps files, jobs and models (default: the run
    directory's ``local-backend/``). ``local_options`` go to the local server (fault injection:
    ``latency_ms``, ``fail_429``, ``fail_500``; defaults from ``EMOTUNE_LOCAL_*``). With ``run``,
    the provider (kind, URL and capabilities, never the key) is recorded in the run's manifest. It
    prints nothing: ``provider.describe()`` says what answers.
    """
    import openai

    name = _choose(backend)
    cls = _provider_class(name)
    options = {"max_retries": max_retries, "timeout": timeout}
    if issubclass(cls, LocalProvider):
        state = (
            Path(state_dir)
            if state_dir
            else (
                run.file("local-backend") if run is not None else config.run_dir() / "local-backend"
            )
        )
        server = local_server(state, **(config.fault_settings() | local_options))
        client = openai.OpenAI(api_key=LOCAL_API_KEY, base_url=server.base_url, **options)
        provider: Provider = cls(client, server.base_url, options, server=server)
        if run is not None:
            _share_label_set(run)
    else:
        key = config.openai_key()
        if cls.kind == "openai" and not key:
            raise ConfigError(
                "backend 'openai' needs OPENAI_API_KEY in the environment (never as a parameter); "
                "or use backend='local' to run offline for free"
            )
        # A keyless OpenAI-compatible server still needs some key for the client; this one means
        # "none".
        client = openai.OpenAI(
            api_key=key or "not-needed", base_url=config.openai_base_url(), **options
        )
        provider = cls(client, str(client.base_url), options)
    if run is not None:
        from ..core.manifest import BackendRecord

        run.put(BackendRecord(**provider.record()))
    return provider
