"""Files: upload, list, read and delete, as OpenAI's /v1/files does."""

from __future__ import annotations

import time

from ..core.openai_spec import FILE_PURPOSES
from .api_error import ApiError
from .store import Store, new_id, public


class Files:
    """Uploaded files and the files the backend writes (result CSVs, batch outputs)."""

    def __init__(self, store: Store, max_upload_bytes: int):
        self.store, self.max_upload_bytes = store, max_upload_bytes

    def create(self, filename: str, purpose: str, data: bytes) -> dict:
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        if len(data) > self.max_upload_bytes:
            raise ApiError(
                413,
                f"File is too large: {len(data)} bytes; the limit is {self.max_upload_bytes} "
                "bytes.",
                param="file",
                code="file_too_large",
            )
        record = {
            "id": new_id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename[:256],
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
            "_seq": self.store.next_seq(),
        }
        self.store.write_blob(record["id"], data)
        return public(self.store.put("files", record))

    def get(self, file_id: str) -> dict:
        record = self.store.get("files", file_id)
        if record is None:
            raise ApiError(
                404, f"No such File object: {file_id}", param="id", code="file_not_found"
            )
        return public(record)

    def list(self, purpose: str | None = None) -> list[dict]:
        return [public(r) for r in self.store.all("files") if purpose in (None, r["purpose"])]

    def content(self, file_id: str) -> bytes:
        self.get(file_id)
        try:
            return self.store.read_blob(file_id)
        except (
            FileNotFoundError
        ):  # missing, or not a regular file (a planted link or FIFO: never read)
            raise ApiError(
                404, f"The content of {file_id} is missing", param="id", code="file_not_found"
            ) from None

    def delete(self, file_id: str) -> dict:
        self.get(file_id)
        self.store.delete("files", file_id)
        self.store.delete_blob(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    def require(self, file_id: str | None, purpose: str, param: str) -> dict:
        """A file a job or batch refers to, with the purpose it must have (400 otherwise)."""
        record = self.store.get("files", file_id or "")
        if record is None:
            raise ApiError(400, f"invalid {param}: {file_id}", param=param, code="invalid_file")
        if record["purpose"] != purpose:
            raise ApiError(
                400,
                f"File {file_id} has purpose {record['purpose']!r}; this needs {purpose!r}.",
                param=param,
            )
        return record
