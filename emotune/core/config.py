"""Configuration is read here and nowhere else: explicit argument, then environment, then default.

Environment variables:

- ``EMOTUNE_DATA_DIR``: a folder in the GoEmotions release format (train.tsv, dev.tsv, test.tsv);
  when unset, data comes from the Hugging Face hub.
- ``EMOTUNE_RUN_DIR``: the run directory notebooks use when their ``run_dir`` parameter is empty.
- ``EMOTUNE_BACKEND``: ``auto`` (default), ``openai``, ``azure``, ``compatible``, ``local`` or a
  provider a package of yours registers (entry-point group ``emotune.providers``).
- ``EMOTUNE_LOCAL_LATENCY_MS``, ``EMOTUNE_LOCAL_FAIL_429``, ``EMOTUNE_LOCAL_FAIL_500``: fault
  injection for the local backend (off by default).
- ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``: read only to decide and build the client; never stored.
- ``TIKTOKEN_CACHE_DIR``: where tiktoken finds its encodings offline (read by tiktoken itself).
- ``EMOTUNE_REPLAY``: set (``make notebooks``, ``make refresh-notebooks``) when the notebooks replay
  a recorded run: every upload, job, batch and answer must come from the recording, never be made
  anew.
- ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``: where ``emotune run`` tracks
  (``tracking.py``; default a SQLite store under ``runs/``). ``EMOTUNE_SWEEP`` and
  ``EMOTUNE_SHARED_DIR`` are set by ``emotune sweep`` for its runs (their sweep, and the folder of
  what they share).
  ``EMOTUNE_TRACKING=off`` turns tracking off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_RUNS_ROOT = Path("runs")


def env(name: str, default: str | None = None) -> str | None:
    """Return an environment variable, treating an empty value as unset."""
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: the argument, else ``EMOTUNE_DATA_DIR``, else None (use the hub)."""
    value = explicit if explicit not in (None, "") else env("EMOTUNE_DATA_DIR")
    return Path(value).expanduser() if value else None


def run_dir(explicit: str | os.PathLike | None = None, name: str = "tutorial") -> Path:
    """The run directory: the argument, else ``EMOTUNE_RUN_DIR``, else ``runs/<name>``."""
    value = explicit if explicit not in (None, "") else env("EMOTUNE_RUN_DIR")
    return Path(value).expanduser() if value else DEFAULT_RUNS_ROOT / name


def models_dir() -> Path:
    """Where open-weights models emotune fetches or converts are kept: ``EMOTUNE_MODELS_DIR``, else
    ``~/.cache/emotune/models``."""
    return Path(
        env("EMOTUNE_MODELS_DIR") or Path.home() / ".cache" / "emotune" / "models"
    ).expanduser()


def backend_choice(explicit: str | None = None) -> str:
    """The backend asked for: the argument, else ``EMOTUNE_BACKEND``, else ``auto`` (names are
    checked by
    :func:`emotune.providers.connect` against the provider catalogue)."""
    value = explicit if explicit not in (None, "", "auto") else env("EMOTUNE_BACKEND", "auto")
    return str(value)


def openai_key() -> str | None:
    """The OpenAI key from the environment; emotune never stores or prints it."""
    return env("OPENAI_API_KEY")


def openai_base_url() -> str | None:
    """``OPENAI_BASE_URL``: any OpenAI-compatible server."""
    return env("OPENAI_BASE_URL")


def fault_settings() -> dict[str, float]:
    """Fault injection for the local backend, from the environment (all zero by default)."""
    return {
        "latency_ms": float(env("EMOTUNE_LOCAL_LATENCY_MS", "0")),
        "fail_429": float(env("EMOTUNE_LOCAL_FAIL_429", "0")),
        "fail_500": float(env("EMOTUNE_LOCAL_FAIL_500", "0")),
    }


TRACKING_ENV = "EMOTUNE_TRACKING"


