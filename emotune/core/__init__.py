"""The core layer: pure rules and records that every other layer shares (labels, datasets, prompts,
token counting, OpenAI's file rules and model catalogue, manifest records, the run directory). It
imports nothing else of emotune's; see docs/architecture.md."""
