"""``emotune sweep``: many parameter sets, each its own run (``emotune run`` in its own process and
folder under one sweep folder), sharing what is identical instead of recomputing or buying it again.

- **Samples**: runs whose notebook-01 parameters are equal (they differ in epochs, prompt, learning
  rate...) share the first one's samples, splits and draws; the others start at notebook 02.
- **Answers**: every run's prediction cache is merged into ``shared/cache.jsonl`` when it ends and
  seeded from it before it starts, so the base model is asked about a test comment once per sweep
  (and, with the free baseline's draws inside the shared samples, nothing is recomputed there).
- **Resuming**: a finished run is skipped (and logged to MLflow if the store lacks it); an
  interrupted one resumes where ``emotune run`` resumes (uploads, jobs and answers are found again).
- **Budget**: on a backend that bills dollars (or with ``--budget``), every run's notebooks 01-03
  run first, and the sum of their estimates is checked before the first paid request.
- ``--jobs N`` runs independent runs side by side; ``--shard i/n`` takes every n-th run, so machines
  sharing one MLflow store (``MLFLOW_TRACKING_URI``) split a sweep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from .core.config import child_environment, exported
from .core.errors import ConfigError
from .core.progress import following
from .core.runs import Run, atomic_write_json
from .stages.reuse import SHARED_ENV
from .summary import shown
from .sweep_notebook import render_for_sweep
from .sweep_plan import CACHE, SweepPlan, SweepRun, locked, merge_cache, share_samples
from .tracking import SWEEP_ENV, track_finished, tracked_in

SHARED = "shared"
ECHO_S = 10.0  # how often a running run's newest console line is shown


@dataclass
class Outcome:
    """What one run of the sweep did: ran, skipped (finished before) or failed, and in how long."""

    run: SweepRun
    status: str  # "ran", "skipped", "failed"
    seconds: float = 0.0
    log: Path | None = None
    shared_samples_from: str | None = None


def finished(path: Path) -> bool:
    """A run whose notebook 05 finished and wrote its verdict (and whose series rendered)."""
    run = Run(path)
    if not run.manifest_path.is_file():
        return False
    done = run.get("stages", "05_evaluate", "status") == "done"
    return done and bool(run.get("evaluation", "verdict")) and (path / "html/index.html").is_file()


def _stage_done(path: Path, stage: str) -> bool:
    return Run(path).manifest_path.is_file() and Run(path).get("stages", stage, "status") == "done"


STAGES = ("01_explore", "02_build_jsonl", "03_validate_cost", "04_launch_job", "05_evaluate")


def resume_point(path: Path) -> str | None:
    """The first notebook not yet done (``"02"``...), or None to start from the beginning."""
    for stage in STAGES:
        if not _stage_done(path, stage):
            return None if stage == STAGES[0] else stage[:2]
    return STAGES[-1][:2]  # every notebook done, the rendering not: notebook 05 again renders it


class Sweep:
    """Executes a plan's runs (or one shard of them)."""

    def __init__(
        self, plan: SweepPlan, *, jobs: int = 1, shard: tuple[int, int] = (0, 1), say=None
    ):
        self.plan, self.jobs, self.say = plan, max(1, jobs), say or _say
        self.index, self.count = shard
        self.runs = plan.shard(*shard)
        self.shared = plan.folder / SHARED
        self.label = plan.name + (f" shard {self.index}/{self.count}" if self.count > 1 else "")
        self._children: set[subprocess.Popen] = set()

    def path(self, run: SweepRun) -> Path:
        return self.plan.folder / run.name

    def write_plan(self) -> None:
        """``sweep.json`` names every run and its parameters; a second sweep with the same folder
        and other parameter sets is refused rather than mixed in."""
        self.plan.folder.mkdir(parents=True, exist_ok=True)
        path = self.plan.folder / "sweep.json"
        with locked(self.shared):
            if path.is_file():
                before = json.loads(path.read_text("utf-8"))
                if before.get("runs") != json.loads(json.dumps(self.plan.to_dict()["runs"])):
                    raise ConfigError(
                        f"{self.plan.folder} holds a sweep with other parameter sets; "
                        "give this one another --name or --sweep-dir"
                    )
            atomic_write_json(path, self.plan.to_dict())
        for run in self.runs:
            params = self.plan.folder / ".params" / f"{run.name}.yaml"
            params.parent.mkdir(parents=True, exist_ok=True)
            params.write_text(yaml.safe_dump(run.parameters, sort_keys=True), encoding="utf-8")

    def _leaders(self) -> dict[str, list[SweepRun]]:
        """The earlier runs each run waits for: the first with its samples, and the first that asks
        the base model the same questions (their answers are then read from the shared cache)."""
        first_sample, first_answers, waits = {}, {}, {}
        for run in self.runs:
            lead_s = first_sample.setdefault(run.sample_key, run)
            lead_a = first_answers.setdefault(run.answers_key, run)
            waits[run.name] = [r for r in {lead_s.name: lead_s, lead_a.name: lead_a}.values()]
            waits[run.name] = [r for r in waits[run.name] if r is not run]
        return waits

    def _sample_source(self, run: SweepRun) -> Path | None:
        for other in self.plan.runs:
            same = other is not run and other.sample_key == run.sample_key
            if same and _stage_done(self.path(other), "01_explore"):
                return self.path(other)
        return None

    def execute(
        self, run: SweepRun, *, start: str | None = None, stop: str | None = None
    ) -> Outcome:
        """One ``emotune run`` of ``run`` in its own process, its answers shared before and
        after."""
        path, logs = self.path(run), self.plan.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        shared_from = None
        if start is None and not _stage_done(path, "01_explore"):
            source = self._sample_source(run)
            if source is not None:
                share_samples(source, path)
                shared_from = source.name
        if start is None:
            start = resume_point(path)
        with locked(self.shared):
            merge_cache(self.shared / "cache.jsonl", path / CACHE)
        log = logs / f"{run.name}{'.' + stop if stop else ''}.log"
        cmd = [sys.executable, "-m", "emotune.cli", "run", "--run-dir", str(path)]
        cmd += ["--params", str(self.plan.folder / ".params" / f"{run.name}.yaml")]
        cmd += (["--from", start] if start else []) + (["--to", stop] if stop else [])
        env = child_environment({SWEEP_ENV: self.label, SHARED_ENV: str(self.shared)})
        t0 = time.perf_counter()
        with (
            open(log, "w", encoding="utf-8") as out,
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env) as child,
            self._echoed(log, run.name),
        ):
            self._children.add(child)
            code = child.wait()
            self._children.discard(child)
        with locked(self.shared):
            merge_cache(path / CACHE, self.shared / "cache.jsonl")
        status = "ran" if code == 0 else "failed"
        return Outcome(run, status, time.perf_counter() - t0, log, shared_from)

    @contextmanager
    def _echoed(self, log: Path, name: str):
        """One run at a time: its console's newest line (training steps, answers) shown here every
        few seconds while it runs (all of it is in its log). Runs side by side: their start and end
        lines only."""
        if self.jobs > 1:
            yield
            return
        with following(log, lambda line: self.say(f"    {name}: {line}"), every_s=ECHO_S):
            yield

    def _pass(self, todo: list[SweepRun], stop: str | None = None) -> list[Outcome]:
        """Run ``todo`` at most ``jobs`` at a time, each after the runs it waits for."""
        waits, done, outcomes = self._leaders(), set(), []
        pending = list(todo)
        names = {r.name for r in todo}
        with ThreadPoolExecutor(self.jobs) as pool, self._interruptible():
            running: dict[Future, SweepRun] = {}
            while pending or running:
                for run in list(pending):
                    ready = all(w.name in done or w.name not in names for w in waits[run.name])
                    if ready and len(running) < self.jobs:
                        pending.remove(run)
                        self.say(f"{run.name}: running{' to notebook ' + stop if stop else ''} ...")
                        running[pool.submit(self.execute, run, stop=stop)] = run
                if not running:  # cannot happen (runs wait only for earlier ones); never spin
                    raise ConfigError(f"sweep runs wait on each other: {[r.name for r in pending]}")
                finished_now, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    run = running.pop(future)
                    done.add(run.name)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # a folder that cannot be written, say: this run only
                        self.say(f"{run.name}: could not start ({type(exc).__name__}: {exc})")
                        outcome = Outcome(run, "failed")
                    outcomes.append(outcome)
                    self.say(_line(outcome, self.path(run)))
        return outcomes

    @contextmanager
    def _interruptible(self):
        """Ctrl-C (or SIGINT to the sweep alone) interrupts the runs in flight too: each stops as
        ``emotune run`` stops on Ctrl-C, and the same command resumes them later."""
        try:
            yield
        except KeyboardInterrupt:
            for child in list(self._children):
                child.send_signal(signal.SIGINT)
            self.say(
                f"interrupted: {len(self._children)} run(s) in flight stopped; run again to resume"
            )
            raise

    def run(self, budget: float | None = None, bills_dollars: bool = False) -> list[Outcome]:
        """The sweep (or this shard of it): skips finished runs, checks the budget first where
        answers cost dollars, then runs the rest."""
        self.write_plan()
        outcomes, todo = [], []
        for run in self.runs:
            if finished(self.path(run)):
                outcomes.append(Outcome(run, "skipped"))
                if tracked_in(self.path(run)) is None:
                    with exported({SWEEP_ENV: self.label}):
                        track_finished(Run(self.path(run)), say=lambda line: None)
            else:
                todo.append(run)
        if outcomes:
            self.say(f"{len(outcomes)} run(s) finished before: skipped")
        if todo and (bills_dollars or budget is not None):
            outcomes += self._budgeted(todo, budget)
            todo = [r for r in todo if _stage_done(self.path(r), "03_validate_cost")]
        return outcomes + self._pass(todo)

    def _budgeted(self, todo: list[SweepRun], budget: float | None) -> list[Outcome]:
        """Notebooks 01-03 of every run (free: no request is paid before 04), then the sweep's sum
        of estimates against ``budget``."""
        first = [r for r in todo if not _stage_done(self.path(r), "03_validate_cost")]
        outcomes = [o for o in self._pass(first, stop="03") if o.status == "failed"]
        total, unpriced = 0.0, []
        for run in todo:
            est = Run(self.path(run)).get("estimate") or {}
            usd = est.get("training_usd")
            online = sum(
                r.get("USD") or 0 for r in est.get("evaluation") or [] if r.get("path") == "online"
            )
            if usd is None:
                unpriced.append(run.name)
            total += (usd or 0.0) + float(online)
        priced = len(todo) - len(unpriced)
        self.say(f"sweep estimate: ${total:,.2f} for {priced} run(s) priced in dollars")
        if budget is None:
            raise ConfigError("a sweep on a backend that bills dollars needs --budget USD")
        if total > budget:
            raise ConfigError(
                f"the sweep's estimate ${total:,.2f} exceeds --budget ${budget:,.2f}: nothing was "
                "paid (notebooks 01-03 only); lower the sizes or raise the budget"
            )
        self.say(f"within the sweep's budget of ${budget:,.2f}")
        return outcomes


