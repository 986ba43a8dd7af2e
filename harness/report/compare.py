"""Two cells compared after the fact, from the test-set predictions their trials kept.

A cell is named by its run folder and ``generator[,knob=value][,mode=…][,ratio=…][,seed=…]``; without a
seed, every successful seed of the cell is pooled. The comparison is the Top-1 difference with a 95%
paired-bootstrap interval over the test images (stratified by class; seeds resampled where a cell has
several) and its p-value, McNemar's test where each cell has one seed, and class by class Fisher's exact
test with Benjamini–Hochberg control. The report marks its rows with the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.report.aggregate import best_rows, real_row
from harness.report.predictions import correct_from_predictions, decode_predictions
from harness.report.statistics import (
    McNemar,
    PairedDifference,
    PerClassComparison,
    mcnemar,
    paired_bootstrap,
    per_class_comparison,
)
from harness.store import Store

SELECTORS = ("mode", "ratio", "seed")


class CellError(ValueError):
    """A cell name that matches no cell, or several, of a run."""


def parse_cell(text: str) -> tuple[str, dict[str, str]]:
    """``RUN#generator,knob=value,…`` → (run, {"generator": …, name: value}). ``RUN`` may be empty (then the
    caller's default run is meant)."""
    run, sep, cell = text.rpartition("#")
    if not sep or not cell:
        raise CellError(f"{text!r}: expected RUN#GENERATOR[,KNOB=VALUE][,mode=cas|nas|real][,ratio=R][,seed=S]")
    generator, *pairs = cell.split(",")
    fields = {"generator": generator.strip()}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise CellError(f"{text!r}: {pair!r} is not NAME=VALUE")
        fields[name.strip()] = value.strip()
    return run, fields


