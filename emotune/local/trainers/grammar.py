"""Constrained decoding for open-weights models: a ``response_format`` enforced token by token.

A ``json_schema`` (or a tool's parameters) is compiled by xgrammar, a maintained grammar library,
against the model's tokenizer; at every step of ``generate`` the tokens that would break the schema
are masked out, so a schema-constrained answer always parses and validates unless the token limit
cuts it (then its finish reason is ``length``, as with OpenAI). ``json_object`` gets xgrammar's
built-in JSON grammar. Answers are compact JSON (no free whitespace): fewer tokens, and a model
cannot pad an answer with newlines until the limit. Each row of a batch has its own grammar, or
none.
"""

from __future__ import annotations

import json
import threading

from ...core.errors import ConfigError
from .open_weights import INSTALL


class GrammarError(ValueError):
    """A schema the grammar library cannot compile (reported to the caller as a 400)."""


def _xgrammar():
    try:
        import xgrammar
    except ImportError:
        raise ConfigError(
            f"constrained decoding needs xgrammar (xgrammar is missing): {INSTALL}"
        ) from None
    return xgrammar


def wants_grammar(response_format: dict | None) -> bool:
    return bool(response_format) and response_format.get("type") in ("json_schema", "json_object")


class Grammars:
    """Compiles response formats for one tokenizer (compiled grammars are cached by the library)."""

    def __init__(self, tok, vocab_size: int):
        self.tok, self.vocab_size = tok, vocab_size
        self._compiler = None
        self._lock = threading.Lock()

    def _get_compiler(self):
        with self._lock:
            if self._compiler is None:
                xgr = _xgrammar()
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tok, vocab_size=self.vocab_size, stop_token_ids=[self.tok.eos_token_id]
                )
                self._compiler = xgr.GrammarCompiler(info, max_threads=2)
            return self._compiler

    def compile(self, response_format: dict | None):
        """The compiled grammar for a response format, or None for plain text."""
        if not wants_grammar(response_format):
            return None
        compiler = self._get_compiler()
        if response_format["type"] == "json_object":
            return compiler.compile_builtin_json_grammar()
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        try:
            return compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=bool(spec.get("strict", True))
            )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GrammarError(
                f"the JSON schema cannot be enforced: {str(exc).splitlines()[0][:300]}"
            ) from None


def logits_processor(grammars: list, vocab_size: int):
    """A transformers logits processor that masks each row's tokens to its grammar (rows with
    None are free).

    One instance serves one ``generate`` call: it follows the tokens each row has produced so far.
    """
    import torch
    from transformers import LogitsProcessor

    xgr = _xgrammar()

    class _Constrain(LogitsProcessor):
        def __init__(self):
            self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
            self.mask = xgr.allocate_token_bitmask(len(grammars), vocab_size)
            self.started = False

        def __call__(
            self, input_ids: torch.LongTensor, scores: torch.FloatTensor
        ) -> torch.FloatTensor:
            rows = [i for i, m in enumerate(self.matchers) if m is not None]
            if self.started:
                for i in rows:
                    if not self.matchers[i].is_terminated():
                        self.matchers[i].accept_token(int(input_ids[i, -1]))
            self.started = True
            xgr.reset_token_bitmask(self.mask)  # all allowed; constrained rows are narrowed below
            for i in rows:
                if not self.matchers[i].is_terminated():
                    self.matchers[i].fill_next_token_bitmask(self.mask, i)
            if not rows:
                return scores
            device = scores.device
            scores = scores.to("cpu") if device.type != "cuda" else scores
            xgr.apply_token_bitmask_inplace(scores, self.mask.to(scores.device))
            return scores.to(device)

    return _Constrain()
