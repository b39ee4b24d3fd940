"""The learning-curve table of benchmarks/RESULTS.md, printed as Markdown from a sweep folder's manifests
(default: the recorded sweep notebook 06 reads). Nothing is trained or asked.

    python benchmarks/learning_curve_table.py [SWEEP_DIR]
"""

from __future__ import annotations

import sys

from emotune.curve import load_curve


def interval(row) -> str:
    return f"{row['macro_f1']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def main(folder: str = "") -> None:
    curve = load_curve(folder)
    points = curve.points.pivot_table(
        index="run", columns="model", values=["macro_f1", "ci_low", "ci_high"]
    )
    costs, tests = curve.costs, curve.tests.set_index("run")
    print(
        "| n_train | seed | fine-tuned macro-F1 [95% CI] | free baseline | base | fine-tuned - baseline "
        "[95% CI], Holm p | baseline over its draws | steps | training s | answers s/1k | series min |"
    )
    print("| " + " | ".join(["---"] * 11) + " |")
    for run in costs.sort_values(["size", "seed"]).index:
        cells = {
            model: interval(
                {k: points.loc[run, (k, model)] for k in ("macro_f1", "ci_low", "ci_high")}
            )
            for model in ("fine-tuned", "free baseline", "base")
        }
        t, c = tests.loc[run], costs.loc[run]
        diff = (
            f"{t['difference']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}], "
            f"p = {t['p_holm']:.4f}"
        )
        draws = f"{t['baseline draws lowest']:.3f}-{t['baseline draws highest']:.3f}"
        print(
            f"| {c['size']:,} | {c['seed']} | {cells['fine-tuned']} | {cells['free baseline']} | "
            f"{cells['base']} | {diff} | {draws} | {c['training steps']} | {c['training s']} | "
            f"{c['answers s per 1k']} | {c['series min']} |"
        )
    print()
    print(curve.sentence())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
