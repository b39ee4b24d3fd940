"""OpenAI's chat request surface at the local backend, through the official client (sync and async, streamed
and not) and LangChain's ChatOpenAI, every answer checked strictly against the openai package's types."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from conftest import wait_job
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from emotune.core.prompts import parse_answer, prompt_messages, render_example
from emotune.local import LocalServer

BASE = "gpt-4.1-mini-2025-04-14"
TOY = [
    ("thank you so much", ["gratitude"]),
    ("lol that is hilarious", ["amusement"]),
    ("I am so angry right now", ["anger"]),
    ("this is fine", ["neutral"]),
    ("thanks, love it", ["gratitude", "love"]),
    ("haha funny", ["amusement"]),
] * 4


def no_unknown_fields(obj, where="") -> None:
    """Every field of every nested openai model is one the type declares."""
    if isinstance(obj, BaseModel):
        assert not obj.model_extra, (
            f"{type(obj).__name__}{where} has unknown fields {set(obj.model_extra)}"
        )
        for name in type(obj).model_fields:
            no_unknown_fields(getattr(obj, name), f"{where}.{name}")
    elif isinstance(obj, list):
        for i, x in enumerate(obj):
            no_unknown_fields(x, f"{where}[{i}]")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server for the module, with a base model and a model fine-tuned on a toy file."""
    with LocalServer(tmp_path_factory.mktemp("chat-api") / "state") as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        data = "".join(json.dumps(render_example(t, labs)) + "\n" for t, labs in TOY).encode()
        train = c.files.create(file=("t.jsonl", data), purpose="fine-tune").id
        job = wait_job(
            c,
            c.fine_tuning.jobs.create(
                model=BASE,
                training_file=train,
                seed=0,
                hyperparameters={"n_epochs": 3, "batch_size": 4},
            ).id,
        )
        assert job.status == "succeeded", job.error
        yield srv, c, job.fine_tuned_model


def test_streaming_matches_the_plain_answer_sync_and_async(served):
    srv, c, tuned = served
    for model in (BASE, tuned):
        messages = prompt_messages("thank you so much, love it")
        plain = c.chat.completions.create(model=model, messages=messages)
        no_unknown_fields(ChatCompletion.model_validate(plain.model_dump()))
        chunks = list(
            c.chat.completions.create(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
        )
        for chunk in chunks:
            assert (
                isinstance(chunk, ChatCompletionChunk) and chunk.object == "chat.completion.chunk"
            )
            no_unknown_fields(chunk)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert (
            "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            == plain.choices[0].message.content
        )
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
        assert (
            chunks[-1].choices == [] and chunks[-1].usage == plain.usage
        )  # the include_usage chunk
        assert all(ch.usage is None for ch in chunks[:-1])

    async def go():
        ac = openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        stream = await ac.chat.completions.create(
            model=tuned, messages=prompt_messages("haha funny"), stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream])
        plain = await ac.chat.completions.create(
            model=tuned, messages=prompt_messages("haha funny")
        )
        await ac.close()
        return text, plain.choices[0].message.content

    streamed, plain = asyncio.run(go())
    assert streamed == plain == "amusement"
    raw = httpx.post(
        f"{srv.base_url}/chat/completions",
        timeout=10,
        json={"model": BASE, "messages": prompt_messages("thanks"), "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n") and raw.text.startswith("data: {")
    with pytest.raises(
        openai.NotFoundError
    ):  # an error before the stream opens is a plain OpenAI error
        c.chat.completions.create(model="ft:nope:x::y", messages=prompt_messages("hi"), stream=True)


def test_n_stop_and_logprobs(served):
    _, c, tuned = served
    one = c.chat.completions.create(
        model=tuned, messages=prompt_messages("thanks, love it"), n=None
    )
    three = c.chat.completions.create(
        model=tuned, messages=prompt_messages("thanks, love it"), n=3, temperature=0
    )
    assert [ch.index for ch in three.choices] == [0, 1, 2]
    assert {ch.message.content for ch in three.choices} == {
        one.choices[0].message.content
    }  # temperature 0: greedy
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    # n > 1 at a temperature above 0 samples each choice (labels drawn from the stand-in's probabilities)
    hot = dict(
        model=tuned, messages=prompt_messages("thanks, love it"), n=12, temperature=1.5, seed=7
    )
    sampled = c.chat.completions.create(**hot)
    texts = [ch.message.content for ch in sampled.choices]
    assert len(set(texts)) >= 2 and all(parse_answer(t).labels for t in texts)
    assert [
        ch.message.content for ch in c.chat.completions.create(**hot).choices
    ] == texts  # a seed reproduces them
    enc_counts = sum(len(t.split(",")) for t in texts)
    assert sampled.usage.completion_tokens >= enc_counts  # every choice's tokens are billed
    matcher = c.chat.completions.create(
        model=BASE, messages=prompt_messages("thanks"), n=3, temperature=1
    )
    assert (
        len({ch.message.content for ch in matcher.choices}) == 1
    )  # the label-word matcher has nothing to sample
    both = c.chat.completions.create(model=BASE, messages=prompt_messages("grateful and amused"))
    assert "," in both.choices[0].message.content
    cut = c.chat.completions.create(
        model=BASE, messages=prompt_messages("grateful and amused"), stop=[","]
    )
    assert cut.choices[0].message.content == both.choices[0].message.content.split(",")[0]
    assert cut.choices[0].finish_reason == "stop"
    lp = c.chat.completions.create(
        model=tuned, messages=prompt_messages("thank you so much"), logprobs=True, top_logprobs=3
    )
    no_unknown_fields(lp)
    content = lp.choices[0].logprobs.content
    assert "".join(t.token for t in content) == lp.choices[0].message.content == "gratitude"
    first = content[0]
    assert (
        first.logprob < 0
        and len(first.top_logprobs) == 3
        and first.top_logprobs[0].token == first.token
    )
    assert all(alt.logprob <= 0 and alt.token != first.token for alt in first.top_logprobs[1:])
    base = c.chat.completions.create(model=BASE, messages=prompt_messages("thanks"), logprobs=True)
    assert base.choices[0].logprobs.content and all(
        t.logprob == 0 for t in base.choices[0].logprobs.content
    )
    streamed = list(
        c.chat.completions.create(
            model=tuned, messages=prompt_messages("thank you so much"), logprobs=True, stream=True
        )
    )
    assert [
        t.token
        for ch in streamed
        if ch.choices and ch.choices[0].logprobs
        for t in ch.choices[0].logprobs.content
    ] == [t.token for t in content]


class Emotions(BaseModel):
    emotions: list[str]
    rationale: str
    intensity: float


def test_structured_outputs_follow_the_callers_schema(served):
    _, c, tuned = served
    for model in (BASE, tuned):
        messages = prompt_messages("thank you so much, love it")
        labels = list(
            parse_answer(
                c.chat.completions.create(model=model, messages=messages).choices[0].message.content
            ).labels
        )
        parsed = c.chat.completions.parse(model=model, messages=messages, response_format=Emotions)
        assert parsed.choices[0].message.parsed == Emotions(
            emotions=labels, rationale="", intensity=0
        )
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["anger", "gratitude", "joy"]},
            "scores": {"type": "array", "items": {"type": "number"}},
        },
        "required": ["label", "scores"],
        "additionalProperties": False,
    }
    single = c.chat.completions.create(
        model=BASE,
        messages=prompt_messages("so grateful!"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "one", "schema": schema, "strict": True},
        },
    )
    assert json.loads(single.choices[0].message.content) == {"label": "gratitude", "scores": []}
    loose = dict(schema, additionalProperties=True)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model=BASE,
            messages=prompt_messages("so grateful!"),
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "one", "schema": loose, "strict": True},
            },
        )
    assert (
        info.value.body["param"] == "response_format"
        and "additionalProperties" in info.value.body["message"]
    )
    obj = c.chat.completions.create(
        model=BASE,
        messages=prompt_messages("so grateful!"),
        response_format={"type": "json_object"},
    )
    assert json.loads(obj.choices[0].message.content) == {"labels": ["gratitude"]}


