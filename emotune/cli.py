"""Command line: ``emotune run | show`` (and ``serve``, ``validate``, ``estimate`` as they
arrive)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from . import compare, sweep
from .core import config
from .core.errors import EmotuneError
from .core.runs import Run, open_run
from .series import DEFAULT_PARAMETERS, HYPERPARAMETERS, shown_value
from .summary import cmd_show, shown
from .tracking import track_series


def _parse_assignments(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise EmotuneError(f"-p takes NAME=VALUE, got {shown_value(item)}")
        text_param = (
            isinstance(DEFAULT_PARAMETERS.get(name.strip()), str)
            and name.strip() not in HYPERPARAMETERS
        )
        # a text parameter keeps its text: YAML would read "|" (label_separator) as an empty block
        # scalar
        try:
            out[name.strip()] = raw if text_param else (yaml.safe_load(raw) if raw.strip() else "")
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            problem = _yaml_problem(exc)
            raise EmotuneError(
                f"-p {name.strip()}: {shown_value(raw)} is not a value ({problem})"
            ) from None
    return out


def _load_params_file(path: str) -> dict:
    import yaml

    try:
        _input_file(path, "--params", limit=MAX_PARAMS_BYTES)
    except EmotuneError as exc:
        raise EmotuneError(f"cannot read parameters: {exc}") from None
    try:
        data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise EmotuneError(
            f"--params {path}: cannot read parameters ({_yaml_problem(exc)})"
        ) from None
    except (OSError, RecursionError, ValueError) as exc:  # ValueError: an int of 5,000 digits
        raise EmotuneError(f"--params {path}: cannot read parameters ({exc})") from None
    if not isinstance(data, dict):
        raise EmotuneError(f"--params {path}: parameters must be a mapping of name: value")
    odd = [repr(k) for k in data if not isinstance(k, str)]
    if odd:
        raise EmotuneError(f"--params {path}: parameter names must be text, not {', '.join(odd)}")
    return data


def _yaml_problem(exc) -> str:
    """A YAML error in one line: what is wrong and where."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{problem}{where}"


def open_run_dir(explicit: str | None, params: dict) -> Run:
    """The run directory, created, with an absolute path: ``--run-dir``, else
    ``EMOTUNE_RUN_DIR``, else
    ``runs/<run_name>`` or ``runs/<timestamp>`` (decided by ``config.run_dir``)."""
    name = str(params.get("run_name") or datetime.now().strftime("%Y%m%d-%H%M%S"))
    path = config.run_dir(explicit, name)
    if path.exists() and not path.is_dir():
        raise EmotuneError(f"--run-dir {path}: exists and is not a directory")
    try:
        return open_run(path.resolve())
    except OSError as exc:
        raise EmotuneError(
            f"cannot create the run directory {path}: {exc.strerror or exc}; "
            "pick a writable one with --run-dir"
        ) from None


def _say(text: object, file=None) -> None:
    """Print for a terminal: control characters that data put into a line are shown escaped."""
    print(shown(str(text)), file=file)


def cmd_run(args) -> int:
    from .series import prepare, run_series

    params = _load_params_file(args.params) if args.params else {}
    params |= _parse_assignments(args.p or [])
    notebooks_dir = Path(args.notebooks) if args.notebooks else None
    plan = prepare(
        params, start=args.from_, stop=args.to, notebooks_dir=notebooks_dir
    )  # rejects first
    run = open_run_dir(args.run_dir, plan.parameters)
    _say(f"run directory: {run.path}")
    started = time.perf_counter()
    with track_series(run, DEFAULT_PARAMETERS | plan.parameters, _say) as tracker:  # MLflow
        results = run_series(run, plan, on_event=_say)
    wall = time.perf_counter() - started
    verdict = (run.manifest().get("evaluation") or {}).get("verdict")
    if verdict:
        _say(verdict["sentence"])
    each = ", ".join(f"{r.notebook} {r.seconds:.0f} s" for r in results)
    _say(
        f"done: {len(results)} notebook(s) in {wall / 60:.1f} min wall time ({each}, and rendering)"
    )
    _say(f"manifest: {run.manifest_path}")
    tracker.finish(wall)
    return 0


