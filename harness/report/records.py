"""The record of one grid cell: the single source of every table, file and report.

The terminal table, results.json, results.csv, report.md, report.html and the leaderboard
are all views of a run's records. A record says how its numbers were made (dataset and
split, recipe, knob values and truncation convention, extractor), so that a figure read
anywhere can be traced to its protocol. ``RECORD_VERSION`` changes with the fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.classify.recipes import Recipe, recipe_record
from harness.plan import Cell

RECORD_VERSION = 3


@dataclass(frozen=True)
class Record:
    """One cell: where it sits in the grid, how it was made, and what it scored (or why it failed).

    ``params`` are the generator spec's parameters (with ``kind``, its identity on the leaderboard);
    ``predictions`` the store path of the test-set top-5 predictions, where the trial kept them.
    ``metrics`` holds the sample set's IS/FID/KID/precision/recall under the keys the metrics
    declare (``harness.metrics.sets.METRICS``; ``fd_<extractor>`` …), with the extractor that made them.
    """

    generator: str
    kind: str
    mode: str
    knobs: dict[str, float | None]
    truncation_mode: str | None
    augmentation_ratio: float | None
    seed: int
    recipe: str
    recipe_settings: dict[str, Any]
    sample_set: str | None
    dataset: str
    status: str
    error: str | None = None
    top1: float | None = None
    top5: float | None = None
    per_class_accuracy: list[float | None] | None = None
    confusion: list[list[int]] | None = None
    n_train: int | None = None
    n_val: int | None = None
    test_split: str | None = None
    sample_multiplier: float | None = None
    distinct_fraction: float | None = None
    steps_per_epoch: int | None = None
    train_seconds: float | None = None
    world_size: int | None = None
    model: str | None = None
    params: dict[str, Any] | None = None
    predictions: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def truncation(self) -> float | None:
        return self.knobs.get("truncation")

    def to_dict(self) -> dict[str, Any]:
        """The flat form that results.json holds and every view reads."""
        out = {"record_version": RECORD_VERSION, **dataclasses.asdict(self), "truncation": self.truncation}
        return {**{k: v for k, v in out.items() if k != "metrics"}, **self.metrics}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """A record read back from results.json; an older version is refused, not misread."""
        if data.get("record_version") != RECORD_VERSION:
            raise ValueError(f"record version {data.get('record_version')!r}, expected {RECORD_VERSION}: "
                             f"made by another version of the harness")
        names = {f.name for f in dataclasses.fields(cls)} - {"metrics"}
        metrics = {k: v for k, v in data.items() if k not in names | {"record_version", "truncation"}}
        return cls(**{k: v for k, v in data.items() if k in names}, metrics=metrics)


@dataclass(frozen=True)
class RunContext:
    """What every record of one run shares."""

    dataset: str
    recipe_name: str
    recipe: Recipe
    test_split: str | None = None


def make_record(cell: Cell, result: dict[str, Any], metrics: dict[str, Any], run: RunContext) -> Record:
    """A cell's record: its place in the grid, how it was made, then its results or its error."""
    s = cell.sample_set
    made = {"generator": cell.generator, "kind": cell.kind, "mode": cell.mode, "knobs": cell.knobs,
            "truncation_mode": s.generator.truncation_mode if s else None,
            "augmentation_ratio": cell.augmentation_ratio, "seed": cell.seed, "recipe": run.recipe_name,
            "recipe_settings": recipe_record(cell.train_recipe(run.recipe)), "sample_set": s.folder if s else None,
            "dataset": run.dataset, "test_split": run.test_split, "sample_multiplier": cell.sample_multiplier,
            "distinct_fraction": cell.distinct_fraction, "params": s.generator.params if s else {},
            "metrics": metrics}
    if "error" in result:
        return Record(**made, status="failed", error=result["error"])
    return Record(**made, status="ok", **result)