def test_tools_answer_with_a_call_that_holds_the_labels(served):
    _, c, tuned = served
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "integer"}}},
            },
        },
        {
            "type": "function",
            "function": {
                "name": "record",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "note": {"type": "string"},
                        "found": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["note", "found"],
                },
            },
        },
    ]
    for choice in ("required", "auto", {"type": "function", "function": {"name": "record"}}):
        r = c.chat.completions.create(
            model=tuned,
            messages=prompt_messages("thank you so much"),
            tools=tools,
            tool_choice=choice,
        )
        no_unknown_fields(r)
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
        assert call.function.name == "record" and json.loads(call.function.arguments) == {
            "note": "",
            "found": ["gratitude"],
        }
    plain = c.chat.completions.create(
        model=tuned, messages=prompt_messages("thank you"), tools=tools, tool_choice="none"
    )
    assert (
        plain.choices[0].message.tool_calls is None
        and plain.choices[0].message.content == "gratitude"
    )
    streamed = list(
        c.chat.completions.create(
            model=tuned,
            messages=prompt_messages("thank you so much"),
            tools=tools,
            tool_choice="required",
            stream=True,
        )
    )
    args = "".join(
        ch.choices[0].delta.tool_calls[0].function.arguments or ""
        for ch in streamed
        if ch.choices and ch.choices[0].delta.tool_calls
    )
    assert (
        json.loads(args)["found"] == ["gratitude"]
        and streamed[-1].choices[0].finish_reason == "tool_calls"
    )


