"""The recipe study: which fine-tuning recipe makes SmolLM2-135M-Instruct learn GoEmotions' labels
instead of the majority answer (docs/recipe.md has the table and what it shows).

Each recipe is one run of the whole series (`emotune run`) on the default sizes (300 training comments,
1,000 test comments) with some parameters changed. The base model's zero-shot answers are the same in
every run (same comments, same prompt), so each run starts from a copy of the first run's prediction
cache and only the fine-tune answers anew. Prints one row per recipe and writes them as JSON.

    python benchmarks/recipe_study.py --root runs/study [--only default,json] [--seed-cache runs/x]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name -> parameters changed from the defaults (the default recipe: a balanced training sample, comma answers,
# LoRA r 8 at 2e-3, 3 epochs, bf16 training on a bf16 CPU)
RECIPES: dict[str, dict[str, str]] = {
    "default, 2 training draws": {"n_seeds": "2"},
    "stratified training sample, 2 training draws": {
        "train_sampling": "stratified",
        "n_seeds": "2",
    },
    "stratified, LR 2e-4 (multiplier 0.1)": {
        "train_sampling": "stratified",
        "learning_rate_multiplier": "0.1",
    },
    "JSON answers": {"label_format": "json"},
    "3 epochs": {"n_epochs": "3"},
    "1,000 training comments": {"n_train": "1000"},
}
# a recipe that only adds training draws to the default resumes a finished default run (--default-from)
RESUMES = {"default, 2 training draws"}
ONLY_PASSES = {"base_on_training_prompt": "false", "batch_check": "false"}


def _score(manifest: dict, model: str, metric: str = "macro_f1") -> tuple[float, float, float]:
    for row in manifest["evaluation"]["scores"]:
        if row["model"] == model and row["metric"] == metric:
            return row["value"], row["ci_low"], row["ci_high"]
    raise KeyError((model, metric))


def _comparison(manifest: dict, other: str) -> dict:
    for row in manifest["evaluation"]["verdict"]["comparisons"]:
        if row["comparison"] == f"fine-tuned - {other}" and row["metric"] == "macro_f1":
            return row
    return {}


def summarise(run_dir: Path, seconds: float) -> dict:
    """One recipe's row from its run directory's manifest and saved answers."""
    m = json.loads((run_dir / "manifest.json").read_text())
    answers = [
        json.loads(line)["labels"]
        for line in (run_dir / m["evaluation"]["prediction_files"]["fine-tuned"])
        .read_text()
        .splitlines()
    ]
    gold_path = run_dir / "eval_sample.jsonl"
    names = m["data"]["label_set"]["labels"]
    gold = [json.loads(line)["labels"] for line in gold_path.read_text().splitlines()]
    gold_neutral = sum([names[i] for i in g] == ["neutral"] for g in gold) / max(len(gold), 1)
    tuned, base, free = (_score(m, r) for r in ("fine-tuned", "base", "free baseline"))
    vs_free = _comparison(m, "free baseline")
    return {
        "fine-tune macro-F1": tuned,
        "base macro-F1": base,
        "free baseline macro-F1": free,
        "fine-tune - baseline": (
            vs_free.get("difference"),
            vs_free.get("95% CI low (unadjusted)"),
            vs_free.get("95% CI high (unadjusted)"),
        ),
        "neutral-only share": sum(a == ["neutral"] for a in answers) / len(answers),
        "gold neutral-only share": gold_neutral,
        "labels used": len({label for a in answers for label in a}),
        "training s": m["job"].get("training_seconds"),
        "series s": round(seconds),
        "verdict": m["evaluation"]["verdict"]["answer"],
        "across draws": m["evaluation"]["verdict"].get("across_draws") or {},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs/study")
    ap.add_argument("--only", default="", help="comma-separated recipe names (default: all)")
    ap.add_argument("--seed-cache", default="", help="a run whose prediction cache to start from")
    ap.add_argument("--default-from", default="", help="a finished run on the defaults to resume")
    args = ap.parse_args()
    root = Path(args.root)
    names = [n for n in RECIPES if not args.only or n in args.only.split(";")]
    done_before = (
        json.loads((root / "study.json").read_text()) if (root / "study.json").exists() else {}
    )
    seed_cache = Path(args.seed_cache) / "predictions" / "cache.jsonl" if args.seed_cache else None
    rows = {}
    for name in names:
        run_dir = root / name.replace(" ", "_").replace(",", "")
        if (
            not (run_dir / "manifest.json").exists()
            or "evaluation" not in run_dir.joinpath("manifest.json").read_text()
        ):
            resume = name in RESUMES and args.default_from
            if resume:
                shutil.copytree(args.default_from, run_dir, dirs_exist_ok=True)
            elif seed_cache and seed_cache.exists():
                (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
                shutil.copy2(seed_cache, run_dir / "predictions" / "cache.jsonl")
            params = ONLY_PASSES | RECIPES[name]
            cmd = [sys.executable, "-m", "emotune.cli", "run", "--run-dir", str(run_dir)]
            cmd += ["--from", "04"] if resume else []
            cmd += [x for k, v in params.items() for x in ("-p", f"{k}={v}")]
            print(f"== {name}: {' '.join(cmd[3:])}", flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            seconds = time.perf_counter() - t0
            if done.returncode != 0:
                print(f"   failed (exit {done.returncode}); see {run_dir}", flush=True)
                continue
            (run_dir / "study_seconds.txt").write_text(f"{seconds:.1f}")
        seconds = float((run_dir / "study_seconds.txt").read_text())
        rows[name] = summarise(run_dir, seconds)
        print(f"   {json.dumps(rows[name])}", flush=True)
        if not seed_cache:
            seed_cache = run_dir / "predictions" / "cache.jsonl"
    (root / "study.json").write_text(json.dumps(done_before | rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
