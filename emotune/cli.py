"""Command line: ``emotune run | show`` (and ``serve``, ``validate``, ``estimate`` as they arrive)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from .errors import EmotuneError
from .series import DEFAULT_PARAMETERS, HYPERPARAMETERS


def _parse_assignments(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise EmotuneError(f"-p takes NAME=VALUE, got {item!r}")
        text_param = isinstance(DEFAULT_PARAMETERS.get(name.strip()), str) and name.strip() not in HYPERPARAMETERS
        # a text parameter keeps its text: YAML would read "|" (label_separator) as an empty block scalar
        out[name.strip()] = raw if text_param else (yaml.safe_load(raw) if raw.strip() else "")
    return out


def _load_params_file(path: str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EmotuneError(f"{path}: cannot read parameters ({exc})") from None
    if not isinstance(data, dict):
        raise EmotuneError(f"{path}: parameters must be a mapping of name: value")
    return data


def cmd_run(args) -> int:
    from .runs import Run
    from .series import run_series

    params = _load_params_file(args.params) if args.params else {}
    params |= _parse_assignments(args.p or [])
    if args.run_dir:
        run_path = Path(args.run_dir)
    elif params.get("run_name"):
        run_path = Path("runs") / str(params["run_name"])
    else:
        run_path = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    run = Run(run_path)
    run.path.mkdir(parents=True, exist_ok=True)
    print(f"run directory: {run.path}")
    results = run_series(run, params, start=args.from_, stop=args.to,
                         notebooks_dir=Path(args.notebooks) if args.notebooks else None)
    total = sum(r.seconds for r in results)
    print(f"done: {len(results)} notebook(s) in {total:.1f} s; manifest: {run.manifest_path}")
    return 0


def cmd_show(args) -> int:
    from .runs import Run

    manifest = Run(args.run).manifest()
    if not manifest:
        raise EmotuneError(f"{args.run}: no manifest.json (is this a run directory?)")
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
        return 0
    for line in summary_lines(manifest):
        print(line)
    return 0


def summary_lines(m: dict) -> list[str]:
    """A one-screen summary of a manifest."""
    p = m.get("parameters", {})
    lines = [f"run {m['run']['name']}  (created {m['run'].get('created_at')}, updated {m['run']['updated_at']})",
             f"parameters: base_model={p.get('base_model')} taxonomy={p.get('taxonomy')} n_train={p.get('n_train')} "
             f"n_eval={p.get('n_eval')} style={p.get('prompt_style')} format={p.get('label_format')} seed={p.get('seed')}"]
    if "backend" in m:
        lines.append(f"backend: {m['backend']['kind']}")
    if "data" in m:
        lines.append(f"data: {m['data']['source']} {m['data'].get('split_sizes')}")
    stages = m.get("stages", {})
    if stages:
        lines.append("stages: " + ", ".join(f"{k} {v.get('status', '?')}" + (f" {v['seconds']} s" if "seconds" in v else "")
                                          for k, v in sorted(stages.items())))
    if "estimate" in m:
        e = m["estimate"]
        lines.append(f"estimate: {e.get('billed_tokens'):,} billed tokens, ${e.get('training_usd'):.2f} training on {e.get('model')}")
    job = m.get("job") or {}
    if job:
        lines.append(f"job: {job.get('id')} {job.get('status', '')} -> {job.get('fine_tuned_model')} "
                     f"(trained_tokens {job.get('trained_tokens')}, estimate off by {job.get('difference_pct')}%, "
                     f"{job.get('training_seconds')} s of training)")
    verdict = (m.get("evaluation") or {}).get("verdict")
    if verdict:
        lines.append("verdict: " + verdict["sentence"])
    return lines


def cmd_validate(args) -> int:
    from .pricing import load_catalog
    from .validate import check_overlap, validate_file

    limit = load_catalog().model(args.model).example_token_limit
    reports = [validate_file(p, args.model, taxonomy=args.taxonomy or None, token_limit=limit,
                             training=i == 0) for i, p in enumerate(args.files)]
    if len(reports) == 2:
        check_overlap(*reports)
    for report in reports:
        print(report.summary())
        frame = report.to_frame()
        if len(frame):
            print(frame.drop(columns=["rule"]).to_string(index=False))
            for issue in report.issues[: args.show]:
                print(f"  {report.path}:{issue.line}: {issue.severity} [{issue.code}] {issue.message}")
    return 1 if any(r.errors for r in reports) else 0


def cmd_estimate(args) -> int:
    from .pricing import check_budget, estimate_training, lifecycle, load_catalog
    from .validate import validate_file

    catalog = load_catalog(args.catalog)
    report = validate_file(args.file, args.model, taxonomy=None, token_limit=catalog.model(args.model).example_token_limit)
    est = estimate_training(report.tokens, args.model, args.epochs if args.epochs == "auto" else int(args.epochs), catalog)
    print(f"{est.n_examples} examples x {est.n_epochs} epochs = {est.billed_tokens:,} billed tokens on {est.model}: "
          f"${est.training_usd:,.2f} (prices as of {catalog.as_of})")
    print(lifecycle(args.model, catalog=catalog).message)
    if args.budget is not None:
        check_budget(est.training_usd, args.budget, "training")
        print(f"within the budget of ${args.budget:,.2f}")
    return 0


def cmd_serve(args) -> int:
    from .local import serve

    serve(args.port, args.state_dir, latency_ms=args.latency_ms, fail_429=args.fail_429, fail_500=args.fail_500,
          max_upload_bytes=args.max_upload_mb * 1024 * 1024)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotune", description="Labelled text -> fine-tuned LLM classifier, with honest numbers.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the notebook series headless (papermill)")
    run.add_argument("--run-dir", help="run directory (default runs/<run_name> or runs/<timestamp>)")
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

    val = sub.add_parser("validate", help="check chat JSONL files against OpenAI's rules (exit 1 on errors)")
    val.add_argument("files", nargs="+", help="training file, and optionally the validation file")
    val.add_argument("--model", default="gpt-4.1-mini-2025-04-14", help="the model whose encoding and limit apply")
    val.add_argument("--taxonomy", default="goemotions", help="label set for answer checks ('' to skip)")
    val.add_argument("--show", type=int, default=20, help="issues to list per file")
    val.set_defaults(func=cmd_validate)

    est = sub.add_parser("estimate", help="tokens and training cost of a chat JSONL")
    est.add_argument("file")
    est.add_argument("--model", default="gpt-4.1-mini-2025-04-14")
    est.add_argument("--epochs", default="auto")
    est.add_argument("--budget", type=float, help="fail (exit 2) when the estimate exceeds this many USD")
    est.add_argument("--catalog", help="your own pricing catalogue (JSON, same shape as the built-in one)")
    est.set_defaults(func=cmd_estimate)

    serve = sub.add_parser("serve", help="run the local OpenAI-compatible backend on 127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--state-dir", default="runs/local-backend", help="where files, jobs and models live")
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added latency per request")
    serve.add_argument("--fail-429", type=float, default=0.0, help="fraction of requests answered 429 (Retry-After)")
    serve.add_argument("--fail-500", type=float, default=0.0, help="fraction of requests answered 500")
    serve.add_argument("--max-upload-mb", type=int, default=512, help="upload size limit (413 above it)")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmotuneError as exc:
        print(f"emotune: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a --from/--to that names no notebook
        print(f"emotune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