def cmd_validate(args) -> int:
    from .core.file_rules import check_overlap, validate_file
    from .core.pricing import load_catalog

    for path in args.files:
        _input_file(path)
    limit = load_catalog().model(args.model).example_token_limit
    reports = [
        validate_file(
            p, args.model, taxonomy=args.taxonomy or None, token_limit=limit, training=i == 0
        )
        for i, p in enumerate(args.files)
    ]
    if len(reports) == 2:
        check_overlap(*reports)
    for report in reports:
        _say(report.summary())
        frame = report.to_frame()
        if len(frame):
            _say(frame.drop(columns=["rule"]).to_string(index=False))
            for issue in report.issues[: args.show]:
                _say(
                    f"  {report.path}:{issue.line}: {issue.severity} [{issue.code}] {issue.message}"
                )
    return 1 if any(r.errors for r in reports) else 0


def cmd_estimate(args) -> int:
    from .core.file_rules import validate_file
    from .core.pricing import check_budget, estimate_training, lifecycle, load_catalog

    _input_file(args.file)
    if args.catalog:
        _input_file(args.catalog, "--catalog")
    try:
        catalog = load_catalog(args.catalog)
    except (ValueError, KeyError, TypeError) as exc:  # JSON or shape
        raise EmotuneError(
            f"--catalog {args.catalog}: not a pricing catalogue ({type(exc).__name__}: {exc}); "
            "copy the shape of emotune/catalog/models.json"
        ) from None
    report = validate_file(
        args.file,
        args.model,
        taxonomy=None,
        token_limit=catalog.model(args.model).example_token_limit,
    )
    est = estimate_training(report.tokens, args.model, args.epochs, catalog)
    _say(
        f"{est.n_examples} examples x {est.n_epochs} epochs = {est.billed_tokens:,} billed "
        "tokens on "
        f"{est.model}: "
        f"${est.training_usd:,.2f} (prices as of {catalog.as_of})"
    )
    _say(lifecycle(args.model, catalog=catalog).message)
    if args.budget is not None:
        check_budget(est.training_usd, args.budget, "training")
        _say(f"within the budget of ${args.budget:,.2f}")
    return 0


MAX_INPUT_BYTES = 1024 * 1024 * 1024  # OpenAI's upload limit for a fine-tuning file is 512 MB
MAX_PARAMS_BYTES = 1024 * 1024  # a parameters file is a few lines


def _input_file(path: str, what: str = "", limit: int = MAX_INPUT_BYTES) -> Path:
    """A readable regular file of sane size, or a one-line error naming it."""
    p = Path(path)
    name = f"{what} {path}".strip()
    if not p.exists():
        raise EmotuneError(f"{name}: no such file")
    if p.is_dir():
        raise EmotuneError(f"{name}: is a directory; give a file")
    if not p.is_file():
        raise EmotuneError(
            f"{name}: not a regular file (a device or pipe cannot be read to its end)"
        )
    if p.stat().st_size > limit:
        raise EmotuneError(f"{name}: {p.stat().st_size:,} bytes, over the {limit:,} emotune reads")
    return p


