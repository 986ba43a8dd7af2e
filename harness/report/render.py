"""Markdown and self-contained HTML views of a sweep's summary rows."""

from __future__ import annotations

import html
import re
from typing import Any

MAX_CLASS_COLUMNS = 40


def _tau(row: dict[str, Any]) -> str:
    return "–" if row["truncation"] is None else f"{row['truncation']:g}"


def _mode(row: dict[str, Any]) -> str:
    if row["mode"] == "nas":
        return f"NAS real + {row['augmentation_ratio']:g}·|real|"
    return "real" if row["mode"] == "real" else "CAS (samples only)"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _acc(row: dict[str, Any], key: str) -> str:
    if key not in row:
        return "failed"
    spread = f" ± {100 * row[key + '_std']:.2f}" if row["seeds"] - row["failed"] > 1 else ""
    return _pct(row[key]) + spread


METRIC_COLUMNS = (("IS", "is_mean", "{:.2f}"), ("FID", "fid", "{:.2f}"), ("KID×10³", "kid_mean", "{:.2f}"),
                  ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"))


def _metrics(row: dict[str, Any]) -> list[str]:
    return [fmt.format(row[key] * (1000 if key == "kid_mean" else 1)) if key in row else "–"
            for _, key, fmt in METRIC_COLUMNS]


def _corr(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def _metrics_note(info: dict[str, Any]) -> str:
    if not info.get("feature_extractor"):
        return ""
    return (f" IS, FID, KID and precision/recall (k = 3) use `{info['feature_extractor']}` features; the "
            f"real row's are held-out real data against the real train split.")


def _worst(row: dict[str, Any]) -> str:
    return ", ".join(f"{n} ({_pct(a)})" for n, a in row.get("worst_classes", [])) or "; ".join(row["errors"])


def _heat_cell(name: str, accuracy: float | None) -> str:
    value = _pct(accuracy)
    return f"<td style='background:{_colour(accuracy)}' title='{html.escape(name)}: {value}%'>{value}</td>"


def _gap_classes(rows: list[dict[str, Any]], class_names: list[str]) -> list[int]:
    """Classes to show: all when few, else those with the largest gap to real anywhere."""
    if len(class_names) <= MAX_CLASS_COLUMNS:
        return list(range(len(class_names)))
    worst = {i: max((r["per_class_gap"][i] or 0) for r in rows if r.get("per_class_gap"))
             for i in range(len(class_names))}
    return sorted(sorted(worst, key=worst.get, reverse=True)[:MAX_CLASS_COLUMNS])


def render_markdown(rows: list[dict[str, Any]], corr: list[dict[str, Any]], info: dict[str, Any]) -> str:
    names = info["class_names"]
    metric_names = [name for name, _, _ in METRIC_COLUMNS]
    out = [f"# CAS report: {info['run']}", "",
           f"Dataset `{info['dataset']}`: {len(names)} classes, {info['n_train']} real training images. "
           f"Accuracies in % on the real validation split, mean ± std over seeds.{_metrics_note(info)}", "",
           "| generator | τ | trained on | Top-1 | Top-5 | " + " | ".join(metric_names) + " | worst classes |",
           "|---" * (6 + len(metric_names)) + "|"]
    for r in rows:
        out.append(f"| {r['generator']} | {_tau(r)} | {_mode(r)} | {_acc(r, 'top1')} | {_acc(r, 'top5')} | "
                   + " | ".join(_metrics(r)) + f" | {_worst(r)} |")
    if corr:
        out += ["", "## CAS against IS and FID", "",
                "Pearson correlation over each generator's truncation sweep (the paper, BigGAN-deep: "
                "corr(Top-1, FID) = 0.16, corr(Top-1, IS) = −0.86).", "",
                "| generator | points | corr(Top-1, IS) | corr(Top-1, FID) |", "|---|---|---|---|"]
        out += [f"| {c['generator']} | {c['points']} | {_corr(c['top1_vs_is'])} | {_corr(c['top1_vs_fid'])} |"
                for c in corr]
    gaps = [r for r in rows if r.get("per_class_gap") and r["mode"] == "cas"]
    if gaps:
        out += ["", "## Classes each generator fails on", "",
                "Per-class accuracy of the CAS classifier against the classifier trained on real data "
                "(largest gaps first).", ""]
        for r in gaps:
            ranked = sorted(((g, i) for i, g in enumerate(r["per_class_gap"]) if g is not None), reverse=True)[:5]
            listed = ", ".join(f"{names[i]} {_pct(r['per_class_accuracy'][i])} (−{100 * g:.1f})" for g, i in ranked)
            out.append(f"- **{r['generator']}** τ={_tau(r)}: {listed}")
    return "\n".join(out) + "\n"


def _colour(value: float | None) -> str:
    if value is None:
        return "#eee"
    red, green = int(230 * (1 - value)) + 25, int(200 * value) + 25
    return f"rgb({red},{green},80)"


def render_html(rows: list[dict[str, Any]], corr: list[dict[str, Any]], info: dict[str, Any]) -> str:
    names = info["class_names"]
    shown = _gap_classes(rows, names)
    esc = html.escape
    summary = "".join(
        f"<tr><td>{esc(r['generator'])}</td><td>{_tau(r)}</td><td>{esc(_mode(r))}</td>"
        f"<td>{_acc(r, 'top1')}</td><td>{_acc(r, 'top5')}</td>"
        + "".join(f"<td>{m}</td>" for m in _metrics(r)) +
        f"<td>{esc(_worst(r))}</td></tr>"
        for r in rows)
    heat_rows = "".join(
        f"<tr><th>{esc(r['generator'])} {_tau(r)} {esc(_mode(r))}</th>"
        + "".join(_heat_cell(names[i], r["per_class_accuracy"][i]) for i in shown) + "</tr>"
        for r in rows if r.get("per_class_accuracy"))
    corr_rows = "".join(f"<tr><td>{esc(c['generator'])}</td><td>{c['points']}</td><td>{_corr(c['top1_vs_is'])}</td>"
                        f"<td>{_corr(c['top1_vs_fid'])}</td></tr>" for c in corr)
    corr_table = ("<h2>CAS against IS and FID</h2><p>Pearson correlation over each generator's truncation sweep "
                  "(the paper, BigGAN-deep: corr(Top-1, FID) = 0.16, corr(Top-1, IS) = −0.86).</p>"
                  "<table><tr><th>generator</th><th>points</th><th>corr(Top-1, IS)</th><th>corr(Top-1, FID)</th></tr>"
                  f"{corr_rows}</table>") if corr else ""
    note = re.sub(r"`([^`]*)`", r"<code>\1</code>", esc(_metrics_note(info)))
    metric_heads = "".join(f"<th>{name}</th>" for name, _, _ in METRIC_COLUMNS)
    caption = ("all classes" if len(shown) == len(names)
               else f"the {len(shown)} classes with the largest gap to real data")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>CAS report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right;font-size:13px}}th{{text-align:left}}</style></head>
<body><h1>Classification Accuracy Score</h1>
<p>Run <code>{esc(info['run'])}</code>; dataset <code>{esc(info['dataset'])}</code>, {len(names)} classes,
{info['n_train']} real training images. Accuracies in % on the real validation split.{note}</p>
<table><tr><th>generator</th><th>τ</th><th>trained on</th><th>Top-1</th><th>Top-5</th>{metric_heads}
<th>worst classes</th></tr>
{summary}</table>
{corr_table}
<h2>Per-class accuracy ({caption})</h2>
<table><tr><th></th>{''.join(f'<th>{esc(names[i])}</th>' for i in shown)}</tr>{heat_rows}</table>
</body></html>
"""