def tracking_wanted() -> bool:
    """Whether ``emotune run`` tracks in MLflow: yes unless ``EMOTUNE_TRACKING`` is off, 0, false
    or no."""
    return (env(TRACKING_ENV) or "on").strip().lower() not in ("off", "0", "false", "no")


REPLAY_ENV = "EMOTUNE_REPLAY"


def replaying() -> bool:
    """Whether the notebooks replay a recorded run (``EMOTUNE_REPLAY``)."""
    return (env(REPLAY_ENV) or "").strip().lower() in ("1", "true", "yes")


def refuse_in_replay(what: str) -> None:
    """Raise when a replay would have to make ``what`` anew: the recording does not hold it."""
    if replaying():
        from .errors import ConfigError

        raise ConfigError(
            f"replaying a recorded run ({REPLAY_ENV}=1), but {what} is not in the recording: "
            "the notebooks ask for something the recorded run did not; re-record them with "
            "`make refresh-notebooks`"
        )


# set while ``emotune run`` executes notebooks: kernels started inside inherit it
HEADLESS_ENV = "EMOTUNE_HEADLESS"
# where a headless kernel's progress bars are copied for the console
PROGRESS_ENV = "EMOTUNE_PROGRESS_FILE"


def headless() -> bool:
    """Whether this kernel was started by a headless run (``emotune run``, ``make
    refresh-notebooks``)."""
    return bool(env(HEADLESS_ENV))


def progress_file() -> Path | None:
    """The file a headless kernel copies its progress bars to (``emotune run`` shows it on the
    console)."""
    value = env(PROGRESS_ENV)
    return Path(value) if value else None


def progress_disabled() -> bool:
    """``TQDM_DISABLE=1`` (CI and the committed notebooks) turns progress bars off."""
    return (env("TQDM_DISABLE") or "").strip().lower() in ("1", "true", "yes")


@contextmanager
def replay_kernels(run_dir: Path) -> Iterator[None]:
    """Within the block, kernels started for notebooks replay the recording copied into
    ``run_dir``, as nbval does (the Makefile's REPLAY): no progress bars, one hash seed."""
    settings = {
        REPLAY_ENV: "1",
        "EMOTUNE_RUN_DIR": str(Path(run_dir).resolve()),
        "TQDM_DISABLE": "1",
        "PYTHONHASHSEED": "0",
    }
    with _environment(settings):
        yield


@contextmanager
def headless_kernels(progress_to: Path | None = None) -> Iterator[None]:
    """Within the block, kernels started for notebooks know they run headless (and where to copy
    progress)."""
    settings = {HEADLESS_ENV: "1", PROGRESS_ENV: str(progress_to) if progress_to else None}
    with _environment(settings):
        yield


@contextmanager
def _environment(settings: dict[str, str | None]) -> Iterator[None]:
    """Set ``settings`` (a None value is left alone) for the block, then put everything back."""
    before = {name: os.environ.get(name) for name in settings}
    for name, value in settings.items():
        if value is not None:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def exported(settings: dict[str, str | None]) -> Iterator[None]:
    """Within the block, this process and those it starts see ``settings`` (a tracked run's MLflow
    store for the trainer, a sweep's name); everything is put back after."""
    with _environment(settings):
        yield


def child_environment(settings: dict[str, str]) -> dict[str, str]:
    """The environment for a process started with ``settings`` added (a sweep's runs)."""
    return dict(os.environ) | settings


def azure_settings() -> dict[str, str | None]:
    """Azure OpenAI's settings, under the names the official client reads:
    ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY`` (never stored or printed),
    ``OPENAI_API_VERSION``, and emotune's ``AZURE_OPENAI_DEPLOYMENTS`` (``model=deployment,...``:
    where a deployment is not named after its model)."""
    return {
        "endpoint": env("AZURE_OPENAI_ENDPOINT"),
        "api_key": env("AZURE_OPENAI_API_KEY"),
        "api_version": env("OPENAI_API_VERSION"),
        "deployments": env("AZURE_OPENAI_DEPLOYMENTS"),
    }
