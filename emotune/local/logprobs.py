"""Token log-probabilities for the answers the local backend gives (``logprobs`` /
``top_logprobs``).

- Open-weights models: the real log-probabilities of the answer's tokens under the model (one
  forward pass over prompt + answer), with the model's ``top_logprobs`` most likely tokens at each
  position.
- The classical fine-tuned stand-in is a classifier, not a language model; its values come from its
  label probabilities: the first token of each label in the answer carries log p(label), every other
  token
  (the rest of a label, separators, JSON punctuation) is certain (log-probability 0, the
  deterministic writer's). At a label's first token the alternatives are the first tokens of the
  most probable labels *not* in the answer, each with that label's log-probability (not a
  distribution over the vocabulary).
- The zero-shot matcher is a rule with no probabilities: every token has log-probability 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.prompts import last_user_text

FLOOR = -9999.0  # what OpenAI reports for a token the model gives (almost) no probability


def _log(p: float) -> float:
    return math.log(p) if p > 0 else FLOOR


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "bytes": list(token.encode("utf-8")), "logprob": logprob}


def label_probabilities(model, messages: Sequence[dict]) -> dict[str, float]:
    """p(label) for a classifier with ``probabilities``/``classes`` (the classical stand-in),
    else {}."""
    if not (hasattr(model, "probabilities") and hasattr(model, "classes")):
        return {}
    row = model.probabilities([last_user_text(list(messages))])[0]
    return {c: float(p) for c, p in zip(model.classes, row, strict=True)}


def stand_in_logprobs(
    pieces: Sequence[str], labels: Sequence[str], probs: dict[str, float], top: int, enc
) -> list[dict]:
    """One entry per piece of the answer, as documented in the module docstring."""
    text = "".join(pieces)
    starts, pos = {}, 0
    for label in labels:  # where each answered label begins, in answer order
        at = text.find(label, pos)
        if at >= 0:
            starts[at] = label
            pos = at + len(label)
    others = sorted((p, lab) for lab, p in probs.items() if lab not in set(labels))[::-1]
    out, offset = [], 0
    for piece in pieces:
        label = next((lab for s, lab in starts.items() if offset <= s < offset + len(piece)), None)
        offset += len(piece)
        if label is None:
            e = _entry(piece, 0.0)
            out.append(e | {"top_logprobs": [dict(e)] if top else []})
            continue
        e = _entry(piece, _log(probs.get(label, 1.0)))
        lead = piece[: len(piece) - len(piece.lstrip())]
        alternatives, seen = [], {piece}
        for p, other in others:
            if len(alternatives) >= top - 1:
                break
            token = enc.decode(enc.encode_ordinary(lead + other)[:1])
            if token not in seen:
                seen.add(token)
                alternatives.append(_entry(token, _log(p)))
        out.append(e | {"top_logprobs": ([dict(e)] + alternatives)[:top]})
    return out


def language_model_logprobs(
    model, messages: Sequence[dict], answer: str, top: int
) -> tuple[list[str], list[dict]]:
    """The answer's tokens (the model's tokenizer) and their log-probabilities under the model."""
    import torch

    tok = model.tok
    prompt = tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    prompt = list(
        prompt["input_ids"] if isinstance(prompt, dict) or hasattr(prompt, "input_ids") else prompt
    )
    ids = tok.encode(answer, add_special_tokens=False)
    if not ids:
        return [], []
    logits = model.logits(prompt + ids)[len(prompt) - 1 : -1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    pieces, out = [], []
    for i, t in enumerate(ids):
        piece = tok.decode([t])
        pieces.append(piece)
        e = _entry(piece, float(logp[i, t]))
        best = torch.topk(logp[i], k=top).indices.tolist() if top else []
        out.append(e | {"top_logprobs": [_entry(tok.decode([b]), float(logp[i, b])) for b in best]})
    return pieces, out
