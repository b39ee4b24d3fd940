"""Every ``emotune run`` logged to MLflow: parameters, scores with their intervals, the verdict,
per-notebook timings, costs and artifacts (the manifest, the rendered tutorial and its plots).

The store is ``MLFLOW_TRACKING_URI`` where it is set (a shared tracking server, or any store MLflow
reads); otherwise a SQLite file beside the run: ``runs/mlflow.db`` for a run under ``runs/`` (sweeps
under ``runs/sweeps/`` included), else ``mlflow.db`` in the run directory's parent. Browse it with
``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``.

Tracking never stops a run: when MLflow is not installed or its store fails, the run says so in
one line and goes on. A run directory remembers its MLflow run (``tracking.json``), so running the
series again on it (``--from 05``, or a sweep resuming) updates the same MLflow run instead of
adding one.
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from .core.config import DEFAULT_RUNS_ROOT, TRACKING_ENV, env, exported, tracking_wanted
from .core.runs import Run, atomic_write_json

EXPERIMENT = "emotune"  # MLFLOW_EXPERIMENT_NAME overrides it
STORE_FILE = "mlflow.db"
MARKER = "tracking.json"  # in the run directory: which store and MLflow run hold this run
SWEEP_ENV = "EMOTUNE_SWEEP"  # set by `emotune sweep`: the sweep (and shard) a run belongs to
# The open-weights trainer's own MLflow logging (transformers' MLflowCallback, enabled in
# local/trainers/sft_worker.py) names its run after this variable; the parent run adopts it.
TRAINING_RUN_ENV = "EMOTUNE_MLFLOW_TRAINING_RUN"
INSTALL = "pip install 'emotune[tracking]'"
# A tracking server that does not answer must not hold a run for minutes (MLflow's defaults retry
# with backoff for several minutes); set these yourself to wait longer.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def store_uri(run_path: Path) -> str:
    """``MLFLOW_TRACKING_URI``, else the SQLite store of the runs folder ``run_path`` lives in."""
    if env("MLFLOW_TRACKING_URI"):
        return env("MLFLOW_TRACKING_URI")
    run_path, root = Path(run_path).resolve(), DEFAULT_RUNS_ROOT.resolve()
    folder = root if root in run_path.parents else run_path.parent
    return f"sqlite:///{folder / STORE_FILE}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a default SQLite store sit beside it (``mlartifacts/``), not in the working
    directory's ``mlruns/``; a server or another store decides for itself."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()


@contextmanager
def _store_lock(uri: str):
    """One process at a time on a SQLite store (``<store>.lock`` beside it): MLflow creates and
    migrates its tables on first use, and two processes doing so at once leave it broken (parallel
    sweep jobs, shards on one machine). A server store needs no lock; nor does one we cannot
    lock."""
    import fcntl

    handle = None
    if uri.startswith("sqlite:///"):
        try:
            path = Path(uri.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            handle = None  # MLflow then says what is wrong with the store
    try:
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


@contextmanager
def _quiet():
    """MLflow and its SQL layer are chatty (INFO lines, deprecation warnings): a run's console shows
    emotune's lines only."""
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # a tracking server makes MLflow print "View run ... at: <url>" for every call; emotune says
    # once where the run went
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:200]}"


