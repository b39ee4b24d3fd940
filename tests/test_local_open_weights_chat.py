"""Chat with an open-weights model through the local backend: streamed as generated, real
log-probabilities."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "torch", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)
pytest.importorskip(
    "transformers", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)
pytest.importorskip(
    "peft", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)

import openai  # noqa: E402
from test_local_chat_api import no_unknown_fields  # noqa: E402
from test_open_weights import tiny_model  # noqa: E402, F401  (the module's tiny Llama fixture)

from emotune.core.prompts import prompt_messages  # noqa: E402
from emotune.local import LocalServer  # noqa: E402


def test_open_weights_streams_as_it_generates_and_reports_real_logprobs(tiny_model, tmp_path):  # noqa: F811
    with LocalServer(tmp_path / "state", base_models=[str(tiny_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        model, messages = str(tiny_model), prompt_messages("thank you so much")
        plain = c.chat.completions.create(model=model, messages=messages, max_completion_tokens=6)
        chunks = list(
            c.chat.completions.create(
                model=model,
                messages=messages,
                max_completion_tokens=6,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        for chunk in chunks:
            no_unknown_fields(chunk)
        pieces = [
            ch.choices[0].delta.content
            for ch in chunks
            if ch.choices and ch.choices[0].delta.content
        ]
        assert len(pieces) > 1 and "".join(pieces).strip() == plain.choices[0].message.content
        assert (
            chunks[-1].usage.prompt_tokens == plain.usage.prompt_tokens
            and chunks[-1].usage.completion_tokens >= 1
        )
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == plain.choices[
            0
        ].finish_reason
        lp = c.chat.completions.create(
            model=model, messages=messages, max_completion_tokens=6, logprobs=True, top_logprobs=2
        )
        no_unknown_fields(lp)
        content = lp.choices[0].logprobs.content
        assert content and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in content)
        assert all(
            t.top_logprobs[0].logprob >= t.logprob - 1e-4 for t in content
        )  # greedy: the chosen token leads


def test_open_weights_samples_n_choices_above_temperature_zero(tiny_model, tmp_path):  # noqa: F811
    with LocalServer(tmp_path / "state", base_models=[str(tiny_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        ask = dict(
            model=str(tiny_model),
            messages=prompt_messages("thank you so much"),
            max_completion_tokens=8,
        )
        greedy = c.chat.completions.create(**ask, n=3, temperature=0)
        assert len({ch.message.content for ch in greedy.choices}) == 1
        hot = c.chat.completions.create(**ask, n=4, temperature=2, seed=3)
        texts = [ch.message.content for ch in hot.choices]
        assert len(set(texts)) >= 2  # a random tiny model at temperature 2 does not repeat itself
        assert [
            ch.message.content
            for ch in c.chat.completions.create(**ask, n=4, temperature=2, seed=3).choices
        ] == texts
        assert hot.usage.completion_tokens <= 4 * 8 and hot.usage.completion_tokens >= 4


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(tiny_model):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    from emotune.local.trainers import OpenWeightsModel

    model = OpenWeightsModel.base_model(str(tiny_model))
    texts = [
        "thank you so much",
        "that is hilarious lol",
        "I am furious about this",
        "it is a table",
    ] * 6
    texts = [
        f"{t} {'so ' * (i % 5)}".strip() for i, t in enumerate(texts)
    ]  # 24 prompts of different lengths
    alone = [
        model.complete(prompt_messages(t), max_tokens=6) for t in texts
    ]  # one at a time: batches of 1
    assert model.batcher.stats["largest"] == 1
    with ThreadPoolExecutor(24) as pool:
        together = list(pool.map(lambda t: model.complete(prompt_messages(t), max_tokens=6), texts))
    assert model.batcher.stats["largest"] > 1  # concurrent requests shared a generate call
    assert together == alone  # left padding changes no answer: each request gets its own


@pytest.fixture(scope="module")
def byte_model(tmp_path_factory):
    """A 2-layer random Llama whose byte-level tokenizer can spell any text (a grammar needs every
    character)."""
    import torch
    from test_open_weights import TEMPLATE
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("byte-llama")
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
    raw.train_from_iterator(
        ['{"labels": ["gratitude", "anger"]}', "thank you so much"],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<|end|>")
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    ).save_pretrained(folder)
    return folder


SCHEMAS = {
    "labels": {
        "type": "object",
        "properties": {
            "labels": {
                "type": "array",
                "maxItems": 3,
                "items": {"type": "string", "enum": ["gratitude", "amusement", "anger", "neutral"]},
            }
        },
        "required": ["labels"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["gratitude", "anger"]},
            "sure": {"type": "boolean"},
            "detail": {
                "type": "object",
                "properties": {
                    "also": {
                        "type": "array",
                        "maxItems": 2,
                        "items": {"type": "string", "enum": ["joy", "fear"]},
                    }
                },
                "required": ["also"],
                "additionalProperties": False,
            },
        },
        "required": ["label", "sure", "detail"],
        "additionalProperties": False,
    },
}


def test_a_json_schema_is_enforced_while_decoding_so_every_answer_validates(byte_model, tmp_path):
    """A random tiny model left alone answers gibberish; decoded under the schema it answers valid JSON."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    import jsonschema

    texts = [
        "thank you so much",
        "that is hilarious lol",
        "I am furious about this",
        "it is a table",
    ] * 3
    with LocalServer(tmp_path / "state", base_models=[str(byte_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=120)
        for name, schema in SCHEMAS.items():
            rf = {
                "type": "json_schema",
                "json_schema": {"name": name, "strict": True, "schema": schema},
            }

            def ask(text, rf=rf):
                return c.chat.completions.create(
                    model=str(byte_model),
                    messages=prompt_messages(text),
                    temperature=0,
                    max_completion_tokens=60,
                    response_format=rf,
                )

            with ThreadPoolExecutor(12) as pool:  # constrained rows share batches too
                answers = list(pool.map(ask, texts))
            for a in answers:
                assert a.choices[0].finish_reason == "stop", a.choices[0].message.content
                jsonschema.validate(json.loads(a.choices[0].message.content), schema)
        raw = c.chat.completions.with_raw_response.create(
            model=str(byte_model), messages=prompt_messages("hi"), max_completion_tokens=2
        )
        assert (
            raw.headers["x-emotune-batch-size"] == "32"
        )  # what the predictor's limiter keeps in flight at least
        free = c.chat.completions.create(
            model=str(byte_model),
            messages=prompt_messages("thank you so much"),
            temperature=0,
            max_completion_tokens=20,
            response_format={"type": "json_object"},
        )
        if free.choices[0].finish_reason == "stop":  # any JSON: only a cut answer may fail to parse
            json.loads(free.choices[0].message.content)
        tool = {
            "type": "function",
            "function": {"name": "label", "strict": True, "parameters": SCHEMAS["labels"]},
        }
        call = c.chat.completions.create(
            model=str(byte_model),
            messages=prompt_messages("I am furious about this"),
            temperature=0,
            max_completion_tokens=60,
            tools=[tool],
            tool_choice="required",
        )
        assert call.choices[0].finish_reason == "tool_calls"
        jsonschema.validate(
            json.loads(call.choices[0].message.tool_calls[0].function.arguments), SCHEMAS["labels"]
        )
        hot = c.chat.completions.create(
            model=str(byte_model),
            messages=prompt_messages("thank you"),
            temperature=1.5,
            n=3,
            seed=1,
            max_completion_tokens=60,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "l", "schema": SCHEMAS["labels"]},
            },
        )
        for choice in hot.choices:  # sampled answers are constrained as well
            jsonschema.validate(json.loads(choice.message.content), SCHEMAS["labels"])
        with pytest.raises(
            openai.BadRequestError
        ) as bad:  # a strict schema that breaks OpenAI's rules: refused first
            c.chat.completions.create(
                model=str(byte_model),
                messages=prompt_messages("hi"),
                response_format={
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        "strict": True,
                        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                },
            )
        assert bad.value.status_code == 400
