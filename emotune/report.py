"""The rendered tutorial: each executed notebook as HTML, and an index page with the headline
results."""

from __future__ import annotations

import html
from pathlib import Path

from .core.runs import atomic_write_text

DESCRIPTIONS = {
    "01_explore": (
        "Label frequencies, labels per comment, co-occurrence, token lengths, Ekman and "
        "sentiment levels; "
        "the stratified samples the series uses."
    ),
    "02_build_jsonl": (
        "Chat examples in each prompt style and label format; train.jsonl and val.jsonl; the "
        "prompt tax."
    ),
    "03_validate_cost": (
        "OpenAI's file rules by line, tokens per example, cost across models and prompt styles, "
        "the budget guard."
    ),
    "04_launch_job": (
        "Upload once, launch or resume, watch to the end; loss curves, checkpoints, "
        "billed-token reconciliation."
    ),
    "05_evaluate": (
        "Base vs fine-tuned vs a free baseline, each asked by its role: BCa intervals at three "
        "levels, "
        "paired permutation tests (Holm), cost, a computed verdict."
    ),
}


def _headlines(manifest: dict) -> list[str]:
    out = []
    data = manifest.get("data") or {}
    if data:
        labels = (data.get("label_set") or {}).get("labels") or []
        kind = "multi-label" if data.get("multi_label", True) else "single-label"
        out.append(
            f"Dataset: {data.get('name', data.get('source'))} ({len(labels)} labels, {kind}; "
            f"splits {data.get('split_sizes')})."
        )
    est = manifest.get("estimate") or {}
    if est:
        usd = est.get("training_usd")
        cost = f"${usd:.2f}" if usd is not None else "no dollar price"
        out.append(
            f"Estimated training cost: {cost} for {est.get('billed_tokens', 0):,} billed tokens "
            f"({est.get('model')}; "
            f"{est.get('pricing_note', '')})."
        )
    job = manifest.get("job") or {}
    if job.get("fine_tuned_model"):
        out.append(
            f"Fine-tuned model: {job['fine_tuned_model']} ({job.get('trained_tokens')} trained "
            "tokens)."
        )
    verdict = (manifest.get("evaluation") or {}).get("verdict") or {}
    if verdict.get("sentence"):
        out.append(verdict["sentence"])
    if verdict.get("headline"):
        out.append(verdict["headline"])
    backend = manifest.get("backend") or {}
    if backend:
        out.append(f"Backend: {backend.get('kind')}.")
    return out


def for_readers(nb):
    """A notebook as a reader should see it: no stderr streams (progress bars, library chatter;
    the console had them), the parameters cell as one line, and papermill's injected cell as a note
    of the parameters this run set rather than as code."""
    import nbformat

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if o.get("name") != "stderr"]
    for i, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):  # the defaults: one line, not 28
            nb.cells[i] = nbformat.v4.new_markdown_cell(
                "**Parameters**: the series' defaults (`docs/parameters.md` lists them), "
                "except any this run set (below)."
            )
        if "injected-parameters" in cell.metadata.get("tags", []):
            lines = [x for x in cell.source.splitlines() if x.strip() and not x.startswith("#")]
            note = "**Parameters this run set** (the rest are the defaults above):\n\n"
            note += "\n".join(f"- `{x.strip()}`" for x in lines) if lines else "- none"
            nb.cells[i] = nbformat.v4.new_markdown_cell(note)
    return nb


def render_html(run) -> Path:
    """Export ``<run>/notebooks/*.ipynb`` to ``<run>/html/`` with an ``index.html``; returns the
    index
    path."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    out_dir = run.file("html")
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    for nb_path in sorted(run.file("notebooks").glob("[0-9][0-9]_*.ipynb")):
        body, _ = exporter.from_notebook_node(for_readers(nbformat.read(nb_path, as_version=4)))
        atomic_write_text(out_dir / f"{nb_path.stem}.html", body)
        pages.append(nb_path.stem)
    manifest = run.manifest()
    items = "\n".join(
        f'<li><a href="{p}.html">{p}</a>: {html.escape(DESCRIPTIONS.get(p, ""))}</li>'
        for p in pages
    )
    heads = "\n".join(f"<li>{html.escape(h)}</li>" for h in _headlines(manifest))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>emotune run {html.escape(run.name)}</title>
<style>body{{font-family:sans-serif;max-width:52rem;margin:2rem auto;
line-height:1.5}}</style></head>
<body>
<h1>emotune run <code>{html.escape(run.name)}</code></h1>
<p>From a labelled dataset to a fine-tuned classifier, and whether it was worth its cost.
Each notebook below was executed headless for this run; its manifest is
<code>manifest.json</code> beside this folder.</p>
<h2>Headline results</h2>
<ul id="headlines">
{heads}
</ul>
<h2>Notebooks</h2>
<ol id="notebooks">
{items}
</ol>
</body></html>
"""
    return atomic_write_text(out_dir / "index.html", page)
