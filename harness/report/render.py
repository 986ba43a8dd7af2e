"""report.md and a self-contained report.html from a run's summary rows, records and info.

The report has six parts, as the CAS paper shows its results: (1) a summary like its Table 1, (2) CAS,
IS and FID against each swept knob with their correlations (Table 2), (3) per-class accuracy against Real
(Figure 2), (4) each generator's best and worst classes as images (Figure 3), (5) NAS against the
augmentation ratio (Figure 5, only when the grid has NAS cells) and (6) the run's provenance. Both files
are made from one list of blocks, so their tables cannot differ; figures are in the HTML only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.report.aggregate import (
    accuracy_text,
    best_rows,
    class_extremes,
    correlations,
    knob_header,
    knob_names,
    knob_value,
    metric_columns,
    mode_label,
    per_class_rows,
    real_row,
    swept_knobs,
)
from harness.report.compare import cell_name, class_comparisons
from harness.report.figures import class_image_grid, figure_block, knob_curves, nas_curves, per_class_curves
from harness.report.provenance import provenance_html, provenance_markdown

ALL_CLASSES_UP_TO = 40
WORST_LISTED = 10
MARKS = {"best": "★", "tied": "≈"}
SECTIONS = {"summary": "Summary", "knobs": "CAS, IS and FID against the sampling knobs",
            "per-class": "Per-class accuracy against Real", "classes": "Best and worst classes",
            "nas": "Naive Augmentation Score", "provenance": "Provenance"}


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    row_classes: list[str] = field(default_factory=list)


@dataclass
class Figure:
    html: str
    caption: str


@dataclass
class Section:
    key: str
    blocks: list[Any]


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _metric(row: Mapping[str, Any], column: Any) -> str:
    if row.get(column.key) is None:
        return "–"
    text = f"{column.scale * row[column.key]:.{column.digits}f}"
    if column.std and row.get(column.std) is not None:
        text += f" ± {column.scale * row[column.std]:.{column.digits}f}"
    return text


def _mark(row: Mapping[str, Any]) -> str:
    return MARKS["best"] if row["best"] else MARKS["tied"] if row.get("tied") else ""


def _where(info: Mapping[str, Any]) -> str:
    return f"the real {info.get('test_split', 'test')} split ({info.get('n_val', '?')} images)"


def _extractors(records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    names = info.get("feature_extractors") or sorted(
        {n for r in records for n in (r.get("extractor_names") or {}).values()})
    prep = sorted({p for r in records for p in (r.get("preprocessing") or {}).values()})
    if not names:
        return "no feature extractor (metrics off)"
    return ", ".join(f"`{n}`" for n in names) + (f" (preprocessing: {'; '.join(prep)})" if prep else "")


def _n_text(rows: Sequence[Mapping[str, Any]]) -> str:
    sizes = sorted({r["metric_n"] for r in rows if r.get("metric_n")})
    return ", ".join(f"{n:,}" for n in sizes) or "?"


def summary_section(rows: Sequence[dict[str, Any]], records: Sequence[Mapping[str, Any]],
                    info: Mapping[str, Any]) -> Section:
    knobs = knob_names(records)
    with_mode = any(r.get("truncation_mode") for r in rows)
    metrics: list[tuple[str, Any]] = []
    for column in metric_columns(records):
        metrics.append((column.name + (" ± std" if column.std else ""), lambda r, c=column: _metric(r, c)))
        if column.lower_is_better and not column.key.startswith("kid") and not any(h == "N" for h, _ in metrics):
            metrics.append(("N", lambda r: f"{r['metric_n']:,}" if r.get("metric_n") else "–"))
    headers = (["", "generator", *map(knob_header, knobs), "trained on", "Top-5 (%)", "Top-1 (%) [95% interval]",
                *(h for h, _ in metrics)] + (["truncation mode"] if with_mode else []) + ["seeds"])
    table_rows, classes = [], []
    for r in rows:
        ok = r.get("top1") is not None
        cells = [_mark(r), r["generator"], *(knob_value(r, k) for k in knobs), mode_label(r),
                 accuracy_text(r, "top5") if ok else "–",
                 accuracy_text(r, "top1") if ok else "failed: " + "; ".join(r["errors"]),
                 *(cell(r) for _, cell in metrics)]
        cells += ([r.get("truncation_mode") or "–"] if with_mode else [])
        cells += [f"{r['seeds']}/{r['cells']}"]
        table_rows.append(cells)
        classes.append("best" if r["best"] else "tied" if r.get("tied") else "real" if r["mode"] == "real" else "")
    seeds = sorted({s for r in rows for s in r["seed_list"]})
    methods = sorted({r["tie_method"] for r in rows if r.get("tie_method")})
    recipe = next((r for r in records if r.get("recipe")), {})
    caption = (
        f"Top-1 and Top-5: accuracy on {_where(info)} of a `{recipe.get('recipe', '?')}` classifier trained on "
        f"what the row names: the real train split ({info.get('n_train', '?')} images); the generator's samples "
        f"only, one per real training image of the same class (CAS); or real plus r·|real| samples (NAS). "
        f"95% interval: Student's t over the row's seeds where it has two or more "
        f"(seeds {', '.join(map(str, seeds))}), "
        f"else the Wilson interval of the one run's Top-1 over the test images. "
        + (f"Sample metrics use {_extractors(records, info)} features: IS ± std over 10 splits; FID on N samples "
           f"(N = {_n_text(rows)}) against the real train split; KID ± std and precision/recall (k = 3) on up to "
           f"{info.get('metrics_max_samples', '?')} samples per set; the Real row's are the held-out "
           f"{info.get('test_split', 'test')} split against the train split. " if metrics else "")
        + ("Truncation mode: scaled is z = τ·TN(−2, 2) (BigGAN's), resample is N(0, 1) redrawn outside "
           "[−2τ, 2τ]. " if with_mode else "")
        + f"{MARKS['best']}: the best Top-1 of its generator and training mode; {MARKS['tied']}: cannot be told apart "
        f"from that row: the 95% paired-bootstrap interval of the Top-1 difference over the test images contains 0 "
        f"where both rows kept their predictions, else their 95% intervals overlap (used here: "
        f"{', '.join(methods) or 'no row to compare'}).")
    return Section("summary", [Table(headers, table_rows, caption, classes)])


def _corr(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def knobs_section(rows: Sequence[dict[str, Any]], records: Sequence[Mapping[str, Any]],
                  info: Mapping[str, Any], correlations: Sequence[Mapping[str, Any]]) -> Section:
    knobs = swept_knobs([r for r in records if r["mode"] == "cas"])
    blocks: list[Any] = []
    if not knobs:
        blocks.append("No sampling knob takes two or more values in this sweep, so there is no curve to draw.")
    for knob in knobs:
        blocks.append(Figure(knob_curves(rows, knob), (
            f"CAS Top-1 (classifier trained on the samples only, tested on {_where(info)}; bars: 95% interval), "
            f"Inception Score (± std over 10 splits) and FID against {knob}, per generator; other knobs as the "
            f"legend says; dashed: Real's Top-1. Features for IS and FID: {_extractors(records, info)}.")))
    if correlations:
        fid = correlations[0].get("fid_key") or "FID"
        name = "FID" if fid == "fid" else fid
        blocks.append(Table(
            ["over", "knob", "points", "Pearson(Top-1, IS)", "Spearman(Top-1, IS)", f"Pearson(Top-1, {name})",
             f"Spearman(Top-1, {name})"],
            [[c["scope"], c["knob"], str(c["points"]), _corr(c["pearson_is"]), _corr(c["spearman_is"]),
              _corr(c["pearson_fid"]), _corr(c["spearman_fid"])] for c in correlations],
            "Correlation of CAS Top-1 (seed means) with IS and with FID over each generator's sweep of a knob "
            "(other knobs fixed), then over every CAS row of every generator. The paper, BigGAN-deep's truncation "
            "sweep: corr(Top-1, FID) = 0.16, corr(Top-1, IS) = −0.86; a high IS or low FID need not mean a high "
            "CAS. – where a series is constant or has fewer than three points."))
    return Section("knobs", blocks)


def _acc_interval(entry: Mapping[str, Any]) -> str:
    if entry["accuracy"] is None:
        return "–"
    if entry["wilson_low"] is None:
        return _pct(entry["accuracy"])
    return f"{_pct(entry['accuracy'])} [{_pct(entry['wilson_low'], 0)}, {_pct(entry['wilson_high'], 0)}]"


def per_class_section(rows: Sequence[dict[str, Any]], info: Mapping[str, Any]) -> Section:
    names = info["class_names"]
    real = real_row(rows)
    best = best_rows(rows)
    blocks: list[Any] = []
    if real is None or not real.get("per_class_accuracy"):
        return Section("per-class", ["No Real row: per-class accuracy against Real needs a classifier trained on "
                                     "the real train split (a generator of kind `real`)."])
    shown = {cell_name(r): r["per_class_accuracy"] for r in best if r.get("per_class_accuracy")}
    if shown:
        svg, _ = per_class_curves(real["per_class_accuracy"], shown, names)
        blocks.append(Figure(svg, (
            f"Per-class accuracy on {_where(info)} of each generator's best CAS classifier (mean over seeds), "
            f"classes sorted by the accuracy of the classifier trained on real data (Real, solid black); the "
            f"legend counts the classes where a generator matches or beats Real and those at 0%.")))
    counted = [r for r in rows if r.get("class_counts")]
    if counted:
        blocks.append(Table(
            ["generator", "knobs", "trained on", "classes ≥ Real", "classes at 0%", "worst classes (accuracy %)"],
            [[r["generator"], _knobs(r), mode_label(r), str(r["class_counts"]["at_or_above_real"]),
              str(r["class_counts"]["at_zero"]),
              ", ".join(f"{n} ({_pct(a)})" for n, a in r.get("worst_classes", []))] for r in counted],
            f"Per row, the classes of {_where(info)} where its classifier's accuracy (mean over seeds) is at or "
            f"above Real's, and those it never gets right (0%), out of {len(names)}."))
    entries = [e for e in per_class_rows(rows, names) if e["mode"] in ("real", "cas")]
    chosen = [real, *best]
    by_row = {id(r): {e["class_index"]: e for e in entries if _same(e, r)} for r in chosen}
    if len(names) <= ALL_CLASSES_UP_TO:
        blocks.append(Table(["class", *(cell_name(r) for r in chosen)],
                            [[name, *(_acc_interval(by_row[id(r)][i]) for r in chosen)]
                             for i, name in enumerate(names)],
                            f"Per-class accuracy (%) on {_where(info)} with its Wilson 95% interval over the class's "
                            f"test images (of one classifier at the seed-mean accuracy); every class, best CAS row "
                            f"of each generator. All rows and classes: per_class.csv."))
    else:
        listed = []
        for r in best:
            gaps = sorted((e["accuracy"] - (e["real_accuracy"] or 0), i) for i, e in by_row[id(r)].items()
                          if e["accuracy"] is not None)
            listed += [[cell_name(r), names[i], _acc_interval(by_row[id(r)][i]),
                        _acc_interval(by_row[id(real)][i]), f"{100 * g:+.1f}"] for g, i in gaps[:WORST_LISTED]]
        blocks.append(Table(["row", "class", "accuracy % [95%]", "Real % [95%]", "gap (points)"], listed,
                            f"The {WORST_LISTED} classes furthest below Real for each generator's best CAS row, with "
                            f"Wilson 95% intervals over each class's test images. All classes: per_class.csv."))
    pairs = class_comparisons(rows)
    if pairs:
        table = []
        for p in pairs:
            c = p["comparison"]
            a, b = cell_name(p["a"]), cell_name(p["b"])
            table.append([a, b, _pct(c.share_a_better), _pct(c.share_b_better), _pct(c.share_tied),
                          _class_list(c.a_better, names), _class_list(c.b_better, names)])
        blocks.append(Table(["a", "b", "a better (% classes)", "b better", "tied", "significantly better for a",
                             "significantly better for b"], table,
                            "Class by class, each pair of the best CAS rows and Real, first seed of each: the share "
                            "of classes each wins (the paper: VQ-VAE-2 beats BigGAN-deep on 87.6% of classes), and "
                            "the classes where it wins significantly (Fisher's exact test per class, "
                            "Benjamini–Hochberg at 5%)."))
    return Section("per-class", blocks)


def _same(entry: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    return all(entry[k] == row[k] for k in ("generator", "mode", "knobs", "augmentation_ratio"))


def _knobs(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{knob_header(k)}={v:g}" for k, v in row["knobs"].items() if v is not None) or "–"


def _class_list(indices: Sequence[int], names: Sequence[str], limit: int = 8) -> str:
    if not len(indices):
        return "none"
    shown = ", ".join(names[i] for i in indices[:limit])
    return f"{len(indices)}: {shown}" + (" …" if len(indices) > limit else "")


def classes_section(grids: Sequence[Mapping[str, Any]] | None, rows: Sequence[dict[str, Any]],
                    info: Mapping[str, Any]) -> Section:
    names = info["class_names"]
    blocks: list[Any] = []
    real = real_row(rows)
    for grid in grids or []:
        row = grid["row"]
        label = cell_name(row)
        pc, ref = row["per_class_accuracy"], grid["real_per_class"]

        def listed(classes: Sequence[int], pc: Sequence[float | None] = pc, ref: Sequence[float | None] = ref) -> str:
            return ", ".join(f"{names[i]} ({_pct(ref[i], 0)} / {_pct(pc[i], 0)})" for i in classes)

        text = f"**{label}**: best {listed(grid['best'])}; worst {listed(grid['worst'])}."
        if "real_images" not in grid:
            blocks.append(text + (f" ({grid['error']})" if "error" in grid else ""))
            continue
        blocks.append(Figure(class_image_grid(
            grid["real_images"], grid["sample_images"], names, grid["best"], grid["worst"], ref, pc,
            generator=row["generator"]), (
            f"{label}: the classes where its CAS classifier comes closest to (or above) Real and falls furthest "
            f"below it, by per-class accuracy on {_where(info)}. Above: real images of the class from the train "
            f"split; below: the generator's samples for that class (the first few of its sample set). Under each "
            f"column: accuracy of Real / of the generator (%)" + ("." if real else "; no Real row, so ranked by "
                                                                      "the generator's own accuracy."))))
        blocks.append(text)
    if not blocks:
        blocks.append("No CAS row with per-class accuracy: nothing to show.")
    return Section("classes", blocks)


def nas_section(rows: Sequence[dict[str, Any]], info: Mapping[str, Any]) -> Section | None:
    nas = [r for r in rows if r["mode"] == "nas"]
    if not nas:
        return None
    real = real_row(rows)
    delta = (lambda r: f"{100 * (r['top1'] - real['top1']):+.2f}") if real else (lambda r: "–")
    table = Table(["generator", "knobs", "ratio r", "Top-1 (%) [95% interval]", "Top-5 (%)", "Top-1 − Real"],
                  [[r["generator"], _knobs(r), f"{r['augmentation_ratio']:g}", accuracy_text(r, "top1"),
                    accuracy_text(r, "top5"), delta(r) if r.get("top1") is not None else "failed"] for r in nas],
                  f"NAS: a classifier trained on the real train split plus r·|real| samples of the generator "
                  f"(r per real image, class histogram kept), tested on {_where(info)}; Real: the real train "
                  f"split alone ({_pct(real['top1'], 2) if real else '–'}%).")
    return Section("nas", [Figure(nas_curves(rows), (
        f"NAS Top-1 and Top-5 on {_where(info)} against the augmentation ratio r (synthetic samples per real "
        f"training image), one curve per generator and knob values; dashed: trained on real data only; bars: "
        f"95% intervals.")), table])


def provenance_section(info: Mapping[str, Any]) -> Section:
    prov = info.get("provenance")
    if not prov:
        return Section("provenance", ["No provenance was recorded with this run."])
    return Section("provenance", [(provenance_markdown(prov), provenance_html(prov))])


def sections(rows: Sequence[dict[str, Any]], records: Sequence[Mapping[str, Any]], info: Mapping[str, Any],
             grids: Sequence[Mapping[str, Any]] | None) -> list[Section]:
    parts = [summary_section(rows, records, info), knobs_section(rows, records, info, correlations(rows)),
             per_class_section(rows, info), classes_section(grids, rows, info), nas_section(rows, info),
             provenance_section(info)]
    return [p for p in parts if p is not None]


def _intro(records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> str:
    settings = next((r.get("recipe_settings") for r in records if r.get("recipe_settings")), {}) or {}
    recipe = next((r.get("recipe") for r in records if r.get("recipe")), "?")
    shape = "×".join(map(str, info.get("image_shape", [])))
    failed = sum(1 for r in records if r["status"] != "ok")
    return (f"Run `{info['run']}`, started {info.get('date', '?')}. Dataset "
            f"`{info['dataset']}`: {len(info['class_names'])} classes of {shape} images, {info.get('n_train', '?')} "
            f"real training images; CAS measured on {_where(info)}. Classifier recipe `{recipe}` ("
            + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + f"). {len(records)} cells"
            + (f", {failed} failed" if failed else "") + ".")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[dict[str, Any]], records: Sequence[Mapping[str, Any]],
                    info: Mapping[str, Any]) -> str:
    """report.md: every table and text of the report; figures are named, they are drawn in report.html."""
    out = [f"# CAS report: {info.get('name', info['run'])}", "", _intro(records, info), ""]
    for section in sections(rows, records, info, class_extremes(rows, len(info["class_names"]))):
        if not isinstance(section.blocks[0], tuple):
            out += [f"## {SECTIONS[section.key]}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                out += ["| " + " | ".join(map(_md_cell, block.headers)) + " |", "|---" * len(block.headers) + "|"]
                out += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
                out += ["", block.caption, ""] if block.caption else [""]
            elif isinstance(block, Figure):
                out += [f"*Figure (in report.html):* {block.caption}", ""]
            elif isinstance(block, tuple):
                out += [block[0]]
            else:
                out += [block, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** spans as HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]*)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]*)\*\*", r"<strong>\1</strong>", out)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = []
    for i, row in enumerate(table.rows):
        css = table.row_classes[i] if i < len(table.row_classes) and table.row_classes[i] else ""
        body.append(f"<tr{f' class={chr(34)}{css}{chr(34)}' if css else ''}>"
                    + "".join(f"<td class=\"num\">{html.escape(c)}</td>" if NUMBER.match(c) else
                              f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    caption = f'<p class="caption">{_inline(table.caption)}</p>' if table.caption else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{caption}"


#: A cell that holds a number (right-aligned): digits with a sign, separators, interval or ± spread.
NUMBER = re.compile(r"^[-+−]?[\d.,]+(\s*(±\s*[\d.,]+|\[[-+−\d.,\s]+\]))?$|^–$")


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 0.3em}p.caption{font-size:12px;color:#444;margin:0 0 1.5em;
max-width:1100px}td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:left}td.num{text-align:right}
th{text-align:left;background:#f4f4f4}tr.best td{background:#e6f0fa;font-weight:bold}tr.tied td{background:#f3f8fc}
tr.real td{font-style:italic}figure{margin:1em 0 2em}figcaption{font-size:12px;color:#444;max-width:1100px}
svg{max-width:100%;height:auto}section{margin-bottom:2.5em}code{font-size:12px}"""


def render_html(rows: Sequence[dict[str, Any]], records: Sequence[Mapping[str, Any]], info: Mapping[str, Any],
                grids: Sequence[Mapping[str, Any]] | None = None) -> str:
    """report.html: one file with every table of report.md, the figures as inline SVG and the image grids as
    inline PNG; no script, no external resource."""
    parts = []
    for section in sections(rows, records, info, grids):
        inner = [] if isinstance(section.blocks[0], tuple) else [f"<h2>{html.escape(SECTIONS[section.key])}</h2>"]
        for block in section.blocks:
            if isinstance(block, Table):
                inner.append(_html_table(block))
            elif isinstance(block, Figure):
                inner.append(figure_block(block.html, block.caption.replace("`", "")))
            elif isinstance(block, tuple):
                inner.append(block[1])
            else:
                inner.append(f"<p>{_inline(block)}</p>")
        parts.append(f'<section id="{section.key}">{"".join(inner)}</section>')
    title = html.escape(f"CAS report: {info.get('name', info['run'])}")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{title}</h1><p>{_inline(_intro(records, info))}</p>\n"
            + "\n".join(parts) + "\n</body></html>\n")
