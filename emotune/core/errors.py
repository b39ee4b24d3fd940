"""The exception tree. Library code raises these; notebooks and the CLI show them.

    EmotuneError
    ├── ConfigError             a setting is missing or wrong (names it)
    ├── DataError               input data breaks a rule (names file, line and rule)
    │   └── ChecksumError       a known file does not match its published sha256
    ├── BudgetError             an estimate exceeds the budget; nothing was spent
    ├── LifecycleError          the model or date rules the request out (wind-down)
    ├── BackendError            the API answered with an error we cannot recover from
    │   └── PredictionError     predictions failed after retries (answers are cached)
    ├── JobError                a fine-tuning job failed or was cancelled
    └── NotebookFailed          a notebook raised (names it and the cell)

Every exception emotune raises on purpose is one of these; the CLI prints them as one line and exits
2. The local server answers its own errors in OpenAI's wire shape and never raises them to a client.
"""

from __future__ import annotations


class EmotuneError(Exception):
    """Root of every error emotune raises on purpose."""


class ConfigError(EmotuneError):
    """A setting is missing or wrong."""


class DataError(EmotuneError):
    """Input data breaks a rule; the message names file, line and rule."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        rule: str | None = None,
    ):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        tag = f" [{rule}]" if rule else ""
        super().__init__(f"{where}{message}{tag}")
        self.path, self.line, self.rule = path, line, rule


class ChecksumError(DataError):
    """A file with a published checksum does not match it."""


class BudgetError(EmotuneError):
    """The estimated cost exceeds the budget; raised before anything is spent."""


class LifecycleError(EmotuneError):
    """The chosen model or today's date makes the request impossible."""


class BackendError(EmotuneError):
    """The API answered with an error that retrying will not fix."""


class JobError(EmotuneError):
    """A fine-tuning job ended failed or cancelled."""


class PredictionError(BackendError):
    """Some predictions failed after retries; the answered ones are cached and a re-run asks only
    for the
    rest."""


class NotebookFailed(EmotuneError):
    """A notebook in the series raised; the message names the notebook and the failing cell."""


def shown_value(value: object) -> str:
    """A value as an error line quotes it: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"
