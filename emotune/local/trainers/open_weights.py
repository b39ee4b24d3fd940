"""Open-weights fine-tuning behind the local backend: LoRA on a causal language model, served as a chat model.

Chosen when a job's ``model`` is a local folder holding a Hugging Face model or a hub id (``org/name``,
e.g. ``Qwen/Qwen2.5-0.5B-Instruct``). Supervised fine-tuning on the uploaded chat JSONL with the model's
own chat template, loss on the assistant's tokens only, LoRA adapters (PEFT), per-step training and
validation loss, an adapter checkpoint per epoch. Runs on a GPU when there is one, else on the CPU.

Needs the optional extra: ``pip install 'emotune[open-weights]'`` (torch, transformers, peft). Weights
come from the Hugging Face cache or a local path; emotune never waits on a download it cannot make.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ...core.errors import ConfigError
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


def _load(model: str):
    """Tokenizer and model from a local folder or the Hugging Face cache, never a hanging download."""
    _require_extra()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = weights.local_folder(model)
    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except OSError:
        raise ConfigError(f"no weights for {model!r} in the Hugging Face cache or at that path; download them where "
                          f"you have a network (huggingface-cli download {model}) or pass a local folder") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ConfigError(f"{model!r} has no chat template; open-weights fine-tuning needs an instruct/chat model")
    return tok, lm


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def encode_example(tok, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """Token ids and labels for one example: the loss covers the final assistant message only."""
    prompt = tok.apply_chat_template(list(messages[:-1]), add_generation_prompt=True, tokenize=True)
    full = tok.apply_chat_template(list(messages), tokenize=True)
    prompt, full = _ids(prompt), _ids(full)
    if full[: len(prompt)] != prompt:
        raise ConfigError("the chat template renders the prompt differently inside the full conversation")
    return full, [-100] * len(prompt) + full[len(prompt):]


def _ids(encoded) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return list(encoded)


def _batches(examples, batch_size: int, pad_id: int, order):
    import torch

    for start in range(0, len(order), batch_size):
        rows = [examples[i] for i in order[start:start + batch_size]]
        width = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), width), pad_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (x, y) in enumerate(rows):
            ids[r, : len(x)], labels[r, : len(y)], mask[r, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        yield ids, labels, mask


def _loss_and_accuracy(model, ids, labels, mask):
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
    keep = target != -100
    accuracy = (logits.argmax(-1)[keep] == target[keep]).float().mean()
    return loss, float(accuracy)


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
    """LoRA supervised fine-tuning of an open-weights chat model."""

    name = "open-weights"

    def supports(self, model: str) -> bool:
        return is_open_weights(model)

    def train(self, train: Dataset, valid: Dataset | None, hp: dict, seed: int,
              on_step: Callable[[StepMetrics], None], base: str = "") -> TrainResult:
        import torch
        from peft import LoraConfig, get_peft_model

        tok, lm = _load(base)
        torch.manual_seed(seed)
        device = _device()
        model = get_peft_model(lm, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                                              target_modules="all-linear", task_type="CAUSAL_LM")).to(device)
        examples = [encode_example(tok, m) for m in train.messages]
        held_out = [encode_example(tok, m) for m in (valid.messages[:MAX_VALID_EXAMPLES] if valid else [])]
        epochs, batch = int(hp["n_epochs"]), int(hp["batch_size"])
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=BASE_LEARNING_RATE * float(hp["learning_rate_multiplier"]))
        steps_per_epoch = math.ceil(len(examples) / batch)
        total = epochs * steps_per_epoch
        generator = torch.Generator().manual_seed(seed)
        result = TrainResult(model=None, trained_tokens=epochs * sum(len(ids) for ids, _ in examples))
        step = 0
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(examples), generator=generator).tolist()
            for ids, labels, mask in _batches(examples, batch, tok.pad_token_id, order):
                loss, acc = _loss_and_accuracy(model, ids.to(device), labels.to(device), mask.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                metrics = StepMetrics(step, total, epoch, loss.item(), acc)
                if held_out and (step % max(1, total // 10) == 0 or step % steps_per_epoch == 0):
                    metrics.valid_loss, metrics.valid_accuracy = self._evaluate(model, held_out, batch, tok.pad_token_id, device)
                result.steps.append(metrics)
                on_step(metrics)
            adapter = Path(tempfile.mkdtemp(prefix=f"emotune-lora-epoch{epoch}-"))
            model.save_pretrained(str(adapter))
            result.checkpoints.append((step, _Snapshot(base, adapter), result.steps[-1]))
        result.model = result.checkpoints[-1][1]
        return result

    @staticmethod
    def _evaluate(model, examples, batch, pad_id, device):
        import torch

        model.eval()
        losses, accs = [], []
        with torch.no_grad():
            for ids, labels, mask in _batches(examples, batch, pad_id, list(range(len(examples)))):
                loss, acc = _loss_and_accuracy(model, ids.to(device), labels.to(device), mask.to(device))
                losses.append(float(loss))
                accs.append(acc)
        model.train()
        return sum(losses) / len(losses), sum(accs) / len(accs)


class _Snapshot:
    """The LoRA adapter saved at one epoch's end; published by copying it into the backend's weights."""

    def __init__(self, base: str, adapter: Path):
        self.base, self.adapter = base, adapter

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.adapter, folder / "adapter", dirs_exist_ok=True)
        (folder / MARKER).write_text(json.dumps({"base": self.base, "adapter": True}))
