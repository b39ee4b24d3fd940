"""The local backend apart from HTTP: one service per resource over one store, and the two workers.

    Engine
    ├── files     Files     uploads and the files the backend writes
    ├── models    Models    what is served and the model behind each name
    ├── chat      Chat      chat completions
    ├── jobs      Jobs      fine-tuning jobs (worker: validate, train, publish)
    └── batches   Batches   batch requests (worker: answer each line)

Each worker runs one item at a time in its own thread; an item that raises fails itself, never the
worker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .batches import Batches
from .chat import Chat
from .files import Files
from .jobs import Jobs
from .models import Models
from .store import Store


class Engine:
    """The local backend's state and workers. Thread-safe; one per state directory."""

    def __init__(self, state_dir, *, max_upload_bytes: int = 512 * 1024 * 1024, base_models=()):
        self.store = Store(state_dir)
        self.max_upload_bytes = max_upload_bytes
        self._queues: dict[str, queue.Queue[str | None]] = {
            "jobs": queue.Queue(),
            "batches": queue.Queue(),
        }
        self.files = Files(self.store, max_upload_bytes)
        self.models = Models(self.store, base_models)
        self.chat = Chat(self.models)
        self.jobs = Jobs(self.store, self.files, self.models, self._queues["jobs"].put)
        self.batches = Batches(self.store, self.files, self.chat, self._queues["batches"].put)
        self._threads = [
            threading.Thread(
                target=self._work,
                args=(self._queues[name], fn),
                daemon=True,
                name=f"emotune-{name}",
            )
            for name, fn in (("jobs", self.jobs.run), ("batches", self.batches.run))
        ]
        for t in self._threads:
            t.start()
        self.jobs.recover()
        self.batches.recover()

    def close(self) -> None:
        for q in self._queues.values():
            q.put(None)

    @staticmethod
    def _work(q: queue.Queue, fn: Callable[[str], None]) -> None:
        while (item := q.get()) is not None:
            fn(item)
