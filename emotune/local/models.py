"""Models: what the backend serves, and the served model behind each name."""

from __future__ import annotations

import threading

from ..core.errors import ConfigError
from ..core.pricing import load_catalog
from . import trainers
from .api_error import ApiError
from .store import Store, public
from .trainers.weights import known

OWNER = "emotune-local"
# The local stand-in serves the catalogue's models that were still fine-tunable on the catalogue's
# date, by dated name and by alias (the catalogue is the one home of that list).
_FINE_TUNABLE = load_catalog().fine_tunable()
ALIASES = {k: v for k, v in _FINE_TUNABLE.items() if k != v}
# The classical stand-in's own name (not an LLM): quick rehearsals and tests, free of OpenAI's dates
STAND_IN = "stand-in"
CATALOGUE = (STAND_IN, *sorted(set(_FINE_TUNABLE.values())))


def owner_of(base: str) -> str:
    """The organisation part of a fine-tune's id: an OpenAI name trained by the classical stand-in
    says so (``ft:gpt-4.1-mini-...:emotune-local-stand-in:...``), so no id suggests OpenAI trained
    it."""
    stand_in = trainers.trainer_for(base).name == "classical" and base != STAND_IN
    return f"{OWNER}-stand-in" if stand_in else OWNER


# Open-weights bases this process's own code names as its configuration (a notebook's base_model,
# through emotune.resolve_base_model or the run's job record): served by a server running in this
# process, as --base-model is by `emotune serve`. A request never adds one.
CONFIGURED: set[str] = set()


def serve_base(name: str | None) -> None:
    """Serve the open-weights base ``name`` from any server in this process (nothing for a name
    that is not an open-weights folder, GGUF file or hub id, or one emotune knows already)."""
    if name and known(name) is None and trainers.is_open_weights(name):
        CONFIGURED.add(name)


def unregistered_hint(name) -> str:
    """What to do when a request names an open-weights folder, GGUF or hub id the server was not
    started with (told from the name's shape alone: a request never makes the server look at a
    path)."""
    if not isinstance(name, str) or not ("/" in name or name.lower().endswith(".gguf")):
        return ""
    return (
        " The local backend serves an open-weights folder, GGUF file or hub id only when it is "
        "started with it: `emotune serve --base-model NAME`, `LocalServer(..., "
        "base_models=[NAME])` or `emotune.connect('local', base_models=[NAME])`."
    )


class Models:
    """Model records (catalogue models, open-weights bases, fine-tunes) and their loaded chat
    models."""

    def __init__(self, store: Store, base_models=()):
        self.store = store
        # open-weights bases served by name (a folder, GGUF or hub id): only those the server was
        # started with, never a path an HTTP request names
        self.bases: set[str] = set()
        for name in base_models:
            self.register(name)
        self.zero_shot = trainers.ZeroShotModel()
        self._loaded: dict[str, trainers.ChatModel] = {}
        self._lock = threading.Lock()
        self._loading = (
            threading.Lock()
        )  # one load at a time: concurrent requests for a new model wait for it

    def register(self, name: str) -> None:
        """Serve the open-weights base ``name`` (named on the server's command line, or by the
        process that started it): a model folder, a GGUF file or a hub id."""
        if not trainers.is_open_weights(name):
            raise ConfigError(
                f"{name} is not an open-weights model (a folder with config.json, a GGUF file or "
                "a hub id): it cannot be served as a base model"
            )
        self.bases.add(name)

    def is_base(self, name: str) -> bool:
        """An open-weights base this server serves: registered, or one emotune knows by name."""
        return name in self.bases or name in CONFIGURED or known(name) is not None

    def resolve(self, name: str) -> str:
        """The dated snapshot behind an alias (``gpt-4o-mini`` -> ``gpt-4o-mini-2024-07-18``); the
        catalogue's names and ``stand-in`` are all answered by the classical stand-in."""
        return ALIASES.get(name, name)

    def list(self) -> list[dict]:
        base = [
            {"id": m, "object": "model", "created": 0, "owned_by": "system"}
            for m in (*CATALOGUE, *ALIASES)
        ]
        bases = [
            {"id": m, "object": "model", "created": 0, "owned_by": "open-weights"}
            for m in sorted(self.bases | CONFIGURED)
        ]
        return base + bases + [public(r) for r in self.store.all("models")]

    def record(self, name: str) -> dict:
        if name in CATALOGUE or name in ALIASES:
            return {"id": name, "object": "model", "created": 0, "owned_by": "system"}
        if isinstance(name, str) and self.is_base(name):
            return {"id": name, "object": "model", "created": 0, "owned_by": "open-weights"}
        record = self.store.get("models", name)  # None for any name that is not a stored id
        if record is None:
            raise ApiError(
                404,
                f"The model `{name}` does not exist or you do not have access to it."
                + unregistered_hint(name),
                param="model",
                code="model_not_found",
            )
        return public(record)

    def can_fine_tune(self, name: str) -> bool:
        base = self.resolve(name)
        return base in CATALOGUE or self.is_base(base)

    def chat_model(self, name: str) -> trainers.ChatModel:
        """The model that answers for ``name`` (loaded once, then kept)."""
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
        owner = self.record(name)["owned_by"]
        if owner == "system":
            return self.zero_shot
        with self._loading:
            with self._lock:
                if name in self._loaded:  # loaded by the request this one waited for
                    return self._loaded[name]
            loaded = self._load(name, owner)
            with self._lock:
                return self._loaded.setdefault(name, loaded)

    def _load(self, name: str, owner: str) -> trainers.ChatModel:
        if owner == "open-weights":
            try:
                return trainers.OpenWeightsModel.base_model(name)
            except ConfigError as exc:
                raise ApiError(404, str(exc), param="model", code="model_not_found") from None
        try:
            return trainers.load_model(self.store.weights_to_load(name))
        except (
            OSError,
            ValueError,
            KeyError,
        ) as exc:  # missing, damaged, or an old pickle (never loaded)
            raise ApiError(
                404,
                f"The weights of model '{name}' are missing or in a format this server does not "
                "read "
                f"({type(exc).__name__}); fine-tune it again.",
                param="model",
                code="model_not_found",
            ) from None

    @staticmethod
    def fingerprint(model) -> str:
        """``system_fingerprint``: says what really answered."""
        if isinstance(model, trainers.ZeroShotModel):
            return "emotune-local-zero-shot"
        if isinstance(model, trainers.OpenWeightsModel):
            return (
                "emotune-local-open-weights-lora"
                if model.fine_tuned
                else "emotune-local-open-weights-base"
            )
        return "emotune-local-fine-tuned"
