"""Chat completions: one typed request in, an ``openai`` ChatCompletion out."""

from __future__ import annotations

import time

from openai.types.chat import ChatCompletion

from ..core import tokens
from .models import Models
from .schemas import ChatRequest
from .store import new_id


class Chat:
    """Answers chat requests with the model behind the requested name."""

    def __init__(self, models: Models):
        self.models = models

    def prompt_tokens(self, req: ChatRequest) -> int:
        """The request's prompt tokens by OpenAI's counting method (what a token budget is charged)."""
        return tokens.count_chat_tokens(req.messages_as_dicts(), tokens.encoding_for(self.models.resolve(req.model)))

    def complete(self, req: ChatRequest) -> dict:
        messages = req.messages_as_dicts()
        model = self.models.chat_model(req.model)
        limit = req.limit
        if hasattr(model, "complete"):  # a language model counts its own tokens and stops at the limit
            answer, prompt_tokens, n_out, finish = model.complete(messages, req.response_format, limit)
        else:
            answer = model.answer(messages, req.response_format)
            enc = tokens.encoding_for(self.models.resolve(req.model))
            out_tokens = enc.encode_ordinary(answer)
            finish = "stop"
            if limit is not None and len(out_tokens) > limit:
                out_tokens, finish = out_tokens[:limit], "length"
                answer = enc.decode(out_tokens)
            prompt_tokens, n_out = tokens.count_chat_tokens(messages, enc), len(out_tokens)
        completion = ChatCompletion.model_validate({
            "id": new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "refusal": None},
                         "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n_out, "total_tokens": prompt_tokens + n_out},
            "system_fingerprint": self.models.fingerprint(model), "service_tier": "default",
        })
        return completion.model_dump(mode="json", exclude_unset=True)
