"""Token counting the way OpenAI bills chat fine-tuning, with the right encoding for each model."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from .errors import ConfigError

# Model families and their tiktoken encodings (tiktoken's model table, checked 2026-11; it maps
# "ft:gpt-4.1..." wrongly, so emotune strips the ft: prefix before looking up).
_PREFIX_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("davinci-002", "cl100k_base"),
    ("babbage-002", "cl100k_base"),
)
# OpenAI's counting method for chat examples (openai-cookbook, Chat_finetuning_data_prep):
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_EXAMPLE = 3


def base_model(model: str) -> str:
    """The base model of a fine-tuned name: ``ft:gpt-4.1-mini-2025-04-14:org:sfx:id`` ->
    ``gpt-4.1-mini-2025-04-14``."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model


def encoding_name(model: str) -> str:
    """The tiktoken encoding a model uses (o200k_base when the family is unknown)."""
    name = base_model(model)
    for prefix, enc in _PREFIX_ENCODINGS:
        if name.startswith(prefix):
            return enc
    return "o200k_base"


@lru_cache(maxsize=8)
def get_encoding(name: str):
    """A tiktoken encoding by name; offline without its cache file is a clear error."""
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # tiktoken downloads on first use; offline that fails in several ways
        raise ConfigError(
            f"could not load tiktoken encoding {name!r} ({type(exc).__name__}). Offline, set "
            "TIKTOKEN_CACHE_DIR to a folder holding tiktoken's cache files, or allow network "
            "access once."
        ) from None


def encoding_for(model: str):
    """The tiktoken encoding for a model name (fine-tuned names included)."""
    return get_encoding(encoding_name(model))


def content_text(content) -> str:
    """A message's content as text (content parts joined); anything else counts as no text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text", ""), str)
        )
    return ""


def chat_token_parts(messages: Sequence) -> tuple[list[str], int]:
    """What OpenAI's counting method encodes for one chat example, and its fixed overhead.

    The method (openai-cookbook, Chat_finetuning_data_prep): 3 tokens an example, 3 a message, 1 a
    name, plus the tokens of every string value of every message (``weight`` excluded).
    """
    strings, fixed = [], TOKENS_PER_EXAMPLE
    for message in messages:
        if not isinstance(message, dict):
            continue
        fixed += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "weight":
                continue
            text = content_text(value) if key == "content" else value
            if isinstance(text, str):
                strings.append(text)
            if key == "name":
                fixed += TOKENS_PER_NAME
    return strings, fixed


def count_chat_tokens(messages: Sequence[dict], enc) -> int:
    """Tokens of one chat example by OpenAI's method (see :func:`chat_token_parts`)."""
    strings, fixed = chat_token_parts(messages)
    return fixed + sum(len(enc.encode_ordinary(s)) for s in strings)


def count_many(examples: Sequence[Sequence[dict]], enc) -> list[int]:
    """:func:`count_chat_tokens` for many examples; a string repeated across them (a system
    prompt) is encoded
    once."""
    cache: dict[str, int] = {}
    out = []
    for messages in examples:
        strings, fixed = chat_token_parts(messages)
        for s in strings:
            if s not in cache:
                cache[s] = len(enc.encode_ordinary(s))
        out.append(fixed + sum(cache[s] for s in strings))
    return out


def count_assistant_tokens(messages: Sequence[dict], enc) -> int:
    """Tokens in assistant messages' content (what the model is trained to write)."""
    return sum(
        len(enc.encode_ordinary(content_text(m.get("content"))))
        for m in messages
        if m.get("role") == "assistant"
    )
