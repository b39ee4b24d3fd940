"""Notebook 05's optional passes: the base model asked once more on the training prompt (what the
prompt alone buys), and the Batch API check (the same requests through ``/v1/batches``).

Each is a parameter, ``base_on_training_prompt`` and ``batch_check``: ``true``, ``false`` or
``auto``. ``auto`` runs a pass where answers are cheap (the classical stand-in, OpenAI, an
OpenAI-compatible server) and skips it for open weights on this machine, where each pass over the
test comments costs minutes of compute and the comparison (base zero-shot, fine-tune, free baseline)
does not need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.errors import ConfigError, shown_value
from ..core.prompts import PromptSpec
from ..core.roles import Role
from .batch import classify_batch
from .predict import PredictionCache

SWITCHES = ("base_on_training_prompt", "batch_check")
BATCH_CHECK_FILE = "predictions/batch-check.jsonl"
_WORDS = {
    "auto": "auto",
    "true": True,
    "yes": True,
    "1": True,
    "false": False,
    "no": False,
    "0": False,
}


def parse_switch(name: str, value: object) -> bool | str:
    """``True``, ``False`` or ``"auto"`` from a bool or the words true/yes/1, false/no/0, auto."""
    if isinstance(value, bool):
        return value
    word = _WORDS.get(str(value).strip().lower()) if isinstance(value, str | int) else None
    if word is None:
        raise ConfigError(f"parameter {name}: {shown_value(value)} is not true, false or auto")
    return word


@dataclass(frozen=True)
class Passes:
    """Which optional passes notebook 05 runs, and why."""

    base_on_training_prompt: bool
    batch_check: bool
    why: str

    def __str__(self) -> str:
        said = {True: "runs", False: "skipped"}
        return (
            f"base model on the training prompt: {said[self.base_on_training_prompt]}; "
            f"Batch API check: {said[self.batch_check]} ({self.why})"
        )


def evaluation_passes(
    conn, base_model: str, *, base_on_training_prompt="auto", batch_check="auto"
) -> Passes:
    """The optional passes to run for ``base_model`` on ``conn`` (see the module docstring)."""
    cheap = conn.answers_are_cheap(base_model)
    chosen = {}
    for name, value in zip(SWITCHES, (base_on_training_prompt, batch_check), strict=True):
        switch = parse_switch(name, value)
        chosen[name] = cheap if switch == "auto" else switch
    why = (
        "auto: answers are cheap here"
        if cheap
        else "auto: each pass costs minutes of compute on open weights; "
        "-p base_on_training_prompt=true / -p batch_check=true ask for them"
    )
    if not {base_on_training_prompt, batch_check} & {"auto"}:
        why = "as asked"
    return Passes(chosen["base_on_training_prompt"], chosen["batch_check"], why)


def evaluation_models(base_model: str, tuned_model: str, passes: Passes) -> dict[str, str]:
    """The model behind each role notebook 05 asks: base and fine-tune, and the base on the
    training prompt when that pass runs."""
    models = {Role.BASE: base_model, Role.FINE_TUNED: tuned_model}
    if passes.base_on_training_prompt:
        models[Role.BASE_ON_TRAINING_PROMPT] = base_model
    return models


def batch_agreement(
    conn,
    run,
    model: str,
    frame: pd.DataFrame,
    online: list[list[str]],
    *,
    spec: PromptSpec,
    seed: int,
    wanted: bool = True,
) -> str:
    """Ask ``model`` again through the Batch API (where the provider has one and the pass is
    wanted) and say how often it agrees with the online answers."""
    if not wanted:
        return "Batch API check skipped (batch_check): no batch request sent"
    if not conn.batches:
        return (
            f"the {conn.kind} provider has no Batch API: skipped "
            "(online answers only, no batch request sent)"
        )
    cache = PredictionCache(run.file(BATCH_CHECK_FILE))
    via_batch = classify_batch(
        conn, run, model, frame, key=Role.FINE_TUNED, cache=cache, spec=spec, seed=seed
    )
    same = sum(a == b for a, b in zip(via_batch.labels(), online, strict=True))
    return f"batch and online answers agree on {same} of {len(frame)} comments"
