import json

import pytest

from emotune import ConfigError
from emotune.core import tokens


@pytest.mark.parametrize(
    "model, enc",
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:acme:emo:abc123", "o200k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::xyz", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
    ],
)
def test_encoding_per_model(model, enc):
    assert tokens.encoding_name(model) == enc


def test_seed_tutorial_counts_match_cookbook_method(seed_tutorial):
    enc = tokens.get_encoding("cl100k_base")
    totals = {}
    for name in ("training_data", "validation_data"):
        with open(seed_tutorial / f"{name}.jsonl", encoding="utf-8") as f:
            totals[name] = sum(
                tokens.count_chat_tokens(json.loads(line)["messages"], enc) for line in f
            )
    assert totals == {"training_data": 101_616, "validation_data": 47_892}


def test_counting_rules():
    enc = tokens.get_encoding("o200k_base")
    one = [{"role": "user", "content": "hi"}]
    base = tokens.count_chat_tokens(one, enc)
    assert base == 3 + 3 + len(enc.encode("user")) + len(enc.encode("hi"))
    named = [{"role": "user", "content": "hi", "name": "bob"}]
    assert tokens.count_chat_tokens(named, enc) == base + len(enc.encode("bob")) + 1
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert tokens.count_chat_tokens(parts, enc) == base
    special = [{"role": "user", "content": "<|endoftext|>"}]
    assert tokens.count_chat_tokens(special, enc) > base  # counted as text, not rejected
    assert tokens.count_assistant_tokens(
        [{"role": "assistant", "content": "joy, love"}], enc
    ) == len(enc.encode("joy, love"))


def test_missing_encoding_offline_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    import tiktoken.load

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken.load, "read_file", offline)
    tokens.get_encoding.cache_clear()
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    try:
        with pytest.raises(ConfigError, match="TIKTOKEN_CACHE_DIR"):
            tokens.get_encoding("cl100k_base")
    finally:
        tokens.get_encoding.cache_clear()
