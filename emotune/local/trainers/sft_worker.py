"""One LoRA fine-tuning job in its own process, on Hugging Face's maintained trainer stack.

    python -m emotune.local.trainers.sft_worker JOB_DIR

``JOB_DIR/request.json`` says what to train (written by :class:`.open_weights.OpenWeightsTrainer`);
the worker trains with TRL's ``SFTTrainer`` and a PEFT LoRA adapter, loss on the assistant's answer
only (the examples are prompt/completion pairs), gradient accumulation, a linear learning-rate
schedule, bf16 where the GPU supports it, and writes one JSON line per event to stdout: ``step``
(training loss and token accuracy), ``eval`` (validation loss and accuracy), ``checkpoint`` (an
adapter folder per epoch, under ``JOB_DIR/checkpoints``), ``done``. The parent turns those into the
job's events and result file; memory goes back to the system when the process ends, and cancelling
the job kills it.

The same module runs on several GPUs or nodes unchanged: ``accelerate launch -m
emotune.local.trainers.sft_worker JOB_DIR`` (accelerate's own launcher does the distribution).
"""

from __future__ import annotations

import json
import math
import signal
import sys
from pathlib import Path

MICRO_BATCH = 8  # examples per forward pass; a larger batch_size accumulates gradients over several
# Set by `emotune run` while it tracks the run in MLflow (emotune/tracking.py): transformers' own
# MLflowCallback then logs loss and learning rate per step into that store, under this run name.
TRACKING_RUN = "EMOTUNE_MLFLOW_TRAINING_RUN"


def _report_to() -> list[str]:
    from importlib.util import find_spec

    from emotune.core.config import env

    return ["mlflow"] if env(TRACKING_RUN) and find_spec("mlflow") else []


def _tracking_run() -> str | None:
    from emotune.core.config import env

    return env(TRACKING_RUN)


def _emit(kind: str, **data) -> None:
    print(json.dumps({"type": kind, **data}), flush=True)


def _pairs(conversations: list[list[dict]]) -> list[dict]:
    """Prompt/completion pairs: the completion (the last assistant message) is all the loss sees."""
    return [{"prompt": list(c[:-1]), "completion": [c[-1]]} for c in conversations]


def main(job_dir: str) -> int:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    root = Path(job_dir)
    req = json.loads((root / "request.json").read_text())
    hp, seed = req["hyperparameters"], int(req["seed"])
    tok = AutoTokenizer.from_pretrained(req["base"], local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        req["base"], local_files_only=True, dtype=torch.float32
    )
    train = Dataset.from_list(_pairs(req["train"]))
    valid = Dataset.from_list(_pairs(req["valid"])) if req["valid"] else None
    batch = int(hp["batch_size"])
    micro = min(batch, MICRO_BATCH)
    accumulation = math.ceil(batch / micro)
    steps_per_epoch = math.ceil(len(train) / (micro * accumulation))
    total = steps_per_epoch * int(hp["n_epochs"])
    mps = getattr(torch.backends, "mps", None)
    gpu = torch.cuda.is_available() or bool(mps is not None and mps.is_available())
    args = SFTConfig(
        output_dir=str(root / "checkpoints"),
        num_train_epochs=int(hp["n_epochs"]),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        per_device_eval_batch_size=micro,
        learning_rate=float(req["learning_rate"]),
        lr_scheduler_type="linear",
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        eval_strategy="steps" if valid is not None else "no",
        eval_steps=max(1, total // 5),  # five validation points: each costs a pass over it
        save_strategy="epoch",
        save_only_model=True,
        report_to=_report_to(),
        run_name=_tracking_run(),
        disable_tqdm=True,
        max_length=1024,
        completion_only_loss=True,
        bf16=req.get("dtype")
        == "bfloat16",  # mixed precision (autocast), on a GPU or a bf16 CPU alike
        fp16=req.get("dtype") == "float16" and gpu,
        use_cpu=not gpu,
        dataloader_num_workers=0,
        gradient_checkpointing=False,
    )

    class Events(TrainerCallback):
        def on_log(self, _args, state, _control, logs=None, **_kw):
            logs = logs or {}
            epoch = max(1, math.ceil(state.epoch or 1))
            if "loss" in logs:
                _emit(
                    "step",
                    step=state.global_step,
                    total_steps=total,
                    epoch=epoch,
                    train_loss=float(logs["loss"]),
                    train_accuracy=float(logs.get("mean_token_accuracy", 0.0)),
                )
            if "eval_loss" in logs:
                _emit(
                    "eval",
                    step=state.global_step,
                    valid_loss=float(logs["eval_loss"]),
                    valid_accuracy=float(logs.get("eval_mean_token_accuracy", 0.0)),
                )

        def on_save(self, _args, state, _control, **_kw):
            _emit(
                "checkpoint",
                step=state.global_step,
                path=str(root / "checkpoints" / f"checkpoint-{state.global_step}"),
            )

    lora = LoraConfig(
        r=req["lora_r"],
        lora_alpha=req["lora_alpha"],
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=valid,
        processing_class=tok,
        peft_config=lora,
        callbacks=[Events()],
    )
    trainer.train()
    tokens = sum(len(x) for x in trainer.train_dataset["input_ids"]) * int(hp["n_epochs"])
    _emit("done", trained_tokens=tokens)
    return 0


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches every process of its group. The worker leaves it to the local
    # backend that started it: a cancel kills the worker, and when the backend itself stops, the
    # worker's output closes (it ends at its next line) and the job, still open in the state
    # directory, trains again when the backend starts next. Were the worker to die of the Ctrl-C
    # first, the backend would record the job as failed and an interrupted run could not resume.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(main(sys.argv[1]))
