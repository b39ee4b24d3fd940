"""Pricing and lifecycle of fine-tunable models, and the epoch heuristic (more arrives with notebook 03)."""

from __future__ import annotations

# OpenAI's default-epochs rule, as the openai-cookbook's Chat_finetuning_data_prep states it (2024-2026):
# aim for 3 epochs, but keep n_examples x epochs within [100, 25,000] and epochs within [1, 25].
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def default_epochs(n_examples: int) -> int:
    """Epochs OpenAI picks for ``n_epochs="auto"``."""
    if n_examples <= 0:
        raise ValueError("n_examples must be positive")
    epochs = TARGET_EPOCHS
    if n_examples * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, -(-MIN_TARGET_EXAMPLES // n_examples))
    elif n_examples * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs
