"""Typed manifest sections: each has one owner (the stage function that writes it) and a record
type.

``manifest.json`` is the record of a run. Every section below is written only by its owner, through
``Run.put(record)``, and read back by later stages through ``Run.read(RecordType)``, which names the
notebook to run when the section is missing. Notebook cells call stage functions; they never
assemble manifest dicts. Unknown keys in an older manifest are ignored on read, so a manifest stays
readable as fields are added.

    section      record            owner (writes it)                          read by
    backend      BackendRecord     providers.connect                          show, report
    data         DataRecord        data.record_dataset (01)                   show, report
    samples      SamplesRecord     data.save_samples, save_draws (01)         every later notebook
    jsonl        JsonlRecord       examples.build_training_files (02)         03, 05
    validation   ValidationRecord  costs.plan_costs (03)                      show
    estimate     EstimateRecord    costs.plan_costs (03)                      04, 05
    uploads.K    UploadRecord      finetune.upload_once (04)                  finetune (04)
    job          JobRecord         finetune.launch_or_resume, reconcile (04)  evaluate, show, report
    seed_jobs.K  SeedJobRecord     finetune.launch_or_resume,                 evaluate (05)
                                  seeds.train_seed_runs (04)
    batches.K    BatchRecord       batch.upload_batch, classify_batch (05)    batch (05)
    evaluation   EvaluationRecord  evaluate.predict_models, save_predictions,   show, report
                                  verdict.record_evaluation (05)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass
class Record:
    """A manifest section. ``put`` merges the fields that are not None into what is there."""

    section: ClassVar[str] = ""
    written_by: ClassVar[str] = ""  # the notebook whose stage writes it (for "run it first" errors)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass
class BackendRecord(Record):
    section = "backend"
    written_by = "04_launch_job"
    kind: str = ""
    base_url: str = ""
    fine_tuning: bool | None = None
    batches: bool | None = None
    max_retries: int | None = None
    timeout_s: float | None = None
    dtype: str | None = None  # local backend: what open-weights models train and answer in, and why
    gateway: str | None = None  # openai: the gateway OpenAI is reached through (never the key)
    discovered: dict | None = None  # compatible: what the server answered when asked what it runs
    api_version: str | None = None  # azure: the data-plane API version
    deployments: dict | None = None  # azure: model -> deployment, where they differ


@dataclass
class DataRecord(Record):
    section = "data"
    written_by = "01_explore"
    source: str = ""
    checksums: dict = field(default_factory=dict)
    split_sizes: dict = field(default_factory=dict)
    duplicate_ids_across_splits: list = field(default_factory=list)


@dataclass
class SamplesRecord(Record):
    section = "samples"
    written_by = "01_explore"
    train: dict | None = None
    validation: dict | None = None
    eval: dict | None = None
    draws: list | None = None  # the free baseline's extra training draws, by seed


@dataclass
class JsonlRecord(Record):
    section = "jsonl"
    written_by = "02_build_jsonl"
    files: dict = field(default_factory=dict)
    prompt_style: str | None = None
    label_format: str | None = None
    taxonomy: str | None = None
    # PromptSpec.to_record(): what notebook 05 must ask the fine-tuned model with
    prompt_spec: dict | None = None
    seed: int | None = None


@dataclass
class ValidationRecord(Record):
    section = "validation"
    written_by = "03_validate_cost"
    train: str = ""
    val: str = ""
    ok: bool = False
    errors: int = 0
    warnings: int = 0


@dataclass
class EstimateRecord(Record):
    section = "estimate"
    written_by = "03_validate_cost"
    model: str = ""
    pricing: str = ""  # "usd", "compute-seconds" or "not-priced"
    pricing_note: str = ""
    n_examples: int = 0
    n_epochs: int = 0
    tokens_per_epoch: int = 0
    billed_tokens: int = 0
    truncated_examples: int = 0
    training_usd: float | None = None  # None unless priced in dollars
    evaluation: list = field(default_factory=list)
    budget_usd: float | None = None


@dataclass
class UploadRecord(Record):
    section = "uploads"
    written_by = "04_launch_job"
    file_id: str = ""
    sha256: str = ""
    bytes: int = 0
    filename: str = ""


@dataclass
class JobRecord(Record):
    section = "job"
    written_by = "04_launch_job"
    id: str = ""
    adopted: bool | None = None
    created_at: int | None = None
    base_model: str | None = None
    hyperparameters: dict | None = None
    status: str | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    n_epochs: int | str | None = None
    batch_size: int | str | None = None
    learning_rate_multiplier: float | str | None = None
    estimated_billed_tokens: int | None = None
    difference_pct: float | None = None
    training_seconds: int | None = None


@dataclass
class SeedJobRecord(JobRecord):
    """A further training run of the fine-tune, on another draw of training examples
    (``n_seeds``)."""

    section = "seed_jobs"
    seed: int | None = None


@dataclass
class BatchRecord(Record):
    section = "batches"
    written_by = "05_evaluate"
    batch_id: str | None = None
    input_file_id: str | None = None
    sha256: str | None = None
    model: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class EvaluationRecord(Record):
    section = "evaluation"
    written_by = "05_evaluate"
    usage: dict | None = None
    verdict: dict | None = None
    scores: list | None = None
    sample_ids: list | None = None
    # comparator -> predictions/<name>.jsonl (answers by comment id)
    prediction_files: dict | None = None


KEYED = ("uploads", "seed_jobs", "batches")  # sections holding one record per key
