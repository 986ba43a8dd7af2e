"""The plan of a sweep: its grid cells, the sample sets they need, and every store key.

The grid is generator × knob values × augmentation ratio × seed. The ``real`` generator
gives the baseline (trained on the real train split); every other generator gives a CAS
cell (trained on its samples only: ``sample_multiplier`` k times as many as real images,
1 by default) and one NAS cell per augmentation ratio r (real + r·|real| samples, r up
to 10). With ``nas_step_matched_real`` the real generator also gives, per ratio, a
``real-steps`` cell: trained on the real data alone for as many optimiser steps as the
NAS cell (its epochs, warm-up and milestones scaled by 1 + r).

Samples come in blocks: block j of a generator's stream (one knob setting and seed) is a
sample set holding the real train split's histogram once, and a cell that needs k× the
real data reads blocks 0..⌈k⌉−1 (the last in part). Adding a ratio or a multiplier draws
only the blocks not yet in the store, and a pool generator (npz, folder) draws distinct
images across all the blocks it is asked for.

:func:`check` finds everything a config can get wrong that needs more than the schema
(plugins that do not import, undeclared knobs, recipe overrides) before any data is read
or Ray is started; :func:`plan_cells` what needs the real data too (class orders, pool
sizes), before anything is sampled.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness import layout
from harness.classify.recipes import Recipe, recipe_record, resolve_recipe
from harness.config import ConfigError, GeneratorConfig, SweepConfig, check_knobs
from harness.data import RealData
from harness.generators import GeneratorError, declared_knobs, is_plugin
from harness.knobs import Knob
from harness.registry import GENERATORS

#: Images per shard of a sample set, unless the sampler config says otherwise.
DEFAULT_SHARD_SIZE = 10_000


@dataclass(frozen=True)
class SampleSet:
    """One block of a generator's sample stream at one setting of its knobs and one seed.

    It holds the real train split's histogram (``counts``) once, in shards of ``shard_size``
    (not part of its key). Its key ignores the generator's name and sweep.
    """

    generator: GeneratorConfig
    knobs: tuple[tuple[str, float | None], ...]
    seed: int
    spec: dict[str, Any]
    shard_size: int = DEFAULT_SHARD_SIZE

    @property
    def key(self) -> str:
        return layout.content_key(self.spec)

    @property
    def folder(self) -> str:
        return layout.sample_set(self.key)

    @property
    def block(self) -> int:
        return int(self.spec["block"])

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(self.spec["counts"])

    @property
    def stream_seed(self) -> int:
        """Seeds what all blocks of the stream share: a pool's per-class permutations."""
        return int(layout.content_key({k: v for k, v in self.spec.items() if k != "block"})[:15], 16)

    @property
    def truncation(self) -> float | None:
        return dict(self.knobs).get("truncation")

    @property
    def label(self) -> str:
        block = [f"block {self.block}"] if self.block else []
        return " ".join([self.generator.name, *knob_labels(dict(self.knobs)), f"seed {self.seed}", *block])

    def shards(self) -> list[np.ndarray]:
        """The labels of each shard, in order."""
        labels = sample_labels(self.counts, self.seed)
        return [labels[start:start + self.shard_size] for start in range(0, len(labels), self.shard_size)]

    def pool_positions(self, index: int) -> np.ndarray:
        """For each sample of shard ``index``, how many samples of its class come before it in the stream."""
        from harness.generators.pools import class_positions

        labels = sample_labels(self.counts, self.seed)
        start = index * self.shard_size
        chunk = labels[start:start + self.shard_size]
        earlier = self.block * np.asarray(self.counts) + np.bincount(labels[:start], minlength=len(self.counts))
        return earlier[chunk] + class_positions(chunk, len(self.counts))


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
    """One grid cell: what the classifier trains on, and how the result is labelled.

    ``sample_sets`` are the blocks the cell reads (the first is the one measured by the
    metrics); ``sample_multiplier`` the samples per real image of a CAS cell;
    ``epoch_scale`` stretches the recipe of a ``real-steps`` cell; ``distinct_fraction``
    is the share of distinct images in a pool generator's blocks.
    """

    generator: str
    kind: str
    mode: str  # "real", "cas", "nas" or "real-steps"
    augmentation_ratio: float | None
    seed: int
    sample_sets: tuple[SampleSet, ...] = ()
    sample_multiplier: float | None = None
    epoch_scale: float = 1.0
    distinct_fraction: float | None = None

    @property
    def sample_set(self) -> SampleSet | None:
        return self.sample_sets[0] if self.sample_sets else None

    @property
    def knobs(self) -> dict[str, float | None]:
        return dict(self.sample_set.knobs) if self.sample_set else {}

    @property
    def label(self) -> str:
        parts = [self.generator, *knob_labels(self.knobs)]
        if self.mode == "cas" and self.sample_multiplier != 1:
            parts.append(f"×{self.sample_multiplier:g}")
        if self.mode == "nas":
            parts.append(f"NAS r={self.augmentation_ratio:g}")
        if self.mode == "real-steps":
            parts.append(f"steps of NAS r={self.augmentation_ratio:g}")
        return " ".join(parts + [f"seed {self.seed}"])

    def sources(self, real: RealData) -> tuple[TrainSource, ...]:
        if self.mode in ("real", "real-steps"):
            return (TrainSource(real.train.folder),)
        amount = self.sample_multiplier if self.mode == "cas" else self.augmentation_ratio
        assert amount is not None and self.sample_sets
        samples = tuple(TrainSource(s.folder, min(1.0, amount - j)) for j, s in enumerate(self.sample_sets))
        return samples if self.mode == "cas" else (TrainSource(real.train.folder), *samples)

    def train_recipe(self, recipe: Recipe) -> Recipe:
        """The recipe this cell trains with: the sweep's, stretched by ``epoch_scale`` for ``real-steps``."""
        if self.epoch_scale == 1:
            return recipe
        return scale_epochs(recipe, self.epoch_scale)

    def trial_key(self, real: RealData, recipe: Recipe) -> str:
        return layout.content_key({"sources": [dataclasses.asdict(s) for s in self.sources(real)],
                                   "val": real.val.folder, "recipe": recipe_record(self.train_recipe(recipe)),
                                   "seed": self.seed})

    def sampling_error(self, failed: dict[str, str]) -> str | None:
        """Why a block this cell reads could not be sampled (``failed``: set key → error), or None."""
        return next((failed[s.key] for s in self.sample_sets if s.key in failed), None)