@dataclass
class Tracker:
    """One emotune run's MLflow run; ``disabled`` once anything failed (said once, then silent)."""

    run: Run
    uri: str
    say: Callable[[str], None] = print
    run_id: str | None = None
    disabled: bool = False
    _exported: ExitStack = field(default_factory=ExitStack)

    def _off(self, what: str, exc: BaseException) -> None:
        if not self.disabled:
            self.say(f"tracking off: {what} ({_reason(exc)}); the run goes on untracked")
        self.disabled = True

    def begin(self, parameters: dict) -> Tracker:
        """Open (or resume) the MLflow run and let the open-weights trainer log into the store."""
        if not tracking_wanted():
            self.say(f"tracking off: {TRACKING_ENV}=off; the run goes on untracked")
            self.disabled = True
            return self
        self._exported.enter_context(exported({k: env(k) or v for k, v in HTTP_DEFAULTS.items()}))
        try:
            with _quiet():
                import mlflow
        except ImportError as exc:
            self._off(f"MLflow is not installed ({INSTALL})", exc)
            return self
        try:
            with _quiet(), _store_lock(self.uri):
                self.run_id = _retry(lambda: self._open(mlflow, parameters))
        except Exception as exc:  # any failure of the store: the run matters more than its log
            self._off(f"MLflow store {self.uri} failed", exc)
            return self
        for_the_trainer = {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_EXPERIMENT_NAME": _experiment(),
            TRAINING_RUN_ENV: self.training_run_name,
        }
        self._exported.enter_context(exported(for_the_trainer))
        return self

    @property
    def training_run_name(self) -> str:
        return f"{self.run.name} training ({(self.run_id or '')[:8]})"

    def _open(self, mlflow, parameters: dict) -> str:
        mlflow.set_tracking_uri(self.uri)
        name = _experiment()
        if mlflow.get_experiment_by_name(name) is None:
            try:
                mlflow.create_experiment(name, artifact_location=_artifact_root(self.uri))
            except Exception:  # another shard created it a moment ago
                if mlflow.get_experiment_by_name(name) is None:
                    raise
        experiment = mlflow.set_experiment(name)
        previous = _marker(self.run.path)
        run_id = previous.get("run_id") if previous.get("uri") == self.uri else None
        logged: dict = {}
        if run_id:
            try:
                found = mlflow.get_run(run_id)
                same = found.info.experiment_id == experiment.experiment_id
                run_id, logged = (run_id, found.data.params) if same else (None, {})
            except Exception:
                run_id = None
        tags = {"emotune.run_dir": str(self.run.path.resolve()), "emotune.run_id": self.run.id}
        if env(SWEEP_ENV):
            tags["emotune.sweep"] = env(SWEEP_ENV)
        params = loggable_parameters(parameters | {"run_name": self.run.name})
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if changed:  # MLflow params are write-once: a resumed run with new values says which
            tags["emotune.parameters_changed_on_resume"] = ", ".join(changed)
        with mlflow.start_run(run_id=run_id, run_name=None if run_id else self.run.name) as active:
            mlflow.set_tags(tags)
            mlflow.log_params({k: v for k, v in params.items() if k not in logged})
            run_id = active.info.run_id
        atomic_write_json(self.run.path / MARKER, {"uri": self.uri, "run_id": run_id})
        return run_id

    def _log(self, mlflow, wall_seconds: float | None, failed: str | None) -> None:
        with mlflow.start_run(run_id=self.run_id):
            log_manifest(mlflow, self.run.manifest(), wall_seconds)
            if failed:
                mlflow.set_tag("emotune.failed", failed[:5000])
            elif "emotune.failed" in mlflow.get_run(self.run_id).data.tags:  # resumed and done
                mlflow.MlflowClient().delete_tag(self.run_id, "emotune.failed")
            log_artifacts(mlflow, self.run.path)
            _adopt_training_runs(mlflow, self.run_id, self.training_run_name)
        if failed:
            mlflow.MlflowClient().set_terminated(self.run_id, "FAILED")

    def finish(self, wall_seconds: float | None = None, failed: str | None = None) -> None:
        """Log what the manifest holds now (scores, verdict, timings, costs) and the artifacts."""
        try:
            if self.disabled or not self.run_id:
                return
            with _quiet(), _store_lock(self.uri):
                import mlflow

                mlflow.set_tracking_uri(self.uri)
                _retry(lambda: self._log(mlflow, wall_seconds, failed))
        except Exception as exc:
            self._off(f"logging to MLflow store {self.uri} failed", exc)
            return
        finally:
            self._exported.close()  # the variables begin set go back to what they were
        self.say(f"tracked in MLflow: {self.uri} (run {self.run_id})")


def _retry(step: Callable[[], object], tries: int = 3, pause_s: float = 2.0):
    """A step again after a pause: shards sharing one SQLite store meet its write lock, or create
    its tables at the same moment; a lasting failure is raised (and said once by the caller)."""
    for attempt in range(tries):
        try:
            return step()
        except Exception as exc:
            if attempt == tries - 1 or isinstance(exc, FileNotFoundError | PermissionError):
                raise
            time.sleep(pause_s * (attempt + 1))
    return None


def _experiment() -> str:
    return env("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT


def _marker(run_path: Path) -> dict:
    try:
        data = json.loads((run_path / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def tracked_in(run_path: Path) -> str | None:
    """The MLflow run id this run directory was logged under in the current store, if any."""
    data = _marker(Path(run_path))
    return data.get("run_id") if data.get("uri") == store_uri(Path(run_path)) else None


def loggable_parameters(parameters: dict) -> dict[str, str]:
    """The series parameters as MLflow params (text, at most 6,000 characters; the machine's
    ``run_dir`` left out, it is a tag)."""
    return {k: str(v)[:6000] for k, v in parameters.items() if k != "run_dir"}


def _metric_name(*parts: str) -> str:
    """An MLflow metric name: letters, digits, ``_ - . / :`` and spaces; anything else becomes
    ``_``."""
    text = "/".join(parts)
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in text)


def manifest_metrics(manifest: dict, wall_seconds: float | None = None) -> dict[str, float]:
    """Scores with their 95% intervals (the run's own label level unprefixed, coarser levels under
    their name), the primary comparisons, timings and costs, from a run's manifest."""
    out: dict[str, float] = {}
    evaluation = manifest.get("evaluation") or {}
    verdict = evaluation.get("verdict") or {}
    rows = evaluation.get("scores") or []
    own = verdict.get("taxonomy") or (rows[0]["level"] if rows else "")
    for row in rows:
        prefix = () if row.get("level") == own else (str(row.get("level")),)
        name = _metric_name(*prefix, str(row["model"]), str(row["metric"]))
        for suffix, key in (("", "value"), ("/ci_low", "ci_low"), ("/ci_high", "ci_high")):
            if isinstance(row.get(key), int | float):
                out[name + suffix] = float(row[key])
    for row in verdict.get("comparisons") or []:
        if row.get("family") != "primary":
            continue
        name = _metric_name("difference", str(row["comparison"]), str(row.get("metric")))
        for suffix, key in (
            ("", "difference"),
            ("/ci_low", "95% CI low (unadjusted)"),
            ("/ci_high", "95% CI high (unadjusted)"),
            ("/p_holm", "p (Holm, within family)"),
        ):
            if isinstance(row.get(key), int | float):
                out[name + suffix] = float(row[key])
    for stage, entry in (manifest.get("stages") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("seconds"), int | float):
            out[_metric_name("seconds", stage)] = float(entry["seconds"])
    if wall_seconds is not None:
        out["seconds/series wall"] = float(wall_seconds)
    costs = dict(verdict.get("costs") or {})
    estimate = manifest.get("estimate") or {}
    costs |= {f"estimate {k}": estimate.get(k) for k in ("training_usd", "billed_tokens")}
    costs["trained_tokens"] = (manifest.get("job") or {}).get("trained_tokens")
    for key, value in costs.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[_metric_name("cost", key)] = float(value)
    return out


def manifest_tags(manifest: dict) -> dict[str, str]:
    """The verdict (its answer and sentence), the backend and the fine-tuned model, as MLflow
    tags."""
    verdict = (manifest.get("evaluation") or {}).get("verdict") or {}
    tags = {
        "verdict": verdict.get("answer"),
        "verdict.key": verdict.get("answer_key"),
        "verdict.sentence": verdict.get("sentence"),
        "verdict.compared": verdict.get("compared"),
        "backend": (manifest.get("backend") or {}).get("kind"),
        "base_model": (manifest.get("parameters") or {}).get("base_model"),
        "fine_tuned_model": (manifest.get("job") or {}).get("fine_tuned_model"),
        "estimate.pricing": (manifest.get("estimate") or {}).get("pricing"),
    }
    return {k: str(v)[:5000] for k, v in tags.items() if v not in (None, "")}


def log_manifest(mlflow, manifest: dict, wall_seconds: float | None = None) -> None:
    mlflow.log_metrics(manifest_metrics(manifest, wall_seconds), synchronous=True)
    mlflow.set_tags(manifest_tags(manifest))


def log_artifacts(mlflow, run_path: Path) -> None:
    """The manifest, the rendered tutorial (``html/``, its plots inline), the saved answers and, for
    an open-weights fine-tune trained by the run's local backend, its LoRA adapter."""
    if (run_path / "manifest.json").is_file():
        mlflow.log_artifact(str(run_path / "manifest.json"))
    for folder in ("html", "predictions"):
        if (run_path / folder).is_dir():
            mlflow.log_artifacts(str(run_path / folder), artifact_path=folder)
    adapter = trained_adapter(run_path)
    if adapter is not None:
        mlflow.log_artifacts(str(adapter), artifact_path="adapter")


def trained_adapter(run_path: Path) -> Path | None:
    """The fine-tune's adapter folder in the run's local backend (``local-backend/weights/<model>/
    adapter``, a PEFT folder), or None: no fine-tune, another backend, or anything there a link."""
    try:
        job = json.loads((run_path / "manifest.json").read_text("utf-8")).get("job") or {}
    except (OSError, ValueError):
        return None
    name = str(job.get("fine_tuned_model") or "")
    if not name or "/" in name or ".." in name:
        return None
    folder = run_path / "local-backend" / "weights" / name.replace(":", "~") / "adapter"
    if not folder.is_dir() or any(
        p.is_symlink() for p in (folder, folder.parent, *folder.rglob("*"))
    ):
        return None
    return folder


def _adopt_training_runs(mlflow, parent_id: str, name: str | None) -> None:
    """The trainer's own MLflow runs (loss per step) become children of this run in the UI."""
    if not name:
        return
    client = mlflow.MlflowClient()
    parent = client.get_run(parent_id)
    escaped = name.replace("'", "\\'")
    for child in client.search_runs(
        [parent.info.experiment_id], filter_string=f"attributes.run_name = '{escaped}'"
    ):
        client.set_tag(child.info.run_id, "mlflow.parentRunId", parent_id)


def begin_tracking(run: Run, parameters: dict, say: Callable[[str], None] = print) -> Tracker:
    """Start tracking ``run`` (never raises): call ``finish`` on the result when the series ends."""
    return Tracker(run, store_uri(run.path), say).begin(parameters)


def track_finished(run: Run, say: Callable[[str], None] = print) -> Tracker:
    """Log a run that finished untracked (a sweep resuming in another store, say)."""
    tracker = begin_tracking(run, run.get("parameters") or {}, say)
    tracker.finish()
    return tracker


@contextmanager
def track_series(run: Run, parameters: dict, say: Callable[[str], None] = print):
    """Track the series run inside the block; a failure in it is logged as a failed MLflow run (and
    re-raised). On success call ``finish(wall_seconds)`` on the tracker once the run has
    reported."""
    tracker, started = begin_tracking(run, parameters, say), time.perf_counter()
    try:
        yield tracker
    except BaseException as exc:
        tracker.finish(time.perf_counter() - started, failed=str(exc) or type(exc).__name__)
        raise
