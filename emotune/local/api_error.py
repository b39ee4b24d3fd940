"""Errors the local backend answers in OpenAI's wire shape: ``{"error": {"message", "type", "param",
"code"}}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered with OpenAI's status and body; never raised to a client as an exception."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status,
            message,
            type_,
            param,
            code,
        )
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
