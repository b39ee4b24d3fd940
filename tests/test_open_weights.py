"""Open-weights LoRA fine-tuning through the local backend, on a tiny Llama built here (no download)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)
transformers = pytest.importorskip(
    "transformers", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)
pytest.importorskip(
    "peft", reason="needs the open-weights extra: pip install 'emotune[open-weights]'"
)

import openai  # noqa: E402
from conftest import wait_job  # noqa: E402

from emotune.core.prompts import parse_answer, prompt_messages, render_example  # noqa: E402
from emotune.local import LocalServer  # noqa: E402

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
DATA = [
    ("thank you so much", ["gratitude"]),
    ("that is hilarious lol", ["amusement"]),
    ("I am furious about this", ["anger"]),
    ("it is a table", ["neutral"]),
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer Llama with a word-level tokenizer trained on the test data, and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<pad>", "<unk>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [json.dumps(render_example(t, labels)) for t, labels in DATA] + [
        "Label the emotions (goemotions)."
    ]
    raw.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=specials))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>", eos_token="<|end|>"
    )
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        initializer_range=0.3,
    )  # wide enough for a frozen head to separate tokens, tame enough for clipped gradients
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def jsonl(rows) -> bytes:
    return "".join(json.dumps(render_example(t, labels)) + "\n" for t, labels in rows).encode()


@pytest.mark.slow  # trains a LoRA adapter in a worker process
def test_lora_job_learns_serves_and_survives_a_new_process(tiny_model, tmp_path):
    state = tmp_path / "state"
    with LocalServer(state, base_models=[str(tiny_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(DATA * 5)), purpose="fine-tune").id
        valid = c.files.create(file=("v.jsonl", jsonl(DATA)), purpose="fine-tune").id
        job = c.fine_tuning.jobs.create(
            model=str(tiny_model),
            training_file=train,
            validation_file=valid,
            seed=0,
            suffix="tiny",
            hyperparameters={"n_epochs": 12, "batch_size": 4, "learning_rate_multiplier": 100},
        )
        job = wait_job(c, job.id, 240)
        assert job.status == "succeeded", job.error
        assert job.fine_tuned_model.startswith(f"ft:{tiny_model.name}:emotune-local:tiny:")
        csv = c.files.content(job.result_files[0]).text.splitlines()[1:]
        losses = [float(line.split(",")[1]) for line in csv]
        assert (
            len(losses) == 12 * 5 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 * 0.5
        )  # it learns
        assert [x for x in csv if x.split(",")[3]]  # validation loss measured
        ckpts = c.fine_tuning.jobs.checkpoints.list(job.id).data
        assert len(ckpts) == 3 and (state / "weights").exists()
        # each published model is a standard PEFT adapter folder: what PEFT, vLLM (--enable-lora) and TGI load
        from peft import PeftConfig

        adapters = sorted((state / "weights").glob("*/adapter"))
        assert len(adapters) == 3
        for adapter in adapters:
            assert {"adapter_config.json", "adapter_model.safetensors"} <= {
                f.name for f in adapter.iterdir()
            }
            cfg = PeftConfig.from_pretrained(str(adapter))
            assert (
                cfg.peft_type == "LORA"
                and cfg.task_type == "CAUSAL_LM"
                and cfg.r == 8
                and cfg.lora_alpha == 16
            )
        base = c.chat.completions.create(
            model=str(tiny_model),
            messages=prompt_messages("thank you so much"),
            max_completion_tokens=3,
        )
        assert base.usage.completion_tokens <= 3
        # the fine-tune is served on the base's weights already in memory: one copy, its adapter attached
        from emotune.local.trainers.serving import SharedBase

        tuned = c.chat.completions.create(
            model=job.fine_tuned_model,
            messages=prompt_messages("thank you so much"),
            temperature=0,
            max_completion_tokens=8,
        )
        assert tuned.choices[0].message.content == "gratitude"
        assert tuned.system_fingerprint == "emotune-local-open-weights-lora"
        shared = SharedBase.get(str(tiny_model))  # the copy already loaded, not a second one
        assert len(shared.adapters) == 1
        again = c.chat.completions.create(
            model=str(tiny_model),
            messages=prompt_messages("thank you so much"),
            max_completion_tokens=3,
        )
        assert (
            again.choices[0].message.content == base.choices[0].message.content
        )  # the adapter is off for the base
        assert again.system_fingerprint == "emotune-local-open-weights-base"
    # a fresh server process loads the saved adapter and answers, online and through a batch
    port = __import__("emotune.local.server", fromlist=["free_port"]).free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emotune.cli",
            "serve",
            "--port",
            str(port),
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=20)
        for _ in range(100):
            try:
                c.models.list()
                break
            except openai.APIConnectionError:
                time.sleep(0.2)
        reply = c.chat.completions.create(
            model=job.fine_tuned_model,
            messages=prompt_messages("thank you so much"),
            temperature=0,
            max_completion_tokens=8,
        )
        assert reply.choices[0].message.content == "gratitude"
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens >= 1
        lines = [
            {
                "custom_id": f"r{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": job.fine_tuned_model,
                    "messages": prompt_messages(t),
                    "max_completion_tokens": 8,
                },
            }
            for i, (t, _) in enumerate(DATA)
        ]
        f = c.files.create(
            file=("b.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch"
        )
        batch = c.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while batch.status not in ("completed", "failed"):
            time.sleep(0.2)
            batch = c.batches.retrieve(batch.id)
        out = {
            json.loads(x)["custom_id"]: json.loads(x)["response"]["body"]["choices"][0]["message"][
                "content"
            ]
            for x in c.files.content(batch.output_file_id).text.splitlines()
        }
        online = {
            f"r{i}": c.chat.completions.create(**line["body"]).choices[0].message.content
            for i, line in enumerate(lines)
        }
        assert (
            out == online and out["r0"] == "gratitude"
        )  # greedy: the batch path answers as the online one
        assert all(
            parse_answer(answer).ok for answer in out.values()
        )  # it learned to answer with labels
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_missing_weights_fail_the_job_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with LocalServer(tmp_path / "state", base_models=["no-such-org/no-such-model"]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        train = c.files.create(file=("t.jsonl", jsonl(DATA * 3)), purpose="fine-tune").id
        job = wait_job(
            c,
            c.fine_tuning.jobs.create(model="no-such-org/no-such-model", training_file=train).id,
            60,
        )
        assert job.status == "failed" and job.error.code == "invalid_model"
        assert "no weights for 'no-such-org/no-such-model'" in job.error.message
        with pytest.raises(openai.NotFoundError, match="no weights"):
            c.chat.completions.create(
                model="no-such-org/no-such-model", messages=[{"role": "user", "content": "hi"}]
            )


def test_a_missing_extra_names_the_install_command():
    code = (
        "import sys; sys.modules['peft'] = None\n"
        "from emotune.local.trainers.open_weights import require_extra\n"
        "try:\n    require_extra()\nexcept Exception as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "pip install 'emotune[open-weights]'" in out and "peft" in out


def training_workers(under: Path) -> list:
    """The training processes of jobs whose state directory is under ``under``."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        line = " ".join(p.info["cmdline"] or [])
        if "emotune.local.trainers.sft_worker" in line and str(under) in line:
            found.append(p)
    return found


