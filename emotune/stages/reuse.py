"""Results several runs of a sweep would compute alike, computed once: kept on disk under the
folder ``EMOTUNE_SHARED_DIR`` names (``emotune sweep`` sets it to its ``shared/`` folder for every
run it starts), keyed by a hash of everything the result depends on. Without the variable nothing
is kept and every call computes.

The free baseline's answers are the case: runs at the same ``n_train`` and seed that differ only in
what the fine-tune does (epochs, prompt, learning rate) train it on the same comments and would fit
the same TF-IDF learner again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..core.config import env
from ..core.runs import atomic_write_json

SHARED_ENV = "EMOTUNE_SHARED_DIR"


def shared_dir() -> Path | None:
    value = env(SHARED_ENV)
    return Path(value) if value else None


def content_key(*parts: Any) -> str:
    """A sha256 of the parts as JSON (frames as their records): equal inputs, equal key."""
    digest = hashlib.sha256()
    for part in parts:
        if hasattr(part, "to_json"):
            part = part.to_json(orient="records", force_ascii=False)
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def reused(kind: str, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON-able result, read from the shared folder when a run computed it
    before, else computed and kept there (written whole or not at all)."""
    folder = shared_dir()
    if folder is None:
        return compute()
    path = folder / kind / f"{key}.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        pass  # not computed yet (or cut short): compute it
    value = compute()
    with suppress(OSError):  # a folder that cannot be written costs the next run this computation
        atomic_write_json(path, value)
    return value
