"""``emotune show``: a run's manifest as one screen of text, safe for a terminal."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from .core.errors import EmotuneError
from .core.runs import Run


def cmd_show(args) -> int:
    if not Path(args.run).is_dir():
        raise EmotuneError(
            f"{args.run}: not a directory (give a run directory, e.g. runs/tutorial)"
        )
    manifest = Run(args.run).manifest()
    if not manifest:
        raise EmotuneError(f"{args.run}: no manifest.json (is this a run directory?)")
    if not isinstance(manifest, dict):
        raise EmotuneError(
            f"{args.run}/manifest.json: not a JSON object; the run's manifest is damaged"
        )
    if args.json:
        try:
            print(shown(json.dumps(manifest, indent=2, sort_keys=True)))
        except RecursionError:
            raise EmotuneError(f"{args.run}/manifest.json: nested too deeply to print") from None
        return 0
    try:
        lines = [shown(line) for line in summary_lines(manifest)]
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise EmotuneError(
            f"{args.run}/manifest.json: malformed ({type(exc).__name__}: {exc}); "
            "`emotune show --json` prints it as it is"
        ) from None
    for line in lines:
        print(line)
    return 0


def shown(text: str) -> str:
    """Text safe for a terminal: control characters (an ANSI escape, a carriage return) and the
    invisible ones that reorder or hide text (bidi overrides, line separators) written as
    escapes."""
    return "".join(
        ch
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs")
        else ch.encode("unicode_escape", "backslashreplace").decode()
        for ch in text
    )


def summary_lines(m: dict) -> list[str]:
    """A one-screen summary of a manifest."""
    p = m.get("parameters", {})
    lines = [
        f"run {m['run']['name']}  (created {m['run'].get('created_at')}, updated "
        f"{m['run']['updated_at']})",
        f"parameters: base_model={p.get('base_model')} taxonomy={p.get('taxonomy')} "
        f"n_train={p.get('n_train')} "
        f"n_eval={p.get('n_eval')} style={p.get('prompt_style')} format={p.get('label_format')} "
        f"seed={p.get('seed')}",
    ]
    if "backend" in m:
        lines.append(f"backend: {m['backend']['kind']}")
    if "data" in m:
        d = m["data"]
        labels = (d.get("label_set") or {}).get("labels") or []
        kind = "multi-label" if d.get("multi_label", True) else "single-label"
        lines.append(
            f"dataset: {d.get('name', '?')} ({d.get('source')}; {len(labels)} labels, {kind}) "
            f"{d.get('split_sizes')}"
        )
    stages = m.get("stages", {})
    if stages:
        lines.append(
            "stages: "
            + ", ".join(
                f"{k} {v.get('status', '?')}" + (f" {v['seconds']} s" if "seconds" in v else "")
                for k, v in sorted(stages.items())
            )
        )
    if "estimate" in m:
        e = m["estimate"]
        usd = e.get("training_usd")
        cost = f"${usd:.2f} training" if usd is not None else "not priced in dollars"
        lines.append(
            f"estimate: {e.get('billed_tokens', 0):,} billed tokens, {cost} on {e.get('model')}"
        )
    job = m.get("job") or {}
    if job:
        lines.append(
            f"job: {job.get('id')} {job.get('status', '')} -> {job.get('fine_tuned_model')} "
            f"(trained_tokens {job.get('trained_tokens')}, estimate off by "
            f"{job.get('difference_pct')}%, "
            f"{job.get('training_seconds')} s of training)"
        )
    verdict = (m.get("evaluation") or {}).get("verdict")
    if verdict:
        lines.append(verdict["sentence"])  # it begins "Verdict: <answer>"
        if verdict.get("headline"):
            lines.append(verdict["headline"])
    return lines