def training_job(c, tiny_model, n_epochs: int):
    """A job on the tiny model, returned once its worker has reported its first step."""
    train = c.files.create(file=("t.jsonl", jsonl(DATA * 5)), purpose="fine-tune").id
    job = c.fine_tuning.jobs.create(
        model=str(tiny_model),
        training_file=train,
        seed=0,
        hyperparameters={"n_epochs": n_epochs, "batch_size": 1},
    )
    for _ in range(600):
        if any(e.type == "metrics" for e in c.fine_tuning.jobs.list_events(job.id).data):
            break
        time.sleep(0.1)
    return job


@pytest.mark.slow  # trains a LoRA adapter in a worker process
def test_cancel_kills_the_training_process(tiny_model, tmp_path):
    with LocalServer(tmp_path / "state", base_models=[str(tiny_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        job = training_job(c, tiny_model, n_epochs=50)
        assert training_workers(tmp_path), "the job trains in its own process"
        c.fine_tuning.jobs.cancel(job.id)
        job = wait_job(c, job.id, 60)
        assert job.status == "cancelled"
        for _ in range(100):
            if not training_workers(tmp_path):
                break
            time.sleep(0.1)
        assert not training_workers(tmp_path)  # the training process is gone, its memory with it
    assert (
        tmp_path / "state" / "training" / job.id / "request.json"
    ).exists()  # in the state dir, not /tmp


@pytest.mark.slow  # trains a LoRA adapter in a worker process
def test_a_ctrl_c_reaching_the_training_process_does_not_fail_the_job(tiny_model, tmp_path):
    """Ctrl-C in a terminal reaches every process of its group, the training worker too: the worker
    leaves it to the backend, so the job trains on (and an interrupted `emotune run` resumes it)."""
    import signal

    with LocalServer(tmp_path / "state", base_models=[str(tiny_model)]) as srv:
        c = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        job = training_job(c, tiny_model, n_epochs=5)
        found = training_workers(tmp_path)
        assert found, "the job trains in its own process"
        for worker in found:
            worker.send_signal(signal.SIGINT)
        job = wait_job(c, job.id, 240)
        assert job.status == "succeeded", job.error
        assert len(c.fine_tuning.jobs.checkpoints.list(job.id).data) == 3
