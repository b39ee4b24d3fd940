"""Serving open-weights chat models: one copy of a base model's weights, its LoRA adapters beside
it.

A base model is loaded once per process (:class:`SharedBase`); the base itself and every fine-tune
on it are :class:`OpenWeightsModel` views that name an adapter (or none). Adapters are attached with
PEFT (``load_adapter``) and selected per ``generate`` call under the base's lock, so serving the
base and two fine-tunes costs one set of base weights plus a few MB per adapter. Greedy requests are
batched (:mod:`.batching`), and the beginning their prompts share (a system prompt) is computed once
per adapter and kept as a key/value cache: a batch then computes only each prompt's own tokens. A
``response_format`` is enforced by constrained decoding (:mod:`.grammar`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from ..ratelimit import (
    DEFAULT_COMPLETION_TOKENS as DEFAULT_LIMIT,
)  # new tokens when a request sets none
from . import precision, weights
from .batching import Batcher
from .grammar import Grammars, logits_processor
from .open_weights import MARKER, device, load, require_extra


def _ids(encoded) -> list[int]:
    if isinstance(encoded, dict) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return list(encoded)


# transformers 5 renames generate's and forward's past_key_values to cache, and PEFT still calls the
# old is_gradient_checkpointing; both names work, and the warnings would only clutter a notebook's
# output.
warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

# a batch's common prompt beginning shorter than this is simply computed per row
MIN_SHARED_PREFIX = 16
PREFIX_CACHES = 4  # prefix caches kept per base (per adapter and prefix), newest first


def _common_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens every prompt shares, leaving each at least one token of its own."""
    n, first = 0, prompts[0]
    limit = min(len(p) for p in prompts) - 1
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


class SharedBase:
    """A base model's tokenizer and weights, loaded once, with the adapters attached to it."""

    _loaded: weakref.WeakValueDictionary[str, SharedBase] = weakref.WeakValueDictionary()
    _registry_lock = threading.Lock()

    def __init__(self, name: str):
        self.name = name
        self.tok, lm = load(name)
        self.dtype, self.dtype_reason = precision.chosen("serving")
        self.lm = lm.to(device(), dtype=precision.torch_dtype(self.dtype)).eval()
        # generate() hands the output layer a strided slice of the hidden states; in bf16 torch then
        # copies the whole vocabulary x hidden matrix on every call, so make that input contiguous
        # first
        lm.get_output_embeddings().register_forward_pre_hook(
            lambda _m, args: (args[0].contiguous(), *args[1:])
        )
        self.lock = (
            threading.Lock()
        )  # one forward pass at a time: the active adapter is the model's state
        self.adapters: set[str] = set()
        self._prefixes: OrderedDict = (
            OrderedDict()
        )  # (adapter, prefix tokens) -> its key/value cache
        self.grammars = Grammars(self.tok, lm.config.vocab_size)
        self.vocab_size = lm.config.vocab_size

    @classmethod
    def get(cls, name: str) -> SharedBase:
        """The loaded base for ``name``, loading it only if no served model holds it (two names
        of one model,
        such as ``smollm2-135m-instruct`` and its hub id, share one copy)."""
        folder = f"{weights.local_folder(name)}@{precision.chosen('serving')[0]}"
        with cls._registry_lock:
            base = cls._loaded.get(folder)
            if base is None:
                base = cls._loaded[folder] = cls(name)
            return base

    def attach(self, adapter: Path) -> str:
        """Attach a saved PEFT adapter (once per folder) and return the name it is selected by."""
        from peft import PeftModel

        key = (
            "adapter_" + hashlib.sha256(str(adapter.resolve()).encode()).hexdigest()[:16]
        )  # no dots: a module name
        with self.lock:
            if (
                not self.adapters
            ):  # the first adapter wraps the base in place; the base is that model, adapter off
                self.lm = PeftModel.from_pretrained(self.lm, str(adapter), adapter_name=key).eval()
            elif key not in self.adapters:
                self.lm.load_adapter(str(adapter), adapter_name=key)
            self.adapters.add(key)
        return key

    def prefix_cache(self, adapter: str | None, prefix: list[int], rows: int):
        """The key/value cache of ``prefix`` under ``adapter``, repeated for ``rows`` rows (call
        inside
        :meth:`using`). Computed once per adapter and prefix; the few newest are kept."""
        import copy

        import torch
        from transformers import DynamicCache

        key = (adapter, tuple(prefix))
        if key not in self._prefixes:
            cache = DynamicCache()
            self.lm(
                input_ids=torch.tensor([prefix], device=device()),
                past_key_values=cache,
                use_cache=True,
            )
            self._prefixes[key] = cache
            while len(self._prefixes) > PREFIX_CACHES:
                self._prefixes.popitem(last=False)
        self._prefixes.move_to_end(key)
        cache = copy.deepcopy(self._prefixes[key])  # generate appends to the cache it is given
        cache.batch_repeat_interleave(rows)
        return cache

    @contextmanager
    def using(self, adapter: str | None):
        """The model with ``adapter`` active (or no adapter: the base), held for one call."""
        with self.lock:
            if not self.adapters:
                yield self.lm
            elif adapter is None:
                with self.lm.disable_adapter():
                    yield self.lm
            else:
                self.lm.set_adapter(adapter)
                yield self.lm


