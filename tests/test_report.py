"""Aggregation and rendering: seeds averaged, worst classes, gaps to real, correlations."""

from __future__ import annotations

import csv
import io

import pytest

from harness.report.aggregate import correlations, results_csv, summarize, table_lines
from harness.report.render import render_html, render_markdown

NAMES = ["cat", "dog", "owl"]


def _record(generator: str, mode: str, tau: float | None, seed: int, per_class: list[float],
            **extra: float) -> dict:
    return {"generator": generator, "kind": "cvae", "mode": mode, "truncation": tau, "augmentation_ratio": None,
            "seed": seed, "status": "ok", "top1": sum(a or 0 for a in per_class) / 3, "top5": 1.0,
            "per_class_accuracy": per_class, **extra}


def test_summary_rows_worst_classes_gaps_and_failures() -> None:
    records = [
        _record("real", "real", None, 0, [1.0, 0.9, 1.0]),
        _record("g", "cas", 0.5, 0, [0.2, 0.9, 0.6], fd_inception=10.0, is_mean=3.0),
        _record("g", "cas", 0.5, 1, [0.4, 0.9, 0.8], fd_inception=12.0, is_mean=3.2),
        {**_record("g", "cas", 1.0, 0, [0, 0, 0]), "status": "failed", "error": "GeneratorError: broken"},
    ]
    rows = summarize(records, NAMES)
    real, half, one = rows
    assert half["seeds"] == 2 and half["top1"] == pytest.approx(0.6333, abs=1e-4)
    assert half["top1_std"] == pytest.approx(0.0667, abs=1e-4) and half["fd_inception"] == 11.0
    assert half["worst_classes"][0] == ("cat", pytest.approx(0.3))
    assert half["per_class_gap"] == pytest.approx([0.7, 0.0, 0.3])
    assert "top1" not in one and one["errors"] == ["GeneratorError: broken"]
    lines = table_lines(rows)
    assert "FAILED: GeneratorError: broken" in lines[-1]
    assert "0.6333±0.067" in lines[3] and "cat 0.30" in lines[3]

    info = {"run": "r", "dataset": "d", "class_names": NAMES, "n_train": 9, "feature_extractor": "domain-x"}
    md = render_markdown(rows, [], info)
    assert "| g | 0.5 | CAS (samples only) | 63.33 ± 6.67 |" in md and "cat 30.00 (−70.0)" in md
    page = render_html(rows, [], info)
    assert "<code>domain-x</code>" in page and "title='cat: 30.00%'" in page


def test_correlations_over_a_truncation_sweep() -> None:
    rows = summarize([_record("g", "cas", t, 0, [a, a, a], fd_inception=f, is_mean=i)
                      for t, a, f, i in [(0.2, 0.5, 9.0, 5.0), (0.5, 0.7, 7.0, 4.0), (1.0, 0.9, 8.0, 3.0)]], NAMES)
    [corr] = correlations(rows)
    assert corr["points"] == 3 and corr["top1_vs_is"] == pytest.approx(-1.0)
    assert corr["top1_vs_fid"] == pytest.approx(-0.5)
    assert correlations(rows[:2]) == []  # fewer than three points: no correlation claimed


def test_results_csv_has_per_class_columns() -> None:
    records = [_record("g", "cas", 0.5, 0, [0.2, None, 0.6], fd_inception=1.5)]
    rows = list(csv.DictReader(io.StringIO(results_csv(records, NAMES))))
    assert rows[0]["acc_cat"] == "0.2" and rows[0]["acc_dog"] == "" and rows[0]["fd_inception"] == "1.5"
