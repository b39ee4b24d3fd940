"""emotune's local OpenAI-compatible backend: a real HTTP server that stores files, runs fine-tuning
jobs, and answers chat completions and batches.

Open-weights models (SmolLM2-135M-Instruct by default) are real LLMs, fine-tuned with LoRA
(:mod:`.trainers`). The model ``stand-in`` and OpenAI model names are answered by a classical
stand-in, not an LLM: the "base model" is a zero-shot label-word matcher and a fine-tuned model is a
TF-IDF + multi-label logistic regression trained on your JSONL. Every response says which in
``system_fingerprint`` (``emotune-local-...``).
"""

from .app import create_app
from .server import LocalServer, serve

__all__ = ["LocalServer", "create_app", "serve"]