def _line(outcome: Outcome, path: Path) -> str:
    run = outcome.run.name
    if outcome.status == "failed":
        return f"{run}: FAILED after {outcome.seconds / 60:.1f} min (log: {outcome.log})"
    verdict = Run(path).get("evaluation", "verdict", "answer") or "notebooks 01-03 done"
    shared = f"; samples from {outcome.shared_samples_from}" if outcome.shared_samples_from else ""
    return f"{run}: done in {outcome.seconds / 60:.1f} min ({verdict}{shared})"


def _say(text: object) -> None:
    print(shown(str(text)))


def cmd_sweep(args) -> int:
    from .providers import _choose, _provider_class
    from .sweep_plan import build_plan, from_assignments, from_file, parse_shard

    fixed, grid, explicit = from_file(args.params) if args.params else ({}, {}, [])
    more_fixed, more_grid = from_assignments(args.p or [])
    plan = build_plan(
        fixed | more_fixed, grid | more_grid, explicit, name=args.name, folder=args.sweep_dir
    )
    sweep = Sweep(plan, jobs=args.jobs, shard=parse_shard(args.shard))
    varying = ", ".join(plan.varying) or "nothing"
    _say(f"sweep {sweep.label}: {len(sweep.runs)} of {len(plan.runs)} run(s) in {plan.folder}")
    _say(f"varying: {varying}; logs in {plan.folder / 'logs'}")
    bills = False
    for backend in sorted({str(r.value("backend")) for r in sweep.runs}):
        name = _choose(backend)
        if _provider_class(name).bills_dollars:
            bills = True
            _say(
                f"backend {name} bills in dollars: every run's notebooks 01-03 first, then the "
                "sum of their estimates against --budget, before any paid request"
            )
        else:
            _say(
                f"backend {name}: nothing is billed in dollars"
                + (
                    "; --budget checks what the estimates would cost"
                    if args.budget is not None
                    else ""
                )
            )
    outcomes = sweep.run(budget=args.budget, bills_dollars=bills)
    failed = [o for o in outcomes if o.status == "failed"]
    ran = sum(o.status == "ran" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    _say(
        f"sweep {sweep.label}: {ran} ran, {skipped} skipped (finished before), {len(failed)} failed"
    )
    for o in failed:
        _say(f"  failed: {o.run.name} (log: {o.log})")
    _say(f"compare: emotune compare {plan.folder}")
    render_for_sweep(plan, SHARED, changed=ran > 0, say=_say)
    return 1 if failed else 0


def _jobs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ValueError(text)
    return int(text)


def _usd(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(text)
    return value


def add_parser(sub) -> None:
    sw = sub.add_parser(
        "sweep", help="many parameter sets, each its own run, sharing what is equal"
    )
    sw.add_argument("-p", action="append", metavar="NAME=V1,V2", help="a parameter or a grid axis")
    sw.add_argument("--params", help="YAML sweep file (parameters:, grid:, runs:)")
    sw.add_argument("--name", help="the sweep's name (default: sweep-<hash of its parameter sets>)")
    sw.add_argument("--sweep-dir", help="its folder (default runs/sweeps/<name>)")
    sw.add_argument(
        "--jobs", type=_jobs, default=1, help="runs side by side (1 for SmolLM2 on 2 cores)"
    )
    sw.add_argument("--shard", metavar="I/N", help="every N-th run from the I-th (0-based)")
    sw.add_argument(
        "--budget", type=_usd, help="USD for the whole sweep (sum of the runs' estimates)"
    )
    sw.set_defaults(func=cmd_sweep)
