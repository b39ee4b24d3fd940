"""What OpenAI's API says, in one place: status sets, file limits and the default-epochs rule.

Both sides import these: the pipeline (to check files and follow jobs) and the local backend (to
behave as OpenAI does). Prices, token limits per model and lifecycle dates are data, in the model
catalogue (:mod:`emotune.pricing`), not here. Sources: OpenAI's fine-tuning guide and API reference,
and the openai-cookbook's Chat_finetuning_data_prep, read 2026-11.
"""

from __future__ import annotations

MIN_TRAINING_EXAMPLES = 10  # OpenAI rejects a training file with fewer examples
MAX_FILE_BYTES = 512 * 1024 * 1024  # the upload limit for fine-tuning files
JOB_TERMINAL = (
    "succeeded",
    "failed",
    "cancelled",
)  # a fine-tuning job in one of these never changes again
BATCH_TERMINAL = ("completed", "failed", "expired", "cancelled")
FILE_PURPOSES = (
    "fine-tune",
    "batch",
    "fine-tune-results",
    "batch_output",
    "assistants",
    "user_data",
    "evals",
)

# The default-epochs rule for n_epochs="auto": aim for 3 epochs, but keep examples x epochs within
# [100, 25,000] and epochs within [1, 25].
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def default_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks for ``n_epochs="auto"``."""
    if n_examples <= 0:
        from .errors import DataError

        raise DataError(
            f"a training file needs examples, got {n_examples}", rule="too_few_examples"
        )
    epochs = TARGET_EPOCHS
    if n_examples * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, -(-MIN_TARGET_EXAMPLES // n_examples))
    elif n_examples * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs


# emotune's own response header: how many concurrent requests the served model answers in one pass
# (an open-weights model's dynamic batch). Fewer in flight leave batches part empty, so the
# predictor's limiter never lets its concurrency fall below it.
BATCH_HEADER = "x-emotune-batch-size"
