"""From a run's records to its summary rows, correlations, per-class tables, CSV files and terminal table.

Everything here is a pure function of the records (``Record.to_dict()``, as results.json holds them)
and the run's info (run.json), so the sweep and ``harness report`` make the same views from the same
records. A summary row is one cell of the grid without its seed: generator, mode, knob values and
augmentation ratio, with Top-1/Top-5 and their 95% intervals over seeds (or the Wilson interval of one
seed's Top-1 over the test images), the sample set's IS/FID/KID/precision/recall, and per-class accuracy.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.report.figures import best_and_worst_classes, class_counts
from harness.report.statistics import seed_summary, wilson_interval

MODE_NAMES = {"real": "real", "cas": "samples (CAS)", "nas": "real + samples (NAS)"}


@dataclass(frozen=True)
class MetricColumn:
    """One sample-set metric as a table shows it: its record keys, scale and direction."""

    name: str
    key: str
    std: str | None
    scale: float
    digits: int
    lower_is_better: bool


def _numeric_keys(records: Sequence[Mapping[str, Any]]) -> set[str]:
    return {k for r in records for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def metric_columns(records: Sequence[Mapping[str, Any]]) -> list[MetricColumn]:
    """The metrics the records carry, in the paper's order: IS, FID (``fid``, or ``fd_<extractor>``),
    KID (``kid_mean``/``kid_<extractor>_mean``), precision, recall."""
    keys = _numeric_keys(records)
    out = []
    if "is_mean" in keys:
        out.append(MetricColumn("IS", "is_mean", "is_std" if "is_std" in keys else None, 1.0, 2, False))
    for k in sorted(k for k in keys if k == "fid" or k.startswith("fd_")):
        out.append(MetricColumn("FID" if k in ("fid", "fd_inception") else f"FD ({k[3:]})", k, None, 1.0, 2, True))
    for k in sorted(k for k in keys if k.startswith("kid") and k.endswith("_mean")):
        extractor = k[4:-5]
        std = k[:-5] + "_std"
        out.append(MetricColumn("KID×10³" + (f" ({extractor})" if extractor else ""), k,
                                std if std in keys else None, 1000.0, 2, True))
    for what in ("precision", "recall"):
        for k in sorted(k for k in keys if k == what or k.startswith(what + "_")):
            out.append(MetricColumn(what + (f" ({k[len(what) + 1:]})" if k != what else ""), k, None, 1.0, 3, False))
    return out


def knob_names(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every knob that is set (not None) in some record: truncation first, then by name."""
    names = {k for r in records for k, v in (r.get("knobs") or {}).items() if v is not None}
    return sorted(names, key=lambda k: (k != "truncation", k))


