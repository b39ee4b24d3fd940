"""Request bodies the local backend accepts, as typed models with OpenAI's limits.

Every body is parsed here before anything is acted on; a body that does not fit is a 400 in OpenAI's
shape naming the parameter. Unknown but valid OpenAI parameters are accepted and ignored, as OpenAI
does.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .api_error import ApiError
from .store import ID_MAX  # longer ids and model names are refused before any lookup

# OpenAI's suffix: at most 64 characters, no separators or paths; not dots alone ("." and ".." name
# folders)
SUFFIX_PATTERN = r"^([A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*)?$"
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's pattern for function and json_schema names
MAX_EPOCHS = 50
MAX_BATCH_SIZE = 256
MAX_LR_MULTIPLIER = 100.0
# What one chat request may cost, decided before any work (a request over a limit is a 400):
MAX_OUTPUT_TOKENS = 32_768  # max_completion_tokens / max_tokens (gpt-4.1's most completion tokens)
MAX_REQUEST_OUTPUT_TOKENS = 32_768  # n x the completion limit (the model's default when unset)
# a stand-in's answer laid into a schema or tool call stops here when the request sets no limit
STRUCTURED_COMPLETION_TOKENS = 2048
MAX_PROMPT_CHARS = 1_048_576  # the messages' text, measured before it is tokenized
MAX_PROMPT_TOKENS = 128_000  # the local backend's context window (gpt-4o-mini's)

Auto = Literal["auto"]
# pydantic names the member of a union that failed ("int", "literal['auto']"); a client needs the
# field only
_TYPE_TAG = re.compile(
    r"^(str|int|float|bool|none|list|dict|[a-z-]+\[.*\]|constrained-\w+|function-\w+)$"
)
ShortText = Annotated[str, Field(min_length=1, max_length=ID_MAX)]


class ParamError(ValueError):
    """A rule across parameters, naming the one to fix."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


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


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(max_length=64, pattern=NAME_PATTERN)]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self):
        if self.type == "json_schema" and self.json_schema is None:
            raise ParamError(
                "response_format.json_schema",
                "response_format of type 'json_schema' needs a 'json_schema' object",
            )
        return self


class Function(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(max_length=64, pattern=NAME_PATTERN)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: Function


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None


class ChatRequest(_Body):
    """A chat completion request: the parameters the local backend acts on; other valid ones are
    ignored."""

    model: ShortText
    messages: list[Message] = Field(min_length=1)
    n: Annotated[int, Field(ge=1, le=128)] | None = None  # null means 1
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    response_format: ResponseFormat | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: (
        Annotated[str, Field(max_length=1000)]
        | Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=4)]
        | None
    ) = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**64 - 1)] | None = None  # OpenAI's range, any sign
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    _bound: Any = PrivateAttr(default=None)  # what Chat.check decided, so it is decided once

    @model_validator(mode="after")
    def _consistent(self):
        if self.stream_options is not None and not self.stream:
            raise ParamError(
                "stream_options",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled",
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise ParamError("top_logprobs", "'top_logprobs' needs 'logprobs' set to true")
        if isinstance(self.tool_choice, NamedToolChoice) or self.tool_choice == "required":
            names = {t.function.name for t in self.tools or []}
            if not names:
                raise ParamError("tool_choice", "'tool_choice' needs 'tools'")
            if (
                isinstance(self.tool_choice, NamedToolChoice)
                and self.tool_choice.function.name not in names
            ):
                raise ParamError(
                    "tool_choice",
                    f"tool_choice names '{self.tool_choice.function.name}', which is not in "
                    "'tools'",
                )
        return self

    @property
    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop or [] if s]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def format_dict(self) -> dict | None:
        """``response_format`` as the plain dict the models read (``schema`` under its wire
        name)."""
        return (
            self.response_format.model_dump(by_alias=True, exclude_none=True)
            if self.response_format
            else None
        )

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
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(default=None, max_length=16)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None

    def resolved_hyperparameters(self) -> dict:
        hp = (
            self.method.supervised.hyperparameters
            if self.method
            else (self.hyperparameters or Hyperparameters())
        )
        return hp.model_dump()


class BatchRequest(_Body):
    input_file_id: ShortText
    endpoint: Literal["/v1/chat/completions"]
    completion_window: Literal["24h"] = "24h"
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(default=None, max_length=16)


def parse(kind: type[_Body] | type[BaseModel], body: Any):
    """A typed request from a decoded JSON body, or an OpenAI-shaped 400 naming the first bad
    parameter."""
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        rule = (first.get("ctx") or {}).get("error")
        if isinstance(rule, ParamError):
            raise ApiError(400, f"{rule}.", param=rule.param, code="invalid_value") from None
        param = ".".join(str(p) for p in first["loc"] if not _TYPE_TAG.match(str(p))) or None
        raise ApiError(
            400, f"Invalid value for '{param}': {first['msg']}.", param=param, code="invalid_value"
        ) from None
