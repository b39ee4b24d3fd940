"""On-disk state of the local backend: files, jobs, events, models and batches, one JSON record
each.

Everything lives under one state directory, so a model trained in one process answers in the next.
Writes are atomic (temp file + rename) and serialised by one lock.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from pathlib import Path

from ..core.runs import atomic_write_bytes, atomic_write_json

log = logging.getLogger("emotune.local")
KINDS = ("files", "jobs", "batches", "models")
# Ids and model names become file names (``<id>.json``, and ``.<id>.json.<random>.tmp`` while
# written): 200 characters leave room under the 255-byte name limit of common file systems.
ID_MAX = 200
RECORD_ID = re.compile(
    rf"^[A-Za-z0-9_][A-Za-z0-9_:.~-]{{0,{ID_MAX - 1}}}$"
)  # checked before any disk access


class NotRegularFile(FileNotFoundError):
    """A path in the state directory that is a link, a FIFO, a device or a folder: never read or
    written."""


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """A descriptor for ``path`` only if it is a regular file reached without following a link; a
    FIFO is opened without blocking, then refused like every other kind of file, with a log line
    naming it."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        fd = None
    if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    if fd is not None:
        os.close(fd)
    log.error(
        "refused %s: not a regular file (a link, FIFO, device or folder was planted there)",
        path.name,
    )
    raise NotRegularFile(errno.ENOENT, "not a regular file", str(path.name))


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as f:
        return f.read()


def append_regular(path: Path):
    """A text handle appending to a regular file, created if missing (see :func:`open_regular`)."""
    return os.fdopen(
        open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", encoding="utf-8"
    )


def new_id(prefix: str) -> str:
    """An OpenAI-style id: ``file-…``, ``ftjob-…``, ``batch_…``."""
    return f"{prefix}{secrets.token_hex(12)}"


def public(record: dict) -> dict:
    """A record as the API shows it: without the store's private ``_`` fields."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


class Store:
    """Records and blobs under ``state_dir``."""

    def __init__(self, state_dir: str | Path):
        self.root = Path(state_dir)
        for kind in (*KINDS, "blobs", "events", "weights"):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._seq = 0
        self._clean_partial_writes()

    def _clean_partial_writes(self) -> None:
        """Remove the temporary files of writes a crash cut short (an upload's can be large)."""
        for tmp in self.root.glob("*/.*.tmp"):
            tmp.unlink(missing_ok=True)
            log.warning(
                "removed %s, a write cut short by an earlier crash", tmp.relative_to(self.root)
            )

    def _read(self, path: Path) -> dict | None:
        """A record file, or None after moving a corrupt one aside (``*.corrupt``) with a log line
        naming it."""
        try:
            record = json.loads(read_regular(path).decode("utf-8"))
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                return record
            problem = "not a record object"
        except NotRegularFile:
            return None  # logged; a planted link is never followed, nor moved (that would follow it too)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        log.error(
            "moved corrupt record %s aside to %s (%s); the server goes on without it",
            path.relative_to(self.root),
            aside.name,
            problem,
        )
        return None

    def scrub(self, text: str) -> str:
        """A message without the server's own paths (answers name ``<state>``, never where it
        lives on
        disk)."""
        for root in sorted({str(self.root.resolve()), str(self.root)}, key=len, reverse=True):
            text = text.replace(root, "<state>")
        return text

    def next_seq(self) -> int:
        """A per-process sequence number that orders records created within the same second."""
        with self.lock:
            self._seq += 1
            return self._seq

    # records -------------------------------------------------------------------------------
    def _path(self, kind: str, rid: str) -> Path:
        if not isinstance(rid, str) or not RECORD_ID.match(rid) or ".." in rid:
            raise KeyError(rid)
        return self.root / kind / f"{rid.replace(':', '~')}.json"

    def put(self, kind: str, record: dict) -> dict:
        with self.lock:
            atomic_write_json(self._path(kind, record["id"]), record)
        return record

    def get(self, kind: str, rid: str) -> dict | None:
        try:
            path = self._path(kind, rid)
        except KeyError:
            return None
        with self.lock:
            if not path.exists():
                return None
            return self._read(path)

    def update(self, kind: str, rid: str, **changes) -> dict:
        with self.lock:
            record = self.get(kind, rid)
            if record is None:
                raise KeyError(rid)
            record.update(changes)
            return self.put(kind, record)

    def delete(self, kind: str, rid: str) -> bool:
        with self.lock:
            path = self._path(kind, rid)
            if not path.exists():
                return False
            path.unlink()
            return True

    def all(self, kind: str) -> list[dict]:
        """Every record of a kind, newest first (ties broken by id for a stable order)."""
        with self.lock:
            records = [
                r for p in (self.root / kind).glob("*.json") if (r := self._read(p)) is not None
            ]
        return sorted(
            records, key=lambda r: (r.get("created_at", 0), r.get("_seq", 0), r["id"]), reverse=True
        )

    # blobs ----------------------------------------------------------------------------------
    def write_blob(self, rid: str, data: bytes) -> Path:
        return atomic_write_bytes(self.root / "blobs" / rid, data)

    def read_blob(self, rid: str) -> bytes:
        return read_regular(self.root / "blobs" / rid)

    def delete_blob(self, rid: str) -> None:
        (self.root / "blobs" / rid).unlink(missing_ok=True)

    # events ---------------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        data: dict | None = None,
        type_: str = "message",
    ) -> dict:
        event = {
            "id": new_id("ftevent-"),
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "data": data or {},
            "type": type_,
        }
        with self.lock, append_regular(self.root / "events" / f"{job_id}.jsonl") as f:
            f.write(json.dumps(event) + "\n")
        return event

    def events(self, job_id: str) -> list[dict]:
        """A job's events, oldest first."""
        path = self.root / "events" / f"{job_id}.jsonl"
        with self.lock:
            if not path.exists():
                return []
            out = []
            for line in read_regular(path).decode("utf-8", errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except (
                    json.JSONDecodeError
                ):  # a line cut short by a crash: the other events still count
                    log.warning("skipped a damaged line in events/%s.jsonl", job_id)
            return out

    def clear_events(self, job_id: str) -> None:
        with self.lock:
            (self.root / "events" / f"{job_id}.jsonl").unlink(missing_ok=True)

    def weights_dir(self, name: str) -> Path:
        path = self.root / "weights" / name.replace(":", "~")
        path.mkdir(parents=True, exist_ok=True)
        return path