def test_headers_unknown_parameters_and_refusals(served):
    srv, c, _ = served
    r = c.chat.completions.with_raw_response.create(
        model=BASE,
        messages=prompt_messages("thanks"),
        top_p=0.5,
        presence_penalty=0.1,
        user="u",
        store=False,
        metadata={"a": "b"},
        parallel_tool_calls=False,
        reasoning_effort="low",
        extra_body={"not_an_openai_thing": 1},
    )
    assert (
        r.headers["x-request-id"].startswith("req_") and r.headers["openai-processing-ms"].isdigit()
    )
    assert r.parse()._request_id == r.headers["x-request-id"]
    assert "x-ratelimit-limit-requests" not in r.headers  # only when limits are configured
    assert "x-emotune-batch-size" not in r.headers  # the stand-ins answer one request at a time
    bad = [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 0}, "n"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"stop": ["a"] * 5}, "stop"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools.0.function.name"),
    ]
    for extra, param in bad:
        resp = httpx.post(
            f"{srv.base_url}/chat/completions",
            timeout=10,
            json={"model": BASE, "messages": prompt_messages("hi")} | extra,
        )
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param, (
            extra,
            resp.text,
        )
        assert resp.headers["x-request-id"].startswith("req_")


def test_langchain_streams_by_default_against_base_and_fine_tuned(served):
    chat_openai = pytest.importorskip("langchain_openai").ChatOpenAI
    srv, c, tuned = served
    for model in (BASE, tuned):
        expected = (
            c.chat.completions.create(model=model, messages=prompt_messages("so grateful, thanks"))
            .choices[0]
            .message.content
        )
        llm = chat_openai(
            model=model,
            base_url=srv.base_url,
            api_key="k",
            max_retries=0,
            temperature=0,
            stream_usage=True,
        )
        messages = [(m["role"], m["content"]) for m in prompt_messages("so grateful, thanks")]
        parts = list(llm.stream(messages))
        assert (
            len(parts) > 1
            and "".join(p.content for p in parts) == llm.invoke(messages).content == expected
        )
        assert (
            sum(parts[1:], parts[0]).usage_metadata["output_tokens"] >= 1
        )  # stream_usage: the final usage chunk
        structured = llm.with_structured_output(Emotions).invoke(messages)
        assert structured.emotions == list(parse_answer(expected).labels)
        streaming = chat_openai(
            model=model, base_url=srv.base_url, api_key="k", streaming=True, max_retries=0
        )
        assert streaming.invoke(messages).content == expected


def test_rate_limits_answer_as_openai_does(tmp_path):
    import re

    duration = re.compile(r"^(\d+ms|(\d+m)?\d+(\.\d+)?s)$")
    with LocalServer(tmp_path / "s", rpm=2, tpm=1000) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        plain = c.chat.completions.with_raw_response.create(
            model=BASE, messages=prompt_messages("thanks")
        )
        streamed = c.chat.completions.with_raw_response.create(
            model=BASE, messages=prompt_messages("thanks"), stream=True
        )
        for r in (plain, streamed):
            for kind in ("requests", "tokens"):
                assert (
                    r.headers[f"x-ratelimit-limit-{kind}"]
                    == {"requests": "2", "tokens": "1000"}[kind]
                )
                assert int(r.headers[f"x-ratelimit-remaining-{kind}"]) >= 0
                assert duration.match(r.headers[f"x-ratelimit-reset-{kind}"])
        assert streamed.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model=BASE, messages=prompt_messages("thanks"))
        assert (
            info.value.body["type"] == "requests"
            and info.value.body["code"] == "rate_limit_exceeded"
        )
        assert (
            int(info.value.response.headers["retry-after-ms"]) > 0
            and info.value.response.headers["retry-after"]
        )
    with LocalServer(tmp_path / "s", tpm=1000) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(
            openai.RateLimitError
        ) as info:  # prompt + max_completion_tokens over the budget
            c.chat.completions.create(
                model=BASE, messages=prompt_messages("thanks"), max_completion_tokens=2000
            )
        assert info.value.body["type"] == "tokens"


def test_a_request_is_charged_what_it_can_cost_and_given_back_what_it_did_not_use(tmp_path):
    with LocalServer(tmp_path / "s", tpm=3000) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(
            openai.RateLimitError, match="Request too large"
        ):  # n x the default 64 tokens
            c.chat.completions.create(
                model=BASE, messages=prompt_messages("thanks"), n=128, temperature=1
            )
        first = c.chat.completions.with_raw_response.create(
            model=BASE, messages=prompt_messages("thanks")
        )
        second = c.chat.completions.with_raw_response.create(
            model=BASE, messages=prompt_messages("thanks")
        )
    used = first.parse().usage.total_tokens
    left_first = int(
        first.headers["x-ratelimit-remaining-tokens"]
    )  # after admission: the whole charge
    left_second = int(second.headers["x-ratelimit-remaining-tokens"])
    assert (
        3000 - left_first >= used + 32
    )  # the first was charged its prompt and 64 answer tokens up front
    # before the second was admitted, the first's unused charge came back: the budget fell by what it used
    assert left_first - left_second <= used + 1


def test_a_stream_that_fails_midway_ends_with_an_error_event():
    from emotune.local.streaming import events

    def failing():
        yield {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": BASE,
            "choices": [],
        }
        raise RuntimeError("generation broke")

    sent = b"".join(events(failing())).decode().strip().split("\n\n")
    assert (
        len(sent) == 2
        and json.loads(sent[-1].removeprefix("data: "))["error"]["type"] == "server_error"
    )