def swept_knobs(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The knobs that take at least two values within one generator's sample sets."""
    values: dict[tuple[str, str], set] = {}
    for r in records:
        for k, v in (r.get("knobs") or {}).items():
            if v is not None:
                values.setdefault((r["generator"], k), set()).add(v)
    return [k for k in knob_names(records) if any(len(vs) > 1 for (_, name), vs in values.items() if name == k)]


def _mean_per_class(records: Sequence[Mapping[str, Any]]) -> list[float | None]:
    columns = zip(*(r["per_class_accuracy"] for r in records), strict=True)
    return [None if any(v is None for v in col) else statistics.fmean(col) for col in columns]


def per_class_totals(record: Mapping[str, Any]) -> list[int] | None:
    """Test images per class (the confusion matrix's row sums), where the record kept its confusion matrix."""
    confusion = record.get("confusion")
    return None if not confusion else [int(sum(row)) for row in confusion]


def per_class_correct(record: Mapping[str, Any]) -> list[int] | None:
    """Correctly classified test images per class (the confusion matrix's diagonal)."""
    confusion = record.get("confusion")
    return None if not confusion else [int(confusion[i][i]) for i in range(len(confusion))]


def _interval(values: list[float], n_test: int | None) -> tuple[tuple[float, float] | None, str | None, float | None]:
    """(95% interval, how it was made, std over seeds): the t-interval over two or more seeds, else the
    Wilson interval of one seed's accuracy over its ``n_test`` test images."""
    if len(values) >= 2:
        s = seed_summary(values)
        return (s.low, s.high), "t", s.std
    if not n_test:
        return None, None, None
    low, high = wilson_interval(int(round(values[0] * n_test)), n_test)
    return (min(float(low), values[0]), max(float(high), values[0])), "wilson", None


def _metric_n(record: Mapping[str, Any], info: Mapping[str, Any]) -> int | None:
    """Samples behind the record's IS and FID: ``metrics_num_samples`` where the record names it, else the
    whole measured set (the test split for Real, the sample set otherwise)."""
    if record.get("metrics_num_samples") is not None:
        return int(record["metrics_num_samples"])
    if record["mode"] == "real":
        return info.get("n_val")
    return (info.get("set_sizes") or {}).get(record.get("sample_set") or "")


def summarize(records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (generator, mode, knob values, augmentation ratio) in record order, seeds pooled; the best
    row of each generator and mode (highest Top-1) has ``best`` set."""
    class_names = list(info["class_names"])
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        knobs = tuple(sorted((r.get("knobs") or {}).items()))
        groups.setdefault((r["generator"], r["mode"], knobs, r.get("augmentation_ratio")), []).append(r)
    real_ok = [r for r in records if r["mode"] == "real" and r["status"] == "ok"]
    real_per_class = _mean_per_class(real_ok) if real_ok else None
    columns = metric_columns(records)
    rows = []
    for (generator, mode, knobs, ratio), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        first = rs[0]
        row: dict[str, Any] = {
            "generator": generator, "kind": first.get("kind"), "mode": mode, "knobs": dict(knobs),
            "augmentation_ratio": ratio, "truncation_mode": first.get("truncation_mode"), "cells": len(rs),
            "seeds": len(ok), "seed_list": [r["seed"] for r in ok], "failed": len(rs) - len(ok),
            "errors": sorted({str(r.get("error")) for r in rs if r["status"] != "ok"}),
            "sample_set": first.get("sample_set"), "sample_multiplier": first.get("sample_multiplier"),
            "metric_n": _metric_n(first, info), "best": False}
        for column in columns:
            for key in (column.key, column.std):
                values = [r[key] for r in rs if key and r.get(key) is not None]
                if values:
                    row[key] = statistics.fmean(values)
        if ok:
            n_test = ok[0].get("n_val") or info.get("n_val")
            row["n_val"] = n_test
            for key in ("top1", "top5"):
                values = [float(r[key]) for r in ok]
                row[key] = statistics.fmean(values)
                row[f"{key}_ci"], row[f"{key}_interval"], row[f"{key}_std"] = _interval(values, n_test)
            if all(r.get("per_class_accuracy") for r in ok):
                per_class = _mean_per_class(ok)
                row["per_class_accuracy"] = per_class
                row["per_class_n"] = per_class_totals(ok[0])
                row["per_class_correct"] = per_class_correct(ok[0])
                ranked = sorted((a, i) for i, a in enumerate(per_class) if a is not None)
                row["worst_classes"] = [(class_names[i], a) for a, i in ranked[:3]]
                if real_per_class and mode != "real":
                    row["class_counts"] = class_counts(real_per_class, per_class)
            if all(r.get("predictions") for r in ok):
                row["predictions"] = [r["predictions"] for r in ok]
        rows.append(row)
    for key in {(r["generator"], r["mode"]) for r in rows if r["mode"] != "real"}:
        scored = [r for r in rows if (r["generator"], r["mode"]) == key and r.get("top1") is not None]
        if scored:
            max(scored, key=lambda r: r["top1"])["best"] = True
    return rows


def real_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Real baseline row (the first, where a config names several)."""
    return next((r for r in rows if r["mode"] == "real" and r.get("top1") is not None), None)


def best_rows(rows: Sequence[Mapping[str, Any]], mode: str = "cas") -> list[Mapping[str, Any]]:
    """Each generator's best row of ``mode`` (highest Top-1), in row order."""
    return [r for r in rows if r["mode"] == mode and r["best"]]


def class_extremes(rows: Sequence[Mapping[str, Any]], num_classes: int, k: int = 5) -> list[dict[str, Any]]:
    """For each generator's best CAS row with a sample set: its ``k`` best and worst classes relative to Real
    (by its own accuracy where there is no Real row), with the reference accuracies used."""
    real = real_row(rows)
    reference = real["per_class_accuracy"] if real and real.get("per_class_accuracy") else [0.0] * num_classes
    out = []
    for row in best_rows(rows):
        if row.get("per_class_accuracy") and row.get("sample_set"):
            best, worst = best_and_worst_classes(reference, row["per_class_accuracy"], max(1, min(k, num_classes // 2)))
            out.append({"row": row, "best": best, "worst": worst, "real_per_class": reference})
    return out


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    """(Pearson, Spearman); None where a series is constant or has fewer than three points."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    return float(stats.pearsonr(x, y)[0]), float(stats.spearmanr(x, y)[0])


def correlations(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pearson and Spearman correlation of CAS Top-1 with IS and with FID: over each generator's sweep of
    each swept knob (other knobs held fixed), then across every generator's CAS rows together (the paper,
    BigGAN-deep's truncation sweep: corr(Top-1, FID) = 0.16, corr(Top-1, IS) = −0.86)."""
    cas = [r for r in rows if r["mode"] == "cas" and r.get("top1") is not None]
    fid = next((c.key for c in metric_columns(cas) if c.lower_is_better and not c.key.startswith("kid")), None)
    out = []

    def entry(scope: str, knob: str, points: list[Mapping[str, Any]]) -> None:
        top1 = [r["top1"] for r in points]
        item: dict[str, Any] = {"scope": scope, "knob": knob, "points": len(points), "fid_key": fid}
        for name, key in (("is", "is_mean"), ("fid", fid)):
            have = [r for r in points if key and r.get(key) is not None]
            pearson, spearman = (_pair([r["top1"] for r in have], [r[key] for r in have])
                                 if len(have) == len(top1) else (None, None))
            item[f"pearson_{name}"], item[f"spearman_{name}"] = pearson, spearman
        out.append(item)

    for knob in swept_knobs(cas):
        for generator in dict.fromkeys(r["generator"] for r in cas):
            series: dict[tuple, list] = {}
            for r in cas:
                if r["generator"] == generator and r["knobs"].get(knob) is not None:
                    rest = tuple(sorted((k, v) for k, v in r["knobs"].items() if k != knob))
                    series.setdefault(rest, []).append(r)
            for rest, points in series.items():
                if len(points) >= 3:
                    label = generator + (f" ({', '.join(f'{k}={v:g}' for k, v in rest if v is not None)})"
                                         if any(v is not None for _, v in rest) else "")
                    entry(label, knob, points)
    if len({r["generator"] for r in cas}) > 1 and len(cas) >= 3:
        entry("all generators", "every CAS row", cas)
    return out


def _fmt(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


CSV_FIELDS = ("generator", "kind", "mode", "augmentation_ratio", "seed", "status", "top1", "top5", "n_train",
              "n_val", "truncation_mode", "recipe", "train_seconds", "sample_set", "predictions", "error")


def results_csv(records: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> str:
    """One row per cell (the records as they are): knob values as columns named by the knob, every scalar
    metric, then per-class accuracies as ``acc_<class>`` columns."""
    knobs = knob_names(records)
    skip = set(CSV_FIELDS) | set(knobs) | {"dataset", "steps_per_epoch", "world_size", "record_version",
                                           "truncation", "model"}
    extra = sorted({k for r in records for k, v in r.items()
                    if k not in skip and isinstance(v, int | float | str) and not isinstance(v, bool)})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_FIELDS[:3], *knobs, *CSV_FIELDS[3:], *extra, *(f"acc_{c}" for c in class_names)])
    for r in records:
        per_class = r.get("per_class_accuracy") or [None] * len(class_names)
        writer.writerow([_fmt(r.get(k)) for k in CSV_FIELDS[:3]] + [_fmt((r.get("knobs") or {}).get(k)) for k in knobs]
                        + [_fmt(r.get(k)) for k in (*CSV_FIELDS[3:], *extra)] + [_fmt(a) for a in per_class])
    return out.getvalue()


def per_class_rows(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Per summary row and class: accuracy (mean over seeds), test images, its Wilson 95% interval (of one
    classifier with that accuracy on those images) and Real's accuracy on the class."""
    real = real_row(rows)
    out = []
    for row in rows:
        per_class, totals = row.get("per_class_accuracy"), row.get("per_class_n")
        if not per_class:
            continue
        for i, name in enumerate(class_names):
            acc, n = per_class[i], (totals[i] if totals else None)
            low = high = None
            if acc is not None and n:
                lo, hi = wilson_interval(int(round(acc * n)), n)
                low, high = float(lo), float(hi)
            out.append({"generator": row["generator"], "mode": row["mode"], "knobs": row["knobs"],
                        "augmentation_ratio": row["augmentation_ratio"], "class_index": i, "class": name,
                        "accuracy": acc, "n": n, "wilson_low": low, "wilson_high": high,
                        "real_accuracy": real["per_class_accuracy"][i] if real and real.get("per_class_accuracy")
                        else None})
    return out


def per_class_csv(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> str:
    """``per_class.csv``: :func:`per_class_rows` with knob values as JSON."""
    out = io.StringIO()
    fields = ["generator", "mode", "knobs", "augmentation_ratio", "class_index", "class", "accuracy", "n",
              "wilson_low", "wilson_high", "real_accuracy"]
    writer = csv.DictWriter(out, fields)
    writer.writeheader()
    for r in per_class_rows(rows, class_names):
        writer.writerow({**{k: _fmt(v) for k, v in r.items()}, "knobs": json.dumps(r["knobs"], sort_keys=True)})
    return out.getvalue()


def knob_value(row: Mapping[str, Any], knob: str) -> str:
    value = (row.get("knobs") or {}).get(knob)
    return "–" if value is None else f"{value:g}"


def knob_header(knob: str) -> str:
    return "τ" if knob == "truncation" else knob


def mode_label(row: Mapping[str, Any]) -> str:
    if row["mode"] == "nas":
        return f"real + {row['augmentation_ratio']:g}×samples"
    if row["mode"] == "real-steps":
        return f"real, steps of NAS r={row['augmentation_ratio']:g}"
    if row["mode"] == "cas" and row.get("sample_multiplier") not in (None, 1):
        return f"{row['sample_multiplier']:g}×samples (CAS)"
    return MODE_NAMES.get(row["mode"], row["mode"])


def accuracy_text(row: Mapping[str, Any], key: str, scale: float = 100.0, digits: int = 2) -> str:
    """``63.33 [58.21, 68.02]``: the mean and its 95% interval."""
    if row.get(key) is None:
        return "–"
    ci = row.get(f"{key}_ci")
    text = f"{scale * row[key]:.{digits}f}"
    return text + (f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]" if ci else "")


def table_lines(rows: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The terminal table: generator, knob values, what it trained on, Top-1 [95% interval], Top-5, FID,
    IS and the worst three classes; ★ and ≈ as in the report's summary."""
    knobs = knob_names(records)
    fid = next((c for c in metric_columns(records) if c.lower_is_better and not c.key.startswith("kid")), None)
    knob_width = {k: max(5, len(knob_header(k))) for k in knobs}
    fid_name = fid.name if fid else "FID"
    w = max(8, len(fid_name))
    head = (f"  {'generator':<16} " + "".join(f"{knob_header(k):>{knob_width[k]}} " for k in knobs)
            + f"{'train on':<22} {'Top-1 % [95% interval]':>24} {'Top-5 %':>8} {fid_name:>{w}} {'IS':>7}"
            + "  worst classes")
    lines = [head, "-" * len(head)]
    for row in rows:
        mark = "★ " if row["best"] else "≈ " if row.get("tied") else "  "
        start = f"{mark}{row['generator']:<16} " + "".join(f"{knob_value(row, k):>{knob_width[k]}} " for k in knobs)
        if row.get("top1") is None:
            lines.append(start + f"{mode_label(row):<22} FAILED: {'; '.join(row['errors'])}")
            continue
        worst = ", ".join(f"{name} {100 * acc:.0f}%" for name, acc in row.get("worst_classes", []))
        fid_text = f"{row[fid.key]:.2f}" if fid and row.get(fid.key) is not None else "-"
        is_text = f"{row['is_mean']:.2f}" if row.get("is_mean") is not None else "-"
        lines.append(start + f"{mode_label(row):<22} {accuracy_text(row, 'top1'):>24} {100 * row['top5']:>8.2f} "
                     f"{fid_text:>{w}} {is_text:>7}  {worst}")
    if any(row["best"] for row in rows):
        lines.append("★ the best Top-1 of its generator and training mode; ≈ cannot be told apart from it")
    return lines
