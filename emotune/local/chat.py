"""Chat completions: one typed request in, an answer with ``n`` choices out (a ChatCompletion, or
chunks).

What the local backend does with the request surface (the rest of OpenAI's parameters are accepted
and ignored, as OpenAI ignores what a model does not use):

- ``n`` (``null`` means 1): with ``n > 1`` and a temperature above 0 (OpenAI's default is 1) each
  choice is sampled: an open-weights model samples its tokens; the classical stand-in draws each
  label from its
  probability sharpened or flattened by the temperature. ``seed`` makes the draws reproducible. One
  choice, or temperature 0, is the deterministic answer; the label-word matcher (the local "base
  model") has no distribution to sample, so its choices are always identical. Usage counts the
  tokens of every choice.
- ``response_format``: an open-weights model decodes under the schema (``json_schema``) or JSON
  grammar (``json_object``), so its answer always parses unless the token limit cuts it
  (:mod:`.trainers.grammar`).
  The stand-ins predict labels and lay them into the caller's schema (:mod:`.structured`);
  ``json_object`` gives ``{"labels": [...]}``. Strict schemas are checked by OpenAI's rules before
  anything is generated.
- ``tools``/``tool_choice``: the answer calls the chosen function with arguments that follow its
  parameters (decoded under them by an open-weights model).
- ``stop``: the answer is cut before the first stop sequence. ``max_completion_tokens``: cut at the
  limit.
- ``logprobs``/``top_logprobs``: see :mod:`.logprobs`.

Every request's work is bounded before it starts: see :meth:`Chat.check`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from openai.types.chat import ChatCompletion

from ..core import tokens
from .api_error import ApiError
from .logprobs import label_probabilities, language_model_logprobs, stand_in_logprobs
from .models import Models
from .ratelimit import DEFAULT_COMPLETION_TOKENS
from .schemas import (
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TOKENS,
    MAX_REQUEST_OUTPUT_TOKENS,
    STRUCTURED_COMPLETION_TOKENS,
    ChatRequest,
)
from .store import new_id
from .structured import (
    check_schemas,
    chosen_tool,
    labels_in,
    output_schema,
    schema_answer,
    tool_arguments,
)
from .trainers import GrammarError


@dataclass
class Choice:
    """One answer: its text (content or tool arguments) in token-sized pieces, for streaming."""

    pieces: list[str]
    finish: str
    tool: str | None = None  # the called function's name; the pieces are then its arguments
    tool_call_id: str | None = None
    logprobs: list[dict] | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def message(self) -> dict:
        if self.tool is None:
            return {"role": "assistant", "content": self.text, "refusal": None}
        return {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {
                    "id": self.tool_call_id,
                    "type": "function",
                    "function": {"name": self.tool, "arguments": self.text},
                }
            ],
        }


@dataclass(frozen=True)
class Bound:
    """What a request may cost, decided before any work: its prompt tokens, and the most tokens
    each choice may answer."""

    prompt_tokens: int
    limit: int


@dataclass
class Answer:
    model: str
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int  # of all choices together
    fingerprint: str
    id: str = field(default_factory=lambda: new_id("chatcmpl-"))
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> dict:
        out = self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": self.prompt_tokens + out,
        }


def _draw(
    model, messages: list[dict], rf: dict | None, limit: int | None, temperature: float, seed: int
) -> tuple[str, int | None, int, str]:
    """(text, prompt tokens or None, completion tokens, finish): greedy at temperature 0, else
    sampled."""
    if hasattr(model, "complete"):  # counts its own tokens and stops at the limit
        return model.complete(messages, rf, limit, temperature=temperature, seed=seed)
    if temperature > 0:
        return model.sample(messages, rf, temperature, seed), None, 0, "stop"
    return model.answer(messages, rf), None, 0, "stop"


def pieces_of(enc, ids: list[int]) -> list[str]:
    """The text of each token; a token that ends inside a UTF-8 character is joined to the next."""
    out, pending = [], b""
    for t in ids:
        pending += enc.decode_single_token_bytes(t)
        try:
            out.append(pending.decode("utf-8"))
            pending = b""
        except UnicodeDecodeError:
            continue
    if pending:
        out.append(pending.decode("utf-8", "replace"))
    return out


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class Chat:
    """Answers chat requests with the model behind the requested name."""

    def __init__(self, models: Models):
        self.models = models

    def batch_size(self, model_name: str) -> int:
        """How many concurrent greedy requests the model behind ``model_name`` answers in one
        pass (1:
        unbatched)."""
        batcher = getattr(self.models.chat_model(model_name), "batcher", None)
        return batcher.max_batch if batcher is not None else 1

    def prompt_tokens(self, req: ChatRequest) -> int:
        """The request's prompt tokens by OpenAI's counting method (what a token budget is
        charged)."""
        return tokens.count_chat_tokens(
            req.messages_as_dicts(), tokens.encoding_for(self.models.resolve(req.model))
        )

    def check(self, req: ChatRequest) -> Bound:
        """The request's bound, or a 400 naming the limit it breaks, before any work: the prompt's
        characters (then tokens), every schema (:mod:`.structured`), ``n`` x the completion limit
        (the model's default when unset: a stand-in's answer is cut there)."""
        if req._bound is not None:
            return req._bound
        strings, _ = tokens.chat_token_parts(req.messages_as_dicts())
        chars = sum(len(s) for s in strings)
        if chars > MAX_PROMPT_CHARS:
            raise ApiError(
                400,
                f"Your messages have {chars:,} characters, over the local backend's limit of "
                f"{MAX_PROMPT_CHARS:,}. Please reduce the length of the messages.",
                param="messages",
                code="context_length_exceeded",
            )
        model = self.models.chat_model(req.model)
        structured = check_schemas(req)
        default = (
            STRUCTURED_COMPLETION_TOKENS
            if structured and not hasattr(model, "complete")
            else DEFAULT_COMPLETION_TOKENS
        )
        limit = req.limit or default
        if req.choices * limit > MAX_REQUEST_OUTPUT_TOKENS:
            raise ApiError(
                400,
                f"n x {'max_completion_tokens' if req.limit else 'the default limit'} is "
                f"{req.choices} x {limit:,} = {req.choices * limit:,} completion "
                f"tokens, over the limit of {MAX_REQUEST_OUTPUT_TOKENS:,} per request.",
                param="n" if req.limit is None else "max_completion_tokens",
                code="invalid_value",
            )
        prompt = self.prompt_tokens(req)
        if prompt > MAX_PROMPT_TOKENS:
            raise ApiError(
                400,
                f"This model's maximum context length is {MAX_PROMPT_TOKENS:,} tokens. However, "
                f"your messages resulted in {prompt:,} tokens. Please reduce the length of the "
                "messages.",
                param="messages",
                code="context_length_exceeded",
            )
        req._bound = Bound(prompt, limit)
        return req._bound

    def answer(self, req: ChatRequest) -> Answer:
        bound = self.check(req)
        messages = req.messages_as_dicts()
        model = self.models.chat_model(req.model)
        function = chosen_tool(req)
        rf = (
            req.format_dict()
            if function is None
            else {
                "type": "json_schema",
                "json_schema": {
                    "schema": function.parameters or {"type": "object"},
                    "strict": bool(function.strict),
                },
            }
        )
        language_model = hasattr(model, "complete")
        if req.logprobs and language_model and not hasattr(model, "logits"):
            raise ApiError(
                400,
                f"logprobs are not available for {req.model} on the local backend.",
                param="logprobs",
            )
        enc = tokens.encoding_for(self.models.resolve(req.model))
        temperature = 1.0 if req.temperature is None else req.temperature  # OpenAI's default is 1
        output_schema(
            req
        )  # a strict schema that breaks OpenAI's rules is refused before any generation
        try:
            if req.choices > 1 and temperature > 0 and (language_model or hasattr(model, "sample")):
                rng = np.random.default_rng(
                    None if req.seed is None else req.seed % 2**64
                )  # a seed makes the n samples reproducible
                drawn = [
                    _draw(model, messages, rf, bound.limit, temperature, int(rng.integers(2**31)))
                    for _ in range(req.choices)
                ]
            else:
                drawn = [_draw(model, messages, rf, bound.limit, 0.0, 0)] * req.choices
        except GrammarError as exc:
            raise ApiError(
                400,
                f"Invalid schema: {exc}",
                param="tools" if function else "response_format",
                code="invalid_value",
            ) from None
        shaped = [self._shape(req, bound.limit, model, enc, messages, function, d) for d in drawn]
        prompt_tokens = drawn[0][1] if drawn[0][1] is not None else bound.prompt_tokens
        return Answer(
            req.model,
            [c for c, _ in shaped],
            prompt_tokens,
            sum(n for _, n in shaped),
            self.models.fingerprint(model),
        )

    def _shape(
        self, req: ChatRequest, limit: int, model, enc, messages, function, drawn
    ) -> tuple[Choice, int]:
        """One choice from a generated text: laid into the schema or tool call, cut at stop or
        limit,
        logprobs."""
        text, _, n_out, finish = drawn
        language_model = hasattr(model, "complete")
        schema = output_schema(req)
        original = text
        labels = (
            labels_in(text) if function is not None or schema is not None or req.logprobs else []
        )
        decoded_under_schema = getattr(
            model, "constrains_json", False
        )  # else the labels are laid into the schema
        if function is not None:
            arguments = tool_arguments(function, labels)  # also checks a strict schema
            text = text if decoded_under_schema else arguments
        elif schema is not None:
            text = text if decoded_under_schema else schema_answer(schema, labels)
        else:
            text, stopped = _cut_at_stop(text, req.stops)
            finish = "stop" if stopped else finish
        ids = enc.encode_ordinary(text)
        if len(ids) > limit and not language_model:  # the request's limit, or the default
            ids, finish = ids[:limit], "length"
            text = enc.decode(ids)
        pieces = (
            pieces_of(enc, ids) if req.stream or req.logprobs else [text]
        )  # token-sized only where sent so
        if not language_model:
            n_out = len(ids)
        elif text != original:
            n_out = (
                len(model.tok.encode(text, add_special_tokens=False))
                if hasattr(model, "tok")
                else len(ids)
            )
        logprobs = None
        if req.logprobs:
            top = req.top_logprobs or 0
            if function is not None:
                logprobs = []  # a tool call has no content tokens
            elif language_model:
                pieces, logprobs = language_model_logprobs(model, messages, text, top)
            else:
                logprobs = stand_in_logprobs(
                    pieces, labels, label_probabilities(model, messages), top, enc
                )
        if function is not None and finish == "stop":
            finish = "tool_calls"
        return Choice(
            list(pieces),
            finish,
            function.name if function else None,
            f"call_{secrets.token_hex(12)}" if function else None,
            logprobs,
        ), n_out

    def live(self, req: ChatRequest) -> tuple[Answer, Iterator[str]] | None:
        """For a model that streams as it generates: the answer's head and its text pieces as they
        come (the head's finish reason and usage are set when the pieces end); None where the whole
        answer comes at once (the classical stand-in; n > 1, tools, a json_schema or logprobs)."""
        model = self.models.chat_model(req.model)
        if (
            not hasattr(model, "stream")
            or req.choices != 1
            or req.logprobs
            or chosen_tool(req) is not None
            or output_schema(req) is not None
        ):
            return None
        head = Answer(req.model, [Choice([], "stop")], 0, 0, self.models.fingerprint(model))
        generated = model.stream(req.messages_as_dicts(), req.format_dict(), req.limit)

        def pieces() -> Iterator[str]:
            text, emitted, stopped = "", 0, False
            while True:
                try:
                    piece = next(generated)
                except StopIteration as end:
                    head.prompt_tokens, head.completion_tokens, head.choices[0].finish = end.value
                    break
                if stopped:
                    continue  # generation runs to its end; what follows a stop sequence is not sent
                text = (text + piece).lstrip()
                cut, stopped = _cut_at_stop(text, req.stops)
                if len(cut) > emitted:
                    yield cut[emitted:]
                    emitted = len(cut)
            if stopped:
                head.choices[0].finish = "stop"
                head.completion_tokens = len(
                    model.tok.encode(text[:emitted], add_special_tokens=False)
                )

        return head, pieces()

    def complete(self, req: ChatRequest) -> dict:
        """The answer as an ``openai`` ChatCompletion (validated by the package's own type)."""
        a = self.answer(req)
        completion = ChatCompletion.model_validate(
            {
                "id": a.id,
                "object": "chat.completion",
                "created": a.created,
                "model": a.model,
                "choices": [
                    {
                        "index": i,
                        "message": c.message(),
                        "finish_reason": c.finish,
                        "logprobs": {"content": c.logprobs, "refusal": None}
                        if c.logprobs is not None
                        else None,
                    }
                    for i, c in enumerate(a.choices)
                ],
                "usage": a.usage(),
                "system_fingerprint": a.fingerprint,
                "service_tier": "default",
            }
        )
        return completion.model_dump(mode="json", exclude_unset=True)
