"""OpenAI's rules for chat fine-tuning files, plus this task's own checks, reported by line.

Every rule is one named code in :data:`RULES`, with its severity and a one-line description; the
notebook renders that list. Sources: OpenAI's fine-tuning guide and the openai-cookbook's
Chat_finetuning_data_prep (format checks), read 2026-11.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .openai_spec import MAX_FILE_BYTES, MIN_TRAINING_EXAMPLES
from .prompts import assistant_text, last_user_text, parse_answer
from .taxonomy import DEFAULT, Taxonomy, get_taxonomy
from .tokens import chat_token_parts, encoding_for

ROLES = {"system", "user", "assistant", "tool", "function"}
MESSAGE_KEYS = {
    "role",
    "content",
    "weight",
    "name",
    "tool_calls",
    "tool_call_id",
    "function_call",
    "refusal",
}
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endofprompt|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
)


@dataclass(frozen=True)
class Rule:
    code: str
    severity: (
        str  # "error" (OpenAI rejects the file) or "warning" (it trains, but not as you meant)
    )
    description: str


RULES: tuple[Rule, ...] = (
    Rule("encoding", "error", "the file must be UTF-8"),
    Rule("bom", "error", "the file must not start with a byte-order mark"),
    Rule("file_too_large", "error", "the file must be at most 512 MB"),
    Rule("blank_line", "error", "every line must hold one example; no blank lines"),
    Rule(
        "truncated_last_line", "error", "the last line is cut off (no newline and not valid JSON)"
    ),
    Rule("invalid_json", "error", "every line must be valid JSON"),
    Rule("not_object", "error", "every line must be a JSON object"),
    Rule("missing_messages", "error", "an example needs a 'messages' list"),
    Rule("empty_messages", "error", "'messages' must not be empty"),
    Rule("message_not_object", "error", "every message must be a JSON object"),
    Rule(
        "unknown_role", "error", "role must be system, user, assistant, tool (or legacy function)"
    ),
    Rule(
        "unknown_key",
        "error",
        "message keys: role, content, weight, name, tool_calls, tool_call_id, function_call, "
        "refusal",
    ),
    Rule(
        "missing_content",
        "error",
        "a message needs content (an assistant message may carry tool_calls instead)",
    ),
    Rule("bad_content_type", "error", "content must be a string or a list of content parts"),
    Rule("no_assistant_message", "error", "an example needs at least one assistant message"),
    Rule("bad_weight", "error", "weight must be 0 or 1"),
    Rule("weight_not_assistant", "error", "weight is allowed on assistant messages only"),
    Rule(
        "special_tokens", "error", "content must not contain special tokens such as <|endoftext|>"
    ),
    Rule(
        "too_few_examples",
        "error",
        f"a training file needs at least {MIN_TRAINING_EXAMPLES} examples",
    ),
    Rule(
        "too_many_tokens",
        "warning",
        "an example over the model's token limit is truncated in training",
    ),
    Rule("unknown_label", "warning", "the assistant answer holds a label outside the taxonomy"),
    Rule(
        "unparseable_answer", "warning", "the assistant answer holds no label the parser can read"
    ),
    Rule("duplicate_example", "warning", "the same example appears more than once"),
    Rule(
        "train_val_overlap",
        "warning",
        "the same comment is in the training and the validation file",
    ),
)
RULES_BY_CODE = {r.code: r for r in RULES}


@dataclass(frozen=True)
class Issue:
    code: str
    line: int | None
    message: str

    @property
    def severity(self) -> str:
        return RULES_BY_CODE[self.code].severity


@dataclass
class ValidationReport:
    """What a file breaks, by line, and its token counts by OpenAI's method."""

    path: str
    model: str
    n_examples: int = 0
    issues: list[Issue] = field(default_factory=list)
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    assistant_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    user_texts: list[str] = field(default_factory=list, repr=False)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when OpenAI would accept the file (warnings allowed)."""
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        """One row per rule broken: code, severity, count, first lines, description."""
        rows = []
        for code, issues in _group(self.issues).items():
            lines = [i.line for i in issues if i.line is not None]
            rows.append(
                {
                    "code": code,
                    "severity": RULES_BY_CODE[code].severity,
                    "count": len(issues),
                    "first lines": ", ".join(map(str, lines[:5])),
                    "example": issues[0].message,
                    "rule": RULES_BY_CODE[code].description,
                }
            )
        return pd.DataFrame(
            rows, columns=["code", "severity", "count", "first lines", "example", "rule"]
        )

    def summary(self) -> str:
        name = Path(self.path).name
        return (
            f"{name}: {self.n_examples} examples, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings, "
            f"{int(self.tokens.sum())} tokens ({self.model})"
        )


def _group(issues: list[Issue]) -> dict[str, list[Issue]]:
    out: dict[str, list[Issue]] = {}
    for i in issues:
        out.setdefault(i.code, []).append(i)
    return out


def rules_frame() -> pd.DataFrame:
    """The rules as a table, for the notebook."""
    return pd.DataFrame(
        [{"code": r.code, "severity": r.severity, "rule": r.description} for r in RULES]
    )


def _check_message(m, lineno: int, issues: list[Issue]) -> None:
    if not isinstance(m, dict):
        issues.append(
            Issue("message_not_object", lineno, f"a message is {type(m).__name__}, not an object")
        )
        return
    role = m.get("role")
    if role not in ROLES:
        issues.append(Issue("unknown_role", lineno, f"role {role!r}"))
    extra = sorted(set(m) - MESSAGE_KEYS)
    if extra:
        issues.append(
            Issue(
                "unknown_key", lineno, f"unexpected key(s) {', '.join(extra)} in a {role} message"
            )
        )
    content = m.get("content")
    if content is None and not (
        role == "assistant" and (m.get("tool_calls") or m.get("function_call"))
    ):
        issues.append(Issue("missing_content", lineno, f"{role} message without content"))
    elif content is not None and not isinstance(content, str | list):
        issues.append(Issue("bad_content_type", lineno, f"content is {type(content).__name__}"))
    elif isinstance(content, list) and not all(
        isinstance(p, dict) and "type" in p for p in content
    ):
        issues.append(
            Issue("bad_content_type", lineno, "content parts must be objects with a 'type'")
        )
    if "weight" in m:
        if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
            issues.append(Issue("bad_weight", lineno, f"weight {m['weight']!r}"))
        if role != "assistant":
            issues.append(Issue("weight_not_assistant", lineno, f"weight on a {role} message"))
    text = (
        content if isinstance(content, str) else json.dumps(content) if content is not None else ""
    )
    for token in SPECIAL_TOKENS:
        if token in text:
            issues.append(Issue("special_tokens", lineno, f"{token} in {role} content"))
            break


def _token_lengths(strings: list[str], model: str) -> list[int]:
    """Token count of each string; repeated strings (system prompts, role names) are encoded
    once."""
    enc = encoding_for(model)
    cache: dict[str, int] = {}
    out = []
    for s in strings:
        n = cache.get(s)
        if n is None:
            n = cache[s] = len(enc.encode_ordinary(s))
        out.append(n)
    return out


def validate_bytes(
    raw: bytes,
    path: str,
    model: str,
    *,
    taxonomy: str | Taxonomy | None = DEFAULT,
    token_limit: int | None = None,
    training: bool = True,
) -> ValidationReport:
    """Check a chat JSONL held in memory; every problem becomes an :class:`Issue` naming its
    line."""
    report = ValidationReport(path=path, model=model)
    issues = report.issues
    if len(raw) > MAX_FILE_BYTES:
        issues.append(Issue("file_too_large", None, f"{len(raw)} bytes"))
    if raw.startswith(b"\xef\xbb\xbf"):
        issues.append(Issue("bom", 1, "UTF-8 byte-order mark at the start of the file"))
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        issues.append(
            Issue(
                "encoding", line, f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8"
            )
        )
        text = raw.decode("utf-8", errors="replace")
    lines = text.split("\n")
    ends_with_newline = text.endswith("\n")
    if ends_with_newline:
        lines = lines[:-1]
    tax = get_taxonomy(taxonomy) if taxonomy else None  # None or '': no label checks
    seen: dict[str, int] = {}
    strings: list[str] = []
    spans: list[
        tuple[int, int, int, int, int]
    ] = []  # example index -> (start, end, fixed, asst_start, asst_end)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            issues.append(Issue("blank_line", lineno, "blank line"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            last = lineno == len(lines) and not ends_with_newline
            code = "truncated_last_line" if last else "invalid_json"
            issues.append(Issue(code, lineno, f"{exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(obj, dict):
            issues.append(
                Issue("not_object", lineno, f"a JSON {type(obj).__name__}, not an object")
            )
            continue
        messages = obj.get("messages")
        if not isinstance(messages, list):
            issues.append(Issue("missing_messages", lineno, "no 'messages' list"))
            continue
        if not messages:
            issues.append(Issue("empty_messages", lineno, "'messages' is empty"))
            continue
        report.n_examples += 1
        for m in messages:
            _check_message(m, lineno, issues)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            issues.append(Issue("no_assistant_message", lineno, "no assistant message"))
        elif tax is not None:
            parsed = parse_answer(assistant_text(messages), tax, forgive_misspellings=False)
            if parsed.unknown:
                issues.append(
                    Issue(
                        "unknown_label",
                        lineno,
                        f"not a {tax.name} label: {', '.join(parsed.unknown)}",
                    )
                )
            elif not parsed.labels:
                issues.append(Issue("unparseable_answer", lineno, parsed.detail or "no labels"))
        key = json.dumps(messages, sort_keys=True)
        if key in seen:
            issues.append(Issue("duplicate_example", lineno, f"same as line {seen[key]}"))
        else:
            seen[key] = lineno
        report.user_texts.append(last_user_text([m for m in messages if isinstance(m, dict)]))
        ex_strings, fixed = chat_token_parts(messages)
        asst = [
            m.get("content")
            for m in messages
            if isinstance(m, dict) and m.get("role") == "assistant"
        ]
        asst = [a if isinstance(a, str) else "" for a in asst]
        start = len(strings)
        strings.extend(ex_strings)
        a_start = len(strings)
        strings.extend(asst)
        spans.append((start, a_start, fixed, a_start, len(strings)))
    if training and report.n_examples < MIN_TRAINING_EXAMPLES:
        issues.append(Issue("too_few_examples", None, f"{report.n_examples} examples"))
    lengths = _token_lengths(strings, model)
    csum = np.concatenate([[0], np.cumsum(lengths)]) if lengths else np.zeros(1, dtype=np.int64)
    report.tokens = np.array([csum[e] - csum[s] + f for s, e, f, _, _ in spans], dtype=np.int64)
    report.assistant_tokens = np.array(
        [csum[ae] - csum[a] for _, _, _, a, ae in spans], dtype=np.int64
    )
    if token_limit:
        example_lines = [i for i, line in enumerate(lines, start=1) if line.strip()]
        for idx in np.flatnonzero(report.tokens > token_limit):
            line = example_lines[idx] if idx < len(example_lines) else None
            issues.append(
                Issue("too_many_tokens", line, f"{report.tokens[idx]} tokens > limit {token_limit}")
            )
    issues.sort(key=lambda i: (i.line or 0, i.code))
    return report


def validate_file(
    path: str | Path,
    model: str,
    *,
    taxonomy: str | Taxonomy | None = DEFAULT,
    token_limit: int | None = None,
    training: bool = True,
) -> ValidationReport:
    """Check a chat JSONL file against OpenAI's rules and the task's checks.

    Reads at most one byte more than OpenAI's upload limit, so a device or a huge file cannot
    exhaust memory.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "is not a file" if path.exists() else "no such file", path=str(path), rule="file"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DataError(f"cannot read it ({exc.strerror})", path=str(path), rule="file") from None
    return validate_bytes(
        raw, str(path), model, taxonomy=taxonomy, token_limit=token_limit, training=training
    )


def check_overlap(train: ValidationReport, valid: ValidationReport) -> list[Issue]:
    """Comments that appear in both files (added to the validation report's issues)."""
    train_texts = set(train.user_texts)
    found = [
        Issue("train_val_overlap", i + 1, f"comment also in {Path(train.path).name}: {t[:60]!r}")
        for i, t in enumerate(valid.user_texts)
        if t in train_texts
    ]
    valid.issues.extend(found)
    return found
