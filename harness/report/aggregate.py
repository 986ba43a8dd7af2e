"""From per-cell records to results.json, results.csv, report.md and report.html."""

from __future__ import annotations

import csv
import io
import math
import statistics
from typing import Any

from harness.data import RealData
from harness.metrics.sets import is_metric_key
from harness.progress import format_seconds, status
from harness.report.render import render_html, render_markdown
from harness.store import Store


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def fd_key(rows: list[dict[str, Any]]) -> str | None:
    """The Fréchet distance the table and correlations show: FID (``fd_inception``) where measured, else the
    first other feature space's."""
    keys = sorted({k for r in rows for k in r if k.startswith("fd_")})
    return "fd_inception" if "fd_inception" in keys else next(iter(keys), None)


def summarize(records: list[dict[str, Any]], class_names: list[str]) -> list[dict[str, Any]]:
    """One row per (generator, τ, mode, ratio), averaged over seeds, with its worst classes,
    the per-class gap to the real-data classifier, and the sample set's IS/FID/KID/P/R."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        key = (r["generator"], r["mode"], tuple(r["knobs"].items()), r["augmentation_ratio"])
        groups.setdefault(key, []).append(r)
    real_ok = [r for r in records if r["mode"] == "real" and r["status"] == "ok"]
    real_per_class = _mean_per_class(real_ok) if real_ok else None
    rows = []
    for (generator, mode, knobs, ratio), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        row: dict[str, Any] = {"generator": generator, "mode": mode, "knobs": dict(knobs),
                               "truncation": dict(knobs).get("truncation"), "augmentation_ratio": ratio,
                               "seeds": len(rs), "failed": len(rs) - len(ok),
                               "errors": sorted({r["error"] for r in rs if r["status"] != "ok"})}
        for metric in sorted({k for r in rs for k in r if is_metric_key(k) and not k.endswith("_std")}):
            values = [r[metric] for r in rs if r.get(metric) is not None]
            if values:
                row[metric] = statistics.fmean(values)
        if ok:
            row["top1"], row["top1_std"] = _mean_std([r["top1"] for r in ok])
            row["top5"], row["top5_std"] = _mean_std([r["top5"] for r in ok])
            per_class = _mean_per_class(ok)
            row["per_class_accuracy"] = per_class
            ranked = sorted((a, i) for i, a in enumerate(per_class) if a is not None)
            row["worst_classes"] = [(class_names[i], a) for a, i in ranked[:3]]
            if real_per_class:
                row["per_class_gap"] = [None if a is None or b is None else b - a
                                        for a, b in zip(per_class, real_per_class, strict=True)]
        rows.append(row)
    return rows


def correlations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pearson correlation of CAS Top-1 with IS and with FID over each generator's truncation
    sweep (the paper: BigGAN-deep, corr(Top-1, FID) = 0.16, corr(Top-1, IS) = -0.86)."""
    out = []
    fd = fd_key(rows)
    for generator in dict.fromkeys(r["generator"] for r in rows):
        sweep = [r for r in rows if r["generator"] == generator and r["mode"] == "cas"
                 and r["truncation"] is not None and "top1" in r and fd in r and "is_mean" in r]
        if len(sweep) >= 3:
            top1 = [r["top1"] for r in sweep]
            out.append({"generator": generator, "points": len(sweep),
                        "top1_vs_is": _pearson(top1, [r["is_mean"] for r in sweep]),
                        "top1_vs_fid": _pearson(top1, [r[fd] for r in sweep])})
    return out


def _pearson(a: list[float], b: list[float]) -> float | None:
    try:
        return statistics.correlation(a, b)
    except statistics.StatisticsError:  # a constant series has no correlation
        return None


def _mean_per_class(records: list[dict[str, Any]]) -> list[float | None]:
    columns = zip(*(r["per_class_accuracy"] for r in records), strict=True)
    return [None if any(v is None for v in col) else statistics.fmean(col) for col in columns]


def results_csv(records: list[dict[str, Any]], class_names: list[str]) -> str:
    """One row per cell; per-class accuracies as ``acc_<class>`` columns."""
    scalar = ["generator", "kind", "mode", "truncation", "augmentation_ratio", "seed", "status", "top1", "top5",
              "n_train", "n_val", "recipe", "train_seconds", "sample_set", "error"]
    extra = sorted({k for r in records for k, v in r.items()
                    if k not in scalar and isinstance(v, int | float | str) and not isinstance(v, bool)
                    and k not in {"dataset", "steps_per_epoch", "world_size"}})
    header = scalar + extra + [f"acc_{c}" for c in class_names]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for r in records:
        per_class = r.get("per_class_accuracy") or [None] * len(class_names)
        writer.writerow([_cell(r.get(k)) for k in scalar + extra] + [_cell(a) for a in per_class])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The terminal table: generator, τ, Top-1, Top-5, worst three classes."""
    head = (f"{'generator':<16} {'τ':>5} {'train on':<10} {'Top-1':>13} {'Top-5':>13} {'FID':>8} {'IS':>7}"
            f"  worst classes (accuracy)")
    lines = [head, "-" * len(head)]
    fd = fd_key(rows)
    for row in rows:
        tau = "-" if row["truncation"] is None else f"{row['truncation']:g}"
        mode = {"real": "real", "cas": "samples"}.get(row["mode"]) or f"real+{row['augmentation_ratio']:g}×"
        if "top1" not in row:
            lines.append(f"{row['generator']:<16} {tau:>5} {mode:<10} FAILED: {'; '.join(row['errors'])}")
            continue
        pm = row["seeds"] - row["failed"] > 1
        top1 = f"{row['top1']:.4f}" + (f"±{row['top1_std']:.3f}" if pm else "")
        top5 = f"{row['top5']:.4f}" + (f"±{row['top5_std']:.3f}" if pm else "")
        worst = ", ".join(f"{name} {acc:.2f}" for name, acc in row["worst_classes"])
        fid = f"{row[fd]:.2f}" if fd in row else "-"
        inception = f"{row['is_mean']:.2f}" if "is_mean" in row else "-"
        lines.append(f"{row['generator']:<16} {tau:>5} {mode:<10} {top1:>13} {top5:>13} {fid:>8} {inception:>7}"
                     f"  {worst}")
    return lines


def write_report(store: Store, run_folder: str, records: list[dict[str, Any]], real: RealData,
                 elapsed: float) -> list[dict[str, Any]]:
    """Write the run's results and report into the store; print the table."""
    class_names = list(real.class_names)
    rows = summarize(records, class_names)
    extractors = sorted({name for r in records for name in (r.get("extractor_names") or {}).values()})
    info = {"run": store.path(run_folder), "dataset": real.key, "class_names": class_names,
            "feature_extractor": ", ".join(extractors) or None,
            "n_train": real.n_train, "elapsed_seconds": round(elapsed, 1)}
    store.write_json(records, run_folder, "results.json")
    store.write_json(info, run_folder, "run.json")
    store.write_text(results_csv(records, class_names), run_folder, "results.csv")
    corr = correlations(rows)
    store.write_text(render_markdown(rows, corr, info), run_folder, "report.md")
    store.write_text(render_html(rows, corr, info), run_folder, "report.html")
    print("\n".join(["", *table_lines(rows), ""]), flush=True)
    status(f"sweep finished in {format_seconds(elapsed)}; results, report and config in:")
    return rows
