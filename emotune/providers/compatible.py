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
MODELS_SHOWN = 20  # the manifest keeps this many of the server's model names


def discover(client) -> dict:
    """What the server behind ``client`` runs: each probe's HTTP status (or the connection error),
    and the names of the models it lists."""
    import httpx
    import openai

    found: dict = {}
    for capability, path in [*PROBES.items(), ("models", "/models")]:
        try:
            response = client.with_options(max_retries=1, timeout=PROBE_TIMEOUT_S).get(
                path, cast_to=httpx.Response
            )
            found[capability] = response.status_code
            if capability == "models" and response.status_code == 200:
                names = [m.get("id") for m in response.json().get("data", [])]
                found["model_names"] = [str(n) for n in names if n][:MODELS_SHOWN]
        except openai.APIStatusError as exc:  # 404: the server has no such route
            found[capability] = exc.status_code
        except Exception as exc:  # no answer at all means "not here" too; the reason is kept
            found[capability] = f"{type(exc).__name__}: {str(exc)[:200]}"
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

            raise ConfigError(
                f"the server at {self.base_url} runs no fine-tuning jobs (asked: GET "
                f"{PROBES['fine_tuning']} answered {(self.discovered or {}).get('fine_tuning', 'nothing')}); "
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