class OpenWeightsModel:
    """A causal LM (with a LoRA adapter once fine-tuned) that answers chat completions."""

    kind = "open-weights causal LM"
    # a response_format's schema is enforced while decoding, not laid in afterwards
    constrains_json = True

    def __init__(self, shared: SharedBase, adapter: str | None = None):
        self.shared, self.adapter = shared, adapter
        self.base, self.tok = shared.name, shared.tok
        self.batcher = Batcher(self._generate_batch)

    @property
    def fine_tuned(self) -> bool:
        return self.adapter is not None

    @classmethod
    def load(cls, folder: Path) -> OpenWeightsModel:
        """A model saved by the trainer: its base (shared) and, once fine-tuned, its adapter."""
        require_extra()
        meta = json.loads((folder / MARKER).read_text())
        shared = SharedBase.get(meta["base"])
        return cls(shared, shared.attach(folder / "adapter") if meta.get("adapter") else None)

    @classmethod
    def base_model(cls, name: str) -> OpenWeightsModel:
        require_extra()
        return cls(SharedBase.get(name))

    def _generate(self, ids, mask, limit: int, grammars: list, prefix: int = 0, **sampling):
        """``generate`` with the model's adapter selected; the first ``prefix`` tokens, the same
        in every row,
        come from the shared prefix cache instead of being computed again for each row."""
        import torch

        processors = (
            [logits_processor(grammars, self.shared.vocab_size)]
            if any(g is not None for g in grammars)
            else []
        )
        with torch.no_grad(), self.shared.using(self.adapter) as lm:
            cache = (
                self.shared.prefix_cache(self.adapter, ids[0, :prefix].tolist(), len(ids))
                if prefix
                else None
            )
            return lm.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=limit,
                logits_processor=processors,
                past_key_values=cache,
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=self.tok.eos_token_id,
                **sampling,
            )

    def _generate_batch(
        self, items: list[tuple[list[int], int, object]]
    ) -> list[tuple[list[int], str]]:
        """Greedy answers for several prompts in one padded ``generate`` call (the batcher's
        worker).

        The prompts' shared beginning (the system prompt, when long enough) is taken from the prefix
        cache and the padding goes between it and each prompt's own tokens; otherwise the prompts
        are left-padded. Positions follow the attention mask, so padding changes no answer either
        way.
        """
        import torch

        prompts = [prompt for prompt, *_ in items]
        shared = _common_prefix(prompts)
        shared = shared if shared >= MIN_SHARED_PREFIX and len(prompts) > 1 else 0
        width = max(len(p) for p in prompts) - shared
        pad = self.tok.pad_token_id
        ids = torch.tensor(
            [p[:shared] + [pad] * (width - len(p) + shared) + p[shared:] for p in prompts],
            device=device(),
        )
        mask = torch.tensor(
            [
                [1] * shared + [0] * (width - len(p) + shared) + [1] * (len(p) - shared)
                for p in prompts
            ],
            device=device(),
        )
        out = self._generate(
            ids,
            mask,
            max(lim for _, lim, _ in items),
            [g for *_, g in items],
            prefix=shared,
            do_sample=False,
        )
        start = shared + width
        return [
            self._cut(row, limit)
            for row, (_, limit, _) in zip(out[:, start:].tolist(), items, strict=True)
        ]

    def _cut(self, row: list[int], limit: int) -> tuple[list[int], str]:
        """The answer's tokens (up to the end-of-turn token and the request's own limit) and
        finish reason."""
        if self.tok.eos_token_id in row[:limit]:
            return row[: row.index(self.tok.eos_token_id)], "stop"
        return row[:limit], "length" if len(row) >= limit else "stop"

    def _prompt(self, messages: Sequence[dict]) -> list[int]:
        return _ids(
            self.tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        )

    def complete(
        self,
        messages: Sequence[dict],
        response_format=None,
        max_tokens: int | None = None,
        *,
        temperature: float = 0.0,
        seed: int = 0,
    ):
        """The answer (greedy at temperature 0, else sampled with ``seed``), its finish reason, and
        prompt/completion token counts from the model's tokenizer. A ``response_format`` with a JSON
        schema (or ``json_object``) constrains the decoding (:mod:`.grammar`)."""
        import torch

        prompt = self._prompt(messages)
        limit = max_tokens or DEFAULT_LIMIT
        grammar = self.shared.grammars.compile(response_format)
        if (
            temperature <= 0
        ):  # greedy answers for concurrent requests share one batched generate call
            new, finish = self.batcher.submit(prompt, limit, grammar)
        else:
            torch.manual_seed(seed)
            out = self._generate(
                torch.tensor([prompt], device=device()),
                None,
                limit,
                [grammar],
                do_sample=True,
                temperature=temperature,
                top_k=0,
            )
            new, finish = self._cut(out[0, len(prompt) :].tolist(), limit)
        return self.tok.decode(new, skip_special_tokens=True).strip(), len(prompt), len(new), finish

    def stream(self, messages: Sequence[dict], response_format=None, max_tokens: int | None = None):
        """The greedy answer of :meth:`complete` as it is generated: yields text pieces, returns
        (prompt tokens, completion tokens, finish reason)."""
        import torch
        from transformers import TextIteratorStreamer

        prompt = self._prompt(messages)
        limit = max_tokens or DEFAULT_LIMIT
        grammar = self.shared.grammars.compile(response_format)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        worker = threading.Thread(
            target=self._generate,
            daemon=True,
            args=(torch.tensor([prompt], device=device()), None, limit, [grammar]),
            kwargs={"do_sample": False, "streamer": streamer},
        )
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

    def logits(self, ids: list[int]):
        """The model's next-token logits at every position of ``ids`` (one forward pass)."""
        import torch

        with torch.no_grad(), self.shared.using(self.adapter) as lm:
            return lm(input_ids=torch.tensor([ids], device=device())).logits[0]

    def answer(self, messages, response_format=None) -> str:
        return self.complete(messages, response_format)[0]
