"""emotune's local OpenAI-compatible backend: a real HTTP server that stores files, runs fine-tuning
jobs with a real (classical) learner, and answers chat completions and batches.

It is a stand-in for OpenAI, not an LLM: the "base model" is a zero-shot label-word matcher and a
fine-tuned model is a TF-IDF + multi-label logistic regression trained on your JSONL. Every response
says so in ``system_fingerprint`` (``emotune-local-...``).
"""

from .app import create_app
from .server import LocalServer, serve

__all__ = ["LocalServer", "create_app", "serve"]
