"""Benchmark issue 7: the series end to end on the local backend, on defaults and on the full data.

    python benchmarks/bench_series.py [--only default|full]

Runs `emotune run` in a temporary run directory and reports the wall time per notebook (from the
manifest) and in total. The full-data run uses all 43,410 training comments, the whole dev split for
validation and the whole 5,427-comment test split for evaluation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "default": [],
    "full": [
        "-p",
        "n_train=43410",
        "-p",
        "n_validation=5426",
        "-p",
        "n_eval=5427",
        "-p",
        "budget_usd=100",
    ],
}


def run(name: str, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "emotune.cli",
                "run",
                "--run-dir",
                str(run_dir),
                "-p",
                "backend=local",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=None,
        )
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(f"{name}: emotune run failed")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        stages = {k: v["seconds"] for k, v in sorted(manifest["stages"].items())}
        verdict = manifest["evaluation"]["verdict"]
        print(
            f"{name}: {total:.1f} s in all ("
            + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
            + ")"
        )
        print(f"  {verdict['headline']}")
        print(f"  verdict: {verdict['answer']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(CONFIGS))
    args = parser.parse_args()
    for name, extra in CONFIGS.items():
        if args.only in (None, name):
            run(name, extra)


if __name__ == "__main__":
    main()
