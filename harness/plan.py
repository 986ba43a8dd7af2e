"""The plan of a sweep: its grid cells, the sample sets they need, and every store key.

The grid is generator × knob values × augmentation ratio × seed. The ``real`` generator
gives the baseline (trained on the real train split); every other generator gives a CAS
cell (trained on its samples only) and one NAS cell per augmentation ratio r (real +
r·|real| samples). :func:`check` finds everything a config can get wrong that needs more
than the schema (plugins that do not import, undeclared knobs, recipe overrides) before
any data is read or Ray is started.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import layout
from harness.classify.recipes import Recipe, recipe_record, resolve_recipe
from harness.config import ConfigError, GeneratorConfig, SweepConfig, check_knobs
from harness.data import RealData
from harness.generators import GeneratorError, declared_knobs, is_plugin
from harness.knobs import Knob


@dataclass(frozen=True)
class SampleSet:
    """One sample set: a generator at one setting of its knobs and one seed, and its store key."""

    generator: GeneratorConfig
    knobs: tuple[tuple[str, float | None], ...]
    seed: int
    spec: dict[str, Any]

    @property
    def key(self) -> str:
        return layout.content_key(self.spec)

    @property
    def folder(self) -> str:
        return layout.sample_set(self.key)

    @property
    def truncation(self) -> float | None:
        return dict(self.knobs).get("truncation")

    @property
    def label(self) -> str:
        return " ".join([self.generator.name, *knob_labels(dict(self.knobs)), f"seed {self.seed}"])


def knob_labels(knobs: dict[str, float | None]) -> list[str]:
    """``τ=0.5``, ``guidance_scale=2`` …: the knob values a label shows (unset ones left out)."""
    return [f"{'τ' if name == 'truncation' else name}={value:g}" for name, value in knobs.items() if value is not None]


@dataclass(frozen=True)
class TrainSource:
    """A shard set to train on; ``fraction`` < 1 keeps that share of every class (NAS)."""

    folder: str
    fraction: float = 1.0


@dataclass(frozen=True)
class Cell:
    """One grid cell: what the classifier trains on, and how the result is labelled."""

    generator: str
    kind: str
    mode: str  # "real", "cas" or "nas"
    augmentation_ratio: float | None
    seed: int
    sample_set: SampleSet | None

    @property
    def knobs(self) -> dict[str, float | None]:
        return dict(self.sample_set.knobs) if self.sample_set else {}

    @property
    def label(self) -> str:
        parts = [self.generator, *knob_labels(self.knobs)]
        if self.mode == "nas":
            parts.append(f"NAS r={self.augmentation_ratio:g}")
        return " ".join(parts + [f"seed {self.seed}"])

    def sources(self, real: RealData) -> tuple[TrainSource, ...]:
        if self.mode == "real":
            return (TrainSource(real.train.folder),)
        assert self.sample_set is not None
        samples = TrainSource(self.sample_set.folder)
        if self.mode == "cas":
            return (samples,)
        return (TrainSource(real.train.folder), TrainSource(self.sample_set.folder, self.augmentation_ratio or 0))

    def trial_key(self, real: RealData, recipe: Recipe) -> str:
        return layout.content_key({"sources": [dataclasses.asdict(s) for s in self.sources(real)],
                                   "val": real.val.folder, "recipe": recipe_record(recipe), "seed": self.seed})


def check(config: SweepConfig, source: str) -> Recipe:
    """Everything a config can get wrong beyond the schema, before any work; returns the recipe."""
    for index, g in enumerate(config.generators):
        field = f"generators[{index}] ({g.name})"
        try:
            knobs = declared_knobs(g)
        except GeneratorError as err:
            raise ConfigError(f"{source}: {field}.kind: {err}") from None
        if is_plugin(g.kind):
            try:
                check_knobs(g.name, g.kind, g.sweep, knobs)
            except ValueError as err:
                raise ConfigError(f"{source}: {field}.sweep: {err}") from None
    try:
        return resolve_recipe(config.classifier.recipe, config.classifier.overrides)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def knob_settings(g: GeneratorConfig) -> list[tuple[tuple[str, float | None], ...]]:
    """Every setting of all the generator's knobs: swept ones over their values, others at their default."""
    knobs = declared_knobs(g)
    settings = []
    for point in g.knob_grid():
        values = {**{k.name: k.default for k in knobs}, **point}
        settings.append(tuple((k.name, _typed(k, values[k.name])) for k in knobs))
    return settings


def _typed(knob: Knob, value: float | None) -> float | int | None:
    return int(value) if knob.integer and value is not None else value


def plan_sample_set(g: GeneratorConfig, knobs: tuple[tuple[str, float | None], ...], seed: int,
                    real: RealData) -> SampleSet:
    """The sample set of one knob setting and seed; its key ignores the generator's name and sweep."""
    spec = {"kind": g.kind, "params": g.params, "knobs": dict(knobs), "truncation_mode": g.truncation_mode,
            "seed": seed, "dataset": real.key, "counts": list(real.train_counts)}
    return SampleSet(g, knobs, seed, spec)


def plan_cells(config: SweepConfig, real: RealData) -> list[Cell]:
    """Every cell of the grid, in the order of the config."""
    cells = []
    for seed in config.seeds:
        for g in config.generators:
            if g.kind == "real":
                cells.append(Cell(g.name, g.kind, "real", None, seed, None))
                continue
            for knobs in knob_settings(g):
                s = plan_sample_set(g, knobs, seed, real)
                cells.append(Cell(g.name, g.kind, "cas", None, seed, s))
                cells += [Cell(g.name, g.kind, "nas", r, seed, s) for r in config.augmentation_ratios]
    return cells


def sample_sets(cells: list[Cell]) -> list[SampleSet]:
    """The distinct sample sets the cells train on, in cell order."""
    return list({c.sample_set.key: c.sample_set for c in cells if c.sample_set}.values())


def sample_labels(counts: tuple[int, ...] | list[int], seed: int) -> np.ndarray:
    """A sample set's labels: the real histogram, in an order fixed by ``seed``."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)
