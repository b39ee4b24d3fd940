"""Dynamic batching for a served language model.

Concurrent greedy requests for the same model wait a few milliseconds on a queue; one worker thread
takes up to :data:`MAX_BATCH` of them and answers them with one padded ``generate`` call, so 32
requests in flight cost about one forward pass per token instead of 32
(benchmarks/bench_open_weights.py). Each caller gets its own answer back through a future; an error
in a batch fails exactly that batch's requests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

MAX_BATCH = 32
WAIT_S = 0.01  # how long the first request of a batch waits for company


class Batcher:
    """Gathers ``(prompt ids, token limit, grammar or None)`` requests and answers them in
    batches with
    ``run_batch``."""

    def __init__(
        self,
        run_batch: Callable[[list[tuple[list[int], int, object]]], list[tuple[list[int], str]]],
        max_batch: int = MAX_BATCH,
        wait_s: float = WAIT_S,
    ):
        self.run_batch, self.max_batch, self.wait_s = run_batch, max_batch, wait_s
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.stats = {"batches": 0, "requests": 0, "largest": 0}

    def submit(
        self, prompt: list[int], limit: int, grammar: object = None
    ) -> tuple[list[int], str]:
        """The new token ids and the finish reason for one prompt (blocks until its batch is
        done)."""
        future: Future = Future()
        self._queue.put((prompt, limit, grammar, future))
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._loop, name="emotune-batcher", daemon=True
                )
                self._worker.start()
        return future.result()

    def _take(self) -> list:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            try:
                answers = self.run_batch(
                    [(prompt, limit, grammar) for prompt, limit, grammar, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
                for *_, future in batch:
                    future.set_exception(exc)
                continue
            self.stats["batches"] += 1
            self.stats["requests"] += len(batch)
            self.stats["largest"] = max(self.stats["largest"], len(batch))
            for (*_, future), answer in zip(batch, answers, strict=True):
                future.set_result(answer)