def scale_epochs(recipe: Recipe, factor: float) -> Recipe:
    """``recipe`` run ``factor`` times as long: epochs, warm-up and milestones scaled (epochs rounded)."""
    return dataclasses.replace(recipe, epochs=max(1, round(recipe.epochs * factor)),
                               warmup_epochs=recipe.warmup_epochs * factor,
                               milestones=tuple(round(m * factor) for m in recipe.milestones))


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
                    real: RealData, block: int = 0, shard_size: int = DEFAULT_SHARD_SIZE) -> SampleSet:
    """Block ``block`` of the sample stream of one knob setting and seed."""
    spec = {"kind": g.kind, "params": g.params, "knobs": dict(knobs), "truncation_mode": g.truncation_mode,
            "seed": seed, "dataset": real.key, "counts": list(real.train_counts), "block": block}
    return SampleSet(g, knobs, seed, spec, shard_size)


def blocks_for(amount: float) -> int:
    """How many blocks (each the real histogram once) hold ``amount`` × the real train split."""
    return math.ceil(amount)


def sample_multiplier(config: SweepConfig, g: GeneratorConfig) -> float:
    """Samples per real train image of the generator's CAS cells: its own setting, else the sweep's."""
    return g.sample_multiplier if g.sample_multiplier is not None else config.sample_multiplier


