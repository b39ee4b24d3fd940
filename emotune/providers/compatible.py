"""Any other OpenAI-compatible server (vLLM, a gateway, ``emotune serve`` on another machine...):
never priced, and asked what it runs.

Chosen when ``OPENAI_BASE_URL`` points somewhere other than OpenAI. emotune does not know its prices
or its lifecycle, so it neither prices it as OpenAI nor applies OpenAI's wind-down dates. Whether
it runs fine-tuning jobs and batches is discovered, not assumed: once per run the provider lists
one job, one batch and the models (``GET /fine_tuning/jobs?limit=1``, ``GET /batches?limit=1``,
``GET /models``), records the answers in the manifest, and uses jobs and batches where the server
answered 200. A chat-only server (most vLLM set-ups) answers 404 and fine-tunes nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Provider

PROBES = {"fine_tuning": "/fine_tuning/jobs?limit=1", "batches": "/batches?limit=1"}
PROBE_TIMEOUT_S = 10.0
PROBE_MAX_BYTES = 1024 * 1024  # a list of models fits; an endless answer is cut off
MODELS_SHOWN = 20  # the manifest keeps this many of the server's model names


def discover(client) -> dict:
    """What the server behind ``client`` runs: each probe's HTTP status (or why it gave none), and
    the names of the models it lists. Each probe has its own deadline and reads at most
    ``PROBE_MAX_BYTES`` of the answer, whatever the server sends."""
    import json
    import time

    import httpx

    found: dict = {}
    base = str(client.base_url).rstrip("/")
    headers = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(timeout=PROBE_TIMEOUT_S, headers=headers) as http:
        for capability, path in [*PROBES.items(), ("models", "/models")]:
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            try:
                with http.stream("GET", base + path) as response:
                    found[capability] = response.status_code
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > PROBE_MAX_BYTES:
                            raise ValueError(f"answer over {PROBE_MAX_BYTES} bytes")
                        if time.monotonic() > deadline:
                            raise ValueError(f"answer still coming after {PROBE_TIMEOUT_S:.0f} s")
            except (httpx.HTTPError, ValueError) as exc:  # no usable answer: "not here"
                found[capability] = f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            if capability == "models" and found[capability] == 200:
                try:
                    listed = json.loads(body).get("data", [])
                    names = [
                        str(m.get("id")) for m in listed if isinstance(m, dict) and m.get("id")
                    ]
                except (ValueError, AttributeError):
                    names = []
                found["model_names"] = names[:MODELS_SHOWN]
    return found


@dataclass
class CompatibleProvider(Provider):
    kind = "compatible"
    discovered: dict | None = None

    @classmethod
    def build(cls, options: dict, *, run=None, state_dir=None, **local_options) -> Provider:
        """The client, and what the server runs: asked once per run (a re-run reads the
        manifest)."""
        provider = super().build(options, run=run)
        provider.discovered = provider._recorded(run) or discover(provider.client)
        provider.fine_tuning = provider.discovered.get("fine_tuning") == 200
        provider.batches = provider.discovered.get("batches") == 200
        return provider

    def _recorded(self, run) -> dict | None:
        record = run.get("backend") if run is not None else None
        if not isinstance(record, dict):
            return None
        same = record.get("kind") == self.kind and record.get("base_url") == self.base_url
        return record.get("discovered") if same else None

    def check_can_fine_tune(self, model: str, today=None) -> None:
        """One line when the server was found to run no fine-tuning jobs."""
        if not self.fine_tuning:
            from ..core.errors import ConfigError

            answered = (self.discovered or {}).get("fine_tuning", "nothing")
            raise ConfigError(
                f"the server at {self.base_url} runs no fine-tuning jobs (asked: GET "
                f"{PROBES['fine_tuning']} answered {answered}); "
                "fine-tune with backend='local' (free, offline), on a server that runs jobs "
                "(`emotune serve`), or with backend='openai', then evaluate here"
            )

    def runs(self) -> str:
        """What the server was found to run, in a few words."""
        runs = [
            what
            for what, yes in (("fine-tuning jobs", self.fine_tuning), ("batches", self.batches))
            if yes
        ]
        return " and ".join(runs) if runs else "chat only: no fine-tuning jobs, no batches"

    def describe(self, model: str | None = None) -> str:
        return (
            f"OpenAI-compatible server at {self.base_url} (not OpenAI: not priced, no wind-down "
            f"dates; runs {self.runs()})" + (f"; model {model}" if model else "")
        )

    def record(self) -> dict:
        return super().record() | {"discovered": self.discovered}
