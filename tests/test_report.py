"""Summary rows, intervals, correlations, CSV, terminal table and Markdown from records the test writes."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from scipy import stats

from harness.report.aggregate import correlations, knob_names, results_csv, summarize, swept_knobs, table_lines
from harness.report.compare import class_comparisons, mark_ties
from harness.report.render import render_markdown
from harness.report.statistics import wilson_interval

NAMES = ["cat", "dog", "owl"]
INFO = {"run": "r", "name": "r", "dataset": "d", "class_names": NAMES, "n_train": 9, "n_val": 300,
        "test_split": "test", "image_shape": [3, 8, 8], "set_sizes": {"samples/g": 9}}


def _record(generator: str, mode: str, knobs: dict, seed: int, per_class: list[float | None], **extra: object) -> dict:
    correct = [int(round(100 * (a or 0))) for a in per_class]
    confusion = [[correct[i] if j == i else (100 - correct[i] if j == (i + 1) % 3 else 0) for j in range(3)]
                 for i in range(3)]
    return {"generator": generator, "kind": "cvae", "mode": mode, "knobs": knobs, "truncation": knobs.get("truncation"),
            "augmentation_ratio": None, "seed": seed, "status": "ok", "error": None,
            "top1": sum(a or 0 for a in per_class) / 3, "top5": 1.0, "per_class_accuracy": per_class,
            "confusion": confusion, "n_val": 300, "sample_set": None if mode == "real" else "samples/g",
            "truncation_mode": None if mode == "real" else "scaled", **extra}


RECORDS = [
    _record("real", "real", {}, 0, [1.0, 0.9, 1.0]),
    _record("g", "cas", {"truncation": 0.5}, 0, [0.2, 0.9, 0.6], fid=10.0, is_mean=3.0, is_std=0.1),
    _record("g", "cas", {"truncation": 0.5}, 1, [0.4, 0.9, 0.8], fid=12.0, is_mean=3.2, is_std=0.3),
    {**_record("g", "cas", {"truncation": 1.0}, 0, [0, 0, 0]), "status": "failed", "error": "GeneratorError: broken"},
]


def test_rows_pool_seeds_with_t_intervals_and_single_runs_with_wilson() -> None:
    real, half, one = summarize(RECORDS, INFO)
    assert half["seeds"] == 2 and half["top1"] == pytest.approx(0.6333, abs=1e-4) and half["fid"] == 11.0
    values = [RECORDS[1]["top1"], RECORDS[2]["top1"]]
    t = stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
    assert half["top1_interval"] == "t" and half["top1_ci"] == pytest.approx((np.mean(values) - t, np.mean(values) + t))
    low, high = wilson_interval(int(round(real["top1"] * 300)), 300)
    assert real["top1_interval"] == "wilson" and real["top1_ci"] == pytest.approx((low, high))
    assert half["worst_classes"][0] == ("cat", pytest.approx(0.3)) and half["best"] and not real["best"]
    assert half["class_counts"] == {"at_or_above_real": 1, "at_zero": 0}
    assert half["metric_n"] == 9 and real["metric_n"] == 300 and half["is_std"] == pytest.approx(0.2)
    assert "top1" not in one and one["errors"] == ["GeneratorError: broken"] and one["failed"] == 1
    assert half["per_class_n"] == [100, 100, 100] and half["per_class_correct"] == [20, 90, 60]  # first seed


def test_terminal_table_shows_every_knob_and_marks_the_best_row() -> None:
    records = [{**r, "knobs": {**r["knobs"], "guidance_scale": 2.0}} if r["mode"] == "cas" else r for r in RECORDS]
    lines = table_lines(summarize(records, INFO), records)
    assert lines[0].split()[:4] == ["generator", "τ", "guidance_scale", "train"]
    assert "FAILED: GeneratorError: broken" in lines[4] and "cat 30%" in lines[3] and lines[3].startswith("★ g")
    assert "63.33 [" in lines[3] and lines[-1].startswith("★ the best")
    assert knob_names(records) == ["truncation", "guidance_scale"] and swept_knobs(records) == ["truncation"]


def test_ties_by_overlapping_intervals_without_predictions() -> None:
    close = [_record("g", "cas", {"truncation": t}, 0, pc)
             for t, pc in ((0.5, [0.6, 0.9, 0.7]), (1.0, [0.62, 0.9, 0.7]), (1.5, [0.2, 0.3, 0.3]))]
    rows = summarize(RECORDS[:1] + close, INFO)
    mark_ties(rows, None, None)
    assert [r["best"] for r in rows] == [False, False, True, False]
    assert rows[1]["tied"] and not rows[3]["tied"] and rows[3]["tie_method"] == "overlapping intervals"
    assert "tied" not in rows[0]  # Real is no generator's row


def test_correlations_pearson_and_spearman_over_a_sweep_and_across_generators() -> None:
    points = [(0.2, 0.5, 9.0, 5.0), (0.5, 0.7, 7.0, 4.0), (1.0, 0.9, 8.0, 3.0), (1.5, 0.95, 7.5, 2.0)]
    records = [_record("g", "cas", {"truncation": t}, 0, [a, a, a], fid=f, is_mean=i) for t, a, f, i in points]
    records.append(_record("h", "cas", {}, 0, [0.1, 0.1, 0.1], fid=30.0, is_mean=1.0))
    [sweep, pooled] = correlations(summarize(records, INFO))
    top1, fid = [p[1] for p in points], [p[2] for p in points]
    assert sweep["scope"] == "g" and sweep["knob"] == "truncation" and sweep["points"] == 4
    assert sweep["pearson_is"] == pytest.approx(stats.pearsonr(top1, [p[3] for p in points])[0])
    assert sweep["spearman_is"] == pytest.approx(-1.0)
    assert sweep["pearson_fid"] == pytest.approx(stats.pearsonr(top1, fid)[0])
    assert sweep["spearman_fid"] == pytest.approx(stats.spearmanr(top1, fid)[0])
    assert pooled["scope"] == "all generators" and pooled["points"] == 5
    assert correlations(summarize(records[:2], INFO)) == []  # fewer than three points: nothing claimed


def test_results_csv_has_knob_and_per_class_columns() -> None:
    records = [_record("g", "cas", {"truncation": 0.5}, 0, [0.2, None, 0.6], fid=1.5)]
    rows = list(csv.DictReader(io.StringIO(results_csv(records, NAMES))))
    assert rows[0]["truncation"] == "0.5" and rows[0]["acc_cat"] == "0.2" and rows[0]["acc_dog"] == ""
    assert rows[0]["fid"] == "1.5" and "confusion" not in rows[0]


def test_class_comparison_and_markdown_parts() -> None:
    rows = summarize(RECORDS, INFO)
    [pair] = class_comparisons(rows)
    assert pair["a"]["generator"] == "g" and pair["b"]["generator"] == "real"
    comparison = pair["comparison"]  # 20/90/60 against 100/90/100 of 100 images each
    assert comparison.share_b_better == pytest.approx(2 / 3) and comparison.share_tied == pytest.approx(1 / 3)
    assert list(comparison.b_better) == [0, 2] and list(comparison.a_better) == []
    md = render_markdown(rows, RECORDS, INFO)
    for part in ("## Summary", "## CAS, IS and FID against the sampling knobs", "## Per-class accuracy against Real",
                 "## Best and worst classes", "## Provenance"):
        assert part in md
    assert "| ★ | g | 0.5 | samples (CAS) |" in md and "failed: GeneratorError: broken" in md
    assert "real test split (300 images)" in md and "| cat | 100.0 [" in md
