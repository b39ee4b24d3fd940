"""Request bodies the local backend accepts, as typed models with OpenAI's limits.

Every body is parsed here before anything is acted on; a body that does not fit is a 400 in OpenAI's
shape naming the parameter. Unknown but valid OpenAI parameters are accepted and ignored, as OpenAI does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .api_error import ApiError

ID_MAX = 256  # longer ids and model names are refused before any lookup
SUFFIX_PATTERN = r"^[A-Za-z0-9_.-]*$"  # OpenAI's suffix: at most 64 characters, no separators or paths
MAX_EPOCHS = 50
MAX_BATCH_SIZE = 256
MAX_LR_MULTIPLIER = 100.0

Auto = Literal["auto"]
# pydantic names the member of a union that failed ("int", "literal['auto']"); a client needs the field only
_TYPE_TAG = re.compile(r"^(str|int|float|bool|none|list|dict|[a-z-]+\[.*\]|constrained-\w+|function-\w+)$")
ShortText = Annotated[str, Field(min_length=1, max_length=ID_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _parts_hold_text(cls, value):
        if isinstance(value, list):
            for part in value:
                if part.get("type") == "text" and not isinstance(part.get("text"), str):
                    raise ValueError("a text content part needs a string 'text'")
        return value


class ChatRequest(_Body):
    model: ShortText
    messages: list[Message] = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=1)  # the local backend answers n=1 (null means 1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    response_format: dict[str, Any] | None = None
    stream: bool | None = None
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def messages_as_dicts(self) -> list[dict]:
        return [m.model_dump(exclude_none=True) for m in self.messages]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = "auto"
    batch_size: Auto | Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=MAX_LR_MULTIPLIER)] = "auto"


class Supervised(BaseModel):
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    type: Literal["supervised"]
    supervised: Supervised = Field(default_factory=Supervised)


class JobRequest(_Body):
    model: ShortText
    training_file: ShortText
    validation_file: ShortText | None = None
    suffix: Annotated[str, Field(max_length=64, pattern=SUFFIX_PATTERN)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None

    def resolved_hyperparameters(self) -> dict:
        hp = self.method.supervised.hyperparameters if self.method else (self.hyperparameters or Hyperparameters())
        return hp.model_dump()


class BatchRequest(_Body):
    input_file_id: ShortText
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"] = "24h"
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16)


def parse(kind: type[_Body] | type[BaseModel], body: Any):
    """A typed request from a decoded JSON body, or an OpenAI-shaped 400 naming the first bad parameter."""
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not _TYPE_TAG.match(str(p))) or None
        raise ApiError(400, f"Invalid value for '{param}': {first['msg']}.", param=param,
                       code="invalid_value") from None