def check_against_data(config: SweepConfig, real: RealData) -> dict[str, np.ndarray]:
    """What needs the real data, before anything is sampled: class orders, and that every pool
    holds what the sweep draws of each class; returns each pool generator's per-class sizes."""
    from harness.generators.class_order import check_class_order, declared_class_order
    from harness.generators.pools import pool_sizes

    pools = {}
    for g in config.generators:
        if g.kind == "real":
            continue
        order = declared_class_order(g)
        if order:
            check_class_order(g.name, order, real.class_names)
        if is_plugin(g.kind) or not GENERATORS.entry(g.kind).info.get("pool"):
            continue
        sizes = pool_sizes(g, real)
        blocks = blocks_for(max([sample_multiplier(config, g), *config.augmentation_ratios]))
        short = np.flatnonzero(sizes < blocks * np.asarray(real.train_counts))
        if len(short) and not g.params["allow_reuse"]:
            c = int(short[0])
            raise ConfigError(
                f"generator {g.name!r} ({g.kind}): class {c} ({real.class_names[c]!r}) holds {sizes[c]} images, but "
                f"the sweep draws {blocks * real.train_counts[c]} of it without replacement ({blocks}× its "
                f"{real.train_counts[c]} real train images, for sample_multiplier and augmentation_ratios); "
                f"{len(short)} classes are short. Add images, or set params.allow_reuse: true to draw images again")
        pools[g.name] = sizes
    return pools


def distinct_fraction(sizes: np.ndarray, counts: tuple[int, ...], blocks: int) -> float:
    """The share of distinct images in ``blocks`` blocks drawn from a pool of per-class ``sizes``."""
    drawn = blocks * np.asarray(counts)
    return float(np.minimum(sizes, drawn).sum() / drawn.sum())


def _sample_cell(g: GeneratorConfig, mode: str, ratio: float | None, amount: float, seed: int,
                 blocks: tuple[SampleSet, ...], multiplier: float, pool: np.ndarray | None, real: RealData) -> Cell:
    """A CAS or NAS cell reading the first blocks that hold ``amount`` × the real data."""
    used = blocks[:blocks_for(amount)]
    distinct = None if pool is None else distinct_fraction(pool, real.train_counts, len(used))
    return Cell(g.name, g.kind, mode, ratio, seed, used, multiplier if mode == "cas" else None,
                distinct_fraction=distinct)


def plan_cells(config: SweepConfig, real: RealData) -> list[Cell]:
    """Every cell of the grid, in the order of the config (checked against the real data first)."""
    pools = check_against_data(config, real)
    ratios = config.augmentation_ratios
    cells = []
    for seed in config.seeds:
        for g in config.generators:
            if g.kind == "real":
                cells.append(Cell(g.name, g.kind, "real", None, seed))
                if config.nas_step_matched_real:
                    cells += [Cell(g.name, g.kind, "real-steps", r, seed, epoch_scale=1 + r) for r in ratios]
                continue
            k, pool = sample_multiplier(config, g), pools.get(g.name)
            for knobs in knob_settings(g):
                blocks = tuple(plan_sample_set(g, knobs, seed, real, j, config.sampler.shard_size)
                               for j in range(blocks_for(max([k, *ratios]))))
                cells.append(_sample_cell(g, "cas", None, k, seed, blocks, k, pool, real))
                cells += [_sample_cell(g, "nas", r, r, seed, blocks, k, pool, real) for r in ratios]
    return cells


def sample_sets(cells: list[Cell]) -> list[SampleSet]:
    """The distinct sample sets the cells train on, in cell order."""
    return list({s.key: s for c in cells for s in c.sample_sets}.values())


def sample_labels(counts: tuple[int, ...] | list[int], seed: int) -> np.ndarray:
    """A sample set's labels: the real histogram, in an order fixed by ``seed``."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(labels)
