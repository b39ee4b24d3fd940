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
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from openai import BaseModel as _OpenAIType
from openai.types import Batch, FileObject, Model
from openai.types.fine_tuning import FineTuningJob
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint
from pydantic import ValidationError

from ..core.errors import BackendError
from ..core.runs import atomic_write_bytes, atomic_write_json

log = logging.getLogger("emotune.local")
KINDS = ("files", "jobs", "batches", "models")
# A record is what the API shows of it: one the official type cannot hold (a job without ``status``)
# is damaged like a truncated one, and moved aside on read.
SHAPES: dict[str, type[_OpenAIType]] = {
    "files": FileObject,
    "jobs": FineTuningJob,
    "batches": Batch,
    "models": Model,
}
# the store's own fields: what the server reads of them must have the type it reads
PRIVATE = {
    "_seq": (int,),
    "_restarts": (int,),
    "_suffix": (str, type(None)),
    "_cancel_requested": (bool,),
    "_checkpoints": (list,),
}
EVENT_BLOCK = (
    64 * 1024
)  # a job's events are read from the end of their file, this many bytes at a time
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
        for kind in (*KINDS, "blobs", "events", "weights", "training"):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
            if not _real_folder(self.root / kind):  # a link would carry every read and write out
                raise BackendError(
                    f"{kind} in the state directory {self.root} is not a folder (a link was put "
                    "there); remove it"
                )
        self.lock = threading.RLock()
        self._seq = 0
        self.event_bytes_read = 0  # how many bytes of event files were read (events page cheaply)
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
        naming it: cut short, not JSON, or missing a field the API shows (a job without
        ``status``)."""
        try:
            record = json.loads(read_regular(path).decode("utf-8"))
            problem = _shape_problem(path.parent.name, record)
            if problem is None:
                return record
        except NotRegularFile:
            # logged; a planted link is never followed, nor moved (that would follow it too)
            return None
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
    def _path(self, kind: str, rid: str, suffix: str = ".json") -> Path:
        """Where a record (or a job's events, or a model's weights) lives: only for an id the
        store's pattern allows (at most ID_MAX characters, no separators, no ``..``)."""
        if not self.valid_id(rid):
            raise KeyError(rid)
        return self.root / kind / f"{rid.replace(':', '~')}{suffix}"

    @staticmethod
    def valid_id(rid: str) -> bool:
        """Whether ``rid`` can name a record (see :meth:`_path`)."""
        return isinstance(rid, str) and bool(RECORD_ID.match(rid)) and ".." not in rid

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

    def update_if(
        self, kind: str, rid: str, when: Callable[[dict], bool], **changes
    ) -> dict | None:
        """Compare-and-set: apply ``changes`` only if ``when(record)`` holds, reading and writing
        under the one lock; None (nothing written) when it does not or the record is gone."""
        with self.lock:
            record = self.get(kind, rid)
            if record is None or not when(record):
                return None
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
        return sorted(records, key=_newest_first, reverse=True)

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
        with self.lock, append_regular(self._events_path(job_id)) as f:
            f.write(json.dumps(event) + "\n")
        return event

    def events_newest(self, job_id: str) -> Iterator[dict]:
        """A job's events, newest first, read backwards from the end of the append-only file a
        block at a time: the newest page costs the same however many events came before it
        (:attr:`event_bytes_read` counts what was read). A line still being written is left for
        the next read; a damaged one is skipped with a log line."""
        path = self._events_path(job_id)
        try:
            fd = open_regular(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            pos, head, trailing_cut = os.fstat(fd).st_size, b"", False
            while pos > 0:
                size = min(EVENT_BLOCK, pos)
                pos -= size
                block = os.pread(fd, size, pos)
                self.event_bytes_read += len(block)
                lines = (block + head).split(b"\n")
                head = lines.pop(0)  # may begin in the block before this one
                if lines and not trailing_cut:
                    lines.pop()  # after the last newline: empty, or a line still being written
                    trailing_cut = True
                for raw in reversed(lines):
                    if (event := self._event(job_id, raw)) is not None:
                        yield event
            if head and trailing_cut and (event := self._event(job_id, head)) is not None:
                yield event
        finally:
            os.close(fd)

    @staticmethod
    def _event(job_id: str, raw: bytes) -> dict | None:
        try:
            event = json.loads(raw.decode("utf-8"))
            if isinstance(event, dict) and isinstance(event.get("id"), str):
                return event
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            pass
        log.warning("skipped a damaged line in events/%s.jsonl", job_id)
        return None

    def _events_path(self, job_id: str) -> Path:
        return self._path("events", job_id, ".jsonl")

    def clear_events(self, job_id: str) -> None:
        with self.lock:
            self._events_path(job_id).unlink(missing_ok=True)

    def weights_to_load(self, name: str) -> Path:
        """A model's weights folder, only if it and everything in it are real folders and regular
        files: a link, FIFO or device planted there is refused (NotRegularFile, with a log line
        naming it) before any loader opens it."""
        folder = self._path("weights", name, "")
        pending = [folder]
        while pending:
            path = pending.pop()
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise NotRegularFile(errno.ENOENT, "missing", path.name) from None
            if stat.S_ISDIR(mode):
                pending.extend(Path(e.path) for e in os.scandir(path))
            elif not stat.S_ISREG(mode):
                log.error(
                    "refused %s: not a regular file or folder (a link, FIFO or device was planted "
                    "there)",
                    path.relative_to(self.root),
                )
                raise NotRegularFile(errno.ENOENT, "not a regular file", path.name)
        return folder

    def remove_weights(self, name: str) -> None:
        """Remove a model's weights folder (a link there is unlinked, never followed)."""
        path = self._path("weights", name, "")
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)

    def weights_dir(self, name: str) -> Path:
        """The folder a trainer saves a model's weights in: a real folder, never through a link."""
        path = self._path("weights", name, "")
        path.mkdir(parents=True, exist_ok=True)
        if not _real_folder(path):
            log.error("refused weights/%s: not a folder (a link was planted there)", path.name)
            raise NotRegularFile(errno.ENOENT, "not a folder", path.name)
        return path


def _newest_first(record: dict) -> tuple:
    """The sort key of :meth:`Store.all` (a model record's ``created_at`` is not the API's: only
    an integer counts)."""
    when = record.get("created_at", 0)
    return (when if isinstance(when, int) else 0, record.get("_seq", 0), record["id"])


def _real_folder(path: Path) -> bool:
    return stat.S_ISDIR(os.lstat(path).st_mode)


def _shape_problem(kind: str, record) -> str | None:
    """Why ``record`` cannot be served as a ``kind`` record, or None when it can."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return "not a record object"
    for key, kinds in PRIVATE.items():
        if key in record and not isinstance(record[key], kinds):
            return f"{key}: not a {' or '.join(k.__name__ for k in kinds)}"
    try:
        SHAPES[kind].model_validate(public(record))
        for checkpoint in record.get("_checkpoints", []):
            FineTuningJobCheckpoint.model_validate(checkpoint)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"{where}: {first['msg']}"
    return None