def _number(value: str, what: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise CellError(f"{where}: {what}={value!r} is not a number") from None


def cell_name(record: Mapping[str, Any]) -> str:
    """``cvae τ=0.5 (CAS)``, ``real``: a cell without its seed."""
    knobs = [f"{'τ' if k == 'truncation' else k}={v:g}" for k, v in (record.get("knobs") or {}).items()
             if v is not None]
    if record["mode"] == "real":
        return " ".join([record["generator"], *knobs])
    mode = f"NAS r={record['augmentation_ratio']:g}" if record["mode"] == "nas" else "CAS"
    return " ".join([record["generator"], *knobs, f"({mode})"])


def cell_label(records: Sequence[Mapping[str, Any]]) -> str:
    """``cvae τ=0.5 (CAS), seeds 0, 1``."""
    seeds = ", ".join(str(r["seed"]) for r in records)
    return f"{cell_name(records[0])}, seed{'s' if len(records) > 1 else ''} {seeds}"


def select_cell(records: Sequence[Mapping[str, Any]], fields: Mapping[str, str], where: str) -> list[dict[str, Any]]:
    """The successful records (one per seed) of the one cell ``fields`` names in a run's records."""
    generator = fields["generator"]
    mine = [r for r in records if r["generator"] == generator]
    if not mine:
        names = ", ".join(dict.fromkeys(r["generator"] for r in records))
        raise CellError(f"{where}: no generator {generator!r}; the run has {names}")
    mode = fields.get("mode") or ("real" if mine[0]["mode"] == "real" else "cas")
    mine = [r for r in mine if r["mode"] == mode]
    if "ratio" in fields:
        mine = [r for r in mine if r.get("augmentation_ratio") == _number(fields["ratio"], "ratio", where)]
    if "seed" in fields:
        mine = [r for r in mine if r["seed"] == int(_number(fields["seed"], "seed", where))]
    known = {k for r in mine for k in (r.get("knobs") or {})}
    for name, value in fields.items():
        if name in ("generator", *SELECTORS):
            continue
        if name not in known:
            raise CellError(f"{where}: {generator} has no knob {name!r}; its knobs: {', '.join(sorted(known)) or '-'}")
        mine = [r for r in mine if (r.get("knobs") or {}).get(name) is not None
                and np.isclose(r["knobs"][name], _number(value, name, where))]
    cells = {(tuple(sorted((r.get("knobs") or {}).items())), r.get("augmentation_ratio")) for r in mine}
    if len(cells) != 1:
        options = ", ".join(sorted({cell_name(r) for r in mine}))
        problem = ("matches no cell" if not cells
                   else f"matches several cells ({options}); name the knobs, mode or ratio")
        raise CellError(f"{where}: {generator} {dict(fields)} {problem}")
    ok = [r for r in mine if r["status"] == "ok"]
    if not ok:
        raise CellError(f"{where}: {cell_label(mine)} failed: {mine[0].get('error')}")
    return sorted(ok, key=lambda r: r["seed"])


def correctness(store: Store, paths: Sequence[str], labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Top-k correctness per seed and test image, [seeds, N], from stored predictions files."""
    out = []
    for path in paths:
        pred = decode_predictions(store.read_bytes(path))
        if len(pred) != len(labels):
            raise ValueError(f"{store.path(path)}: predictions for {len(pred)} images, but the test split has "
                             f"{len(labels)}")
        out.append(correct_from_predictions(pred, labels, k))
    return np.stack(out)


def predictions_of(records: Sequence[Mapping[str, Any]], where: str) -> list[str]:
    """The cell's predictions files (one per seed), or an error saying the trials did not keep them."""
    missing = [r["seed"] for r in records if not r.get("predictions")]
    if missing:
        raise CellError(f"{where}: {cell_label(records)} has no stored predictions for seed(s) {missing} (its "
                        f"trials were made by a harness that did not keep them); train it again to compare")
    return [r["predictions"] for r in records]


@dataclass(frozen=True)
class Comparison:
    """Cell a against cell b on the same test images."""

    top1_a: float
    top1_b: float
    difference: PairedDifference
    mcnemar: McNemar | None
    per_class: PerClassComparison


def compare(correct_a: np.ndarray, correct_b: np.ndarray, labels: np.ndarray, num_classes: int,
            n_boot: int = 10_000) -> Comparison:
    """Top-1 difference a − b (paired bootstrap stratified by class, McNemar for one seed each) and the
    per-class comparison of the first seed of each (Fisher's exact test per class, Benjamini–Hochberg)."""
    diff = paired_bootstrap(correct_a, correct_b, n_boot=n_boot, groups=labels)
    test = mcnemar(correct_a, correct_b) if len(correct_a) == len(correct_b) == 1 else None
    totals = np.bincount(labels, minlength=num_classes)
    per_class = per_class_comparison(np.bincount(labels, weights=correct_a[0], minlength=num_classes),
                                     np.bincount(labels, weights=correct_b[0], minlength=num_classes), totals)
    return Comparison(float(correct_a.mean()), float(correct_b.mean()), diff, test, per_class)


def comparison_lines(c: Comparison, label_a: str, label_b: str, class_names: Sequence[str]) -> list[str]:
    """The comparison as a reader reads it."""
    d = c.difference
    lines = [f"a: {label_a}: Top-1 {100 * c.top1_a:.2f}%", f"b: {label_b}: Top-1 {100 * c.top1_b:.2f}%",
             f"a − b: {100 * d.difference:+.2f} points, 95% paired-bootstrap interval "
             f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}] over {d.n_images} test images (stratified by class; "
             f"seeds a/b: {d.n_seeds_a}/{d.n_seeds_b}; {d.n_boot} resamples), p = {d.pvalue:.4g}"]
    if c.mcnemar:
        m = c.mcnemar
        lines.append(f"McNemar ({m.method}): p = {m.pvalue:.4g}; {m.a_only} images only a gets right, "
                     f"{m.b_only} only b")
    p = c.per_class
    lines.append(f"per class (first seed of each): a better on {100 * p.share_a_better:.1f}% of classes, b on "
                 f"{100 * p.share_b_better:.1f}%, tied on {100 * p.share_tied:.1f}%")
    for who, which in (("a", p.a_better), ("b", p.b_better)):
        names = ", ".join(class_names[i] for i in which[:20]) + (" …" if len(which) > 20 else "")
        lines.append(f"  significantly better for {who} (Fisher's exact test, Benjamini–Hochberg at "
                     f"{p.alpha:g}): {len(which)} classes" + (f": {names}" if len(which) else ""))
    return lines


def mark_ties(rows: Sequence[dict[str, Any]], correct_of: Callable[[Mapping[str, Any]], np.ndarray] | None,
              labels: np.ndarray | None) -> None:
    """Set ``tied`` on each row that cannot be told apart from its generator's best row (same mode), and
    ``tie_method``: the paired-bootstrap interval of the Top-1 difference contains 0 where both rows have
    predictions, else their 95% intervals overlap."""
    cache: dict[int, np.ndarray] = {}

    def correct(row: Mapping[str, Any]) -> np.ndarray | None:
        if correct_of is None or not row.get("predictions"):
            return None
        if id(row) not in cache:
            cache[id(row)] = correct_of(row)
        return cache[id(row)]

    for best in (r for r in rows if r["best"]):
        for row in rows:
            if row is best or row["mode"] != best["mode"] or row["generator"] != best["generator"] \
                    or row.get("top1") is None:
                continue
            a, b = correct(row), correct(best)
            if a is not None and b is not None:
                diff = paired_bootstrap(a, b, groups=labels)
                row["tied"], row["tie_method"] = bool(diff.low <= 0 <= diff.high), "paired bootstrap"
            elif row.get("top1_ci") and best.get("top1_ci"):
                row["tied"] = bool(row["top1_ci"][1] >= best["top1_ci"][0])
                row["tie_method"] = "overlapping intervals"


def class_comparisons(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Class by class, each pair among the generators' best CAS rows and Real (first seed of each, from the
    confusion matrices): shares of classes each side wins, and the classes where it wins significantly
    (Fisher's exact test per class, Benjamini–Hochberg at 5%)."""
    chosen = [r for r in (*best_rows(rows), real_row(rows))
              if r and r.get("per_class_correct") and r.get("per_class_n")]
    out = []
    for i, a in enumerate(chosen):
        for b in chosen[i + 1:]:
            if a["per_class_n"] == b["per_class_n"]:
                out.append({"a": a, "b": b, "comparison": per_class_comparison(
                    a["per_class_correct"], b["per_class_correct"], a["per_class_n"])})
    return out