def _epochs(text: str):
    """--epochs: 'auto' or a whole number from 1 to 50 (OpenAI's range)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a whole number") from None
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..50")
    return value


def _non_negative(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < 0 or value != value:
            raise argparse.ArgumentTypeError(f"{text} is negative")
        return value

    parse.__name__ = kind.__name__
    return parse


def _within(kind, low, high):
    """An argparse type for a number in [low, high]: a bad value is a usage line, not a traceback
    later."""

    def parse(text: str):
        value = _non_negative(kind)(text) if low >= 0 else kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low}..{high}")
        return value

    parse.__name__ = kind.__name__
    return parse


def cmd_serve(args) -> int:
    from .local import serve

    serve(
        args.port,
        args.state_dir,
        latency_ms=args.latency_ms,
        fail_429=args.fail_429,
        fail_500=args.fail_500,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        rpm=args.rpm,
        tpm=args.tpm,
        base_models=args.base_model,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotune",
        description="Labelled text -> fine-tuned LLM classifier, with honest numbers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the notebook series headless (papermill)")
    run.add_argument(
        "--run-dir",
        help="run directory (default EMOTUNE_RUN_DIR, else runs/<run_name> or runs/<timestamp>)",
    )
    run.add_argument("--params", help="YAML file of parameters")
    run.add_argument("-p", action="append", metavar="NAME=VALUE", help="one parameter (repeatable)")
    run.add_argument("--from", dest="from_", metavar="NN", help="first notebook, e.g. 02")
    run.add_argument("--to", metavar="NN", help="last notebook, e.g. 04")
    run.add_argument("--notebooks", help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    show = sub.add_parser("show", help="one-screen summary of a run directory")
    show.add_argument("run", help="run directory")
    show.add_argument("--json", action="store_true", help="print the whole manifest")
    show.set_defaults(func=cmd_show)

    val = sub.add_parser(
        "validate", help="check chat JSONL files against OpenAI's rules (exit 1 on errors)"
    )
    val.add_argument("files", nargs="+", help="training file, and optionally the validation file")
    val.add_argument(
        "--model",
        default="gpt-4.1-mini-2025-04-14",
        help="the model whose encoding and limit apply",
    )
    val.add_argument(
        "--taxonomy",
        default="default",
        help="label set for answer checks (default: the default dataset's; '' to skip)",
    )
    val.add_argument("--show", type=_non_negative(int), default=20, help="issues to list per file")
    val.set_defaults(func=cmd_validate)

    est = sub.add_parser("estimate", help="tokens and training cost of a chat JSONL")
    est.add_argument("file")
    est.add_argument("--model", default="gpt-4.1-mini-2025-04-14")
    est.add_argument("--epochs", type=_epochs, default="auto", help="'auto' or 1..50")
    est.add_argument(
        "--budget",
        type=_non_negative(float),
        help="fail (exit 2) when the estimate exceeds this many USD",
    )
    est.add_argument(
        "--catalog", help="your own pricing catalogue (JSON, same shape as the built-in one)"
    )
    est.set_defaults(func=cmd_estimate)

    serve = sub.add_parser("serve", help="run the local OpenAI-compatible backend on 127.0.0.1")
    serve.add_argument("--port", type=_within(int, 1, 65535), default=8765)
    serve.add_argument(
        "--state-dir", default="runs/local-backend", help="where files, jobs and models live"
    )
    serve.add_argument(
        "--latency-ms",
        type=_within(float, 0, 600_000),
        default=0.0,
        help="added latency per request",
    )
    serve.add_argument(
        "--fail-429",
        type=_within(float, 0, 1),
        default=0.0,
        help="fraction of requests answered 429 (Retry-After)",
    )
    serve.add_argument(
        "--fail-500",
        type=_within(float, 0, 1),
        default=0.0,
        help="fraction of requests answered 500",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=_within(int, 1, 512),
        default=512,
        help="upload size limit (413 above it)",
    )
    serve.add_argument(
        "--rpm",
        type=_within(int, 1, 10**9),
        help="requests per minute for chat (429 and x-ratelimit-* headers, as OpenAI)",
    )
    serve.add_argument(
        "--tpm",
        type=_within(int, 1, 10**12),
        help="tokens per minute for chat (prompt + max_completion_tokens, counted at admission)",
    )
    serve.add_argument(
        "--base-model",
        action="append",
        default=[],
        metavar="NAME",
        help="an open-weights base to serve besides the known ones: a model folder, a GGUF file or "
        "a hub id (repeatable); a request can name no other path",
    )
    serve.set_defaults(func=cmd_serve)
    sweep.add_parser(sub)  # emotune sweep and emotune compare: emotune/sweep.py, emotune/compare.py
    compare.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's mistake is one line on stderr and a non-zero exit, never a
    traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmotuneError as exc:
        print(shown(f"emotune: error: {exc}"), file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        _say(
            f"emotune: error: a file is not UTF-8 text ({exc.reason} at byte {exc.start})",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:  # a file we could not read or write
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"emotune: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emotune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
