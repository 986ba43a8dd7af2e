"""The plan's sample sizes and class orders: k× samples for CAS, NAS ratios above 1 from shared
blocks, step-matched Real cells, and generators with a fixed class order checked against the data."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.classify.recipes import DIGITS_SMALL
from harness.config import ConfigError
from harness.config_file import parse_config
from harness.data import RealData
from harness.generators import GeneratorError
from harness.generators import class_order as class_order_module
from harness.generators.class_order import CLASS_ORDERS, check_class_order, class_order
from harness.plan import TrainSource, plan_cells, sample_sets
from harness.shards import ShardSet

BASE = """
name: plan
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: cvae, kind: cvae, truncations: [0.5, 1.0]}
classifier: {recipe: digits-small}
"""


def config(extra: str = "", generators: str | None = None) -> Any:
    text = BASE if generators is None else BASE.split("generators:")[0] + generators + BASE.split("\n")[-2] + "\n"
    return parse_config(yaml.safe_load(text + extra), "plan.yaml")


def test_cas_with_k_times_the_samples_and_nas_above_one_share_blocks(digits_store) -> None:
    store, real = digits_store
    cells = plan_cells(config("sample_multiplier: 2.5\naugmentation_ratios: [0.5, 3]\n"), real)
    cas = [c for c in cells if c.mode == "cas"]
    nas = [c for c in cells if c.mode == "nas"]
    assert [c.knobs["truncation"] for c in cas] == [0.5, 1.0] and len(nas) == 4
    first = cas[0]
    assert first.sample_multiplier == 2.5 and [s.block for s in first.sample_sets] == [0, 1, 2]
    assert [s.fraction for s in first.sources(real)] == [1.0, 1.0, 0.5]
    r3, r05 = (next(c for c in nas if c.augmentation_ratio == r and c.knobs == first.knobs) for r in (3, 0.5))
    assert r3.sources(real) == (TrainSource(real.train.folder), *(TrainSource(s.folder) for s in r3.sample_sets))
    assert [s.block for s in r3.sample_sets] == [0, 1, 2]
    assert r05.sources(real) == (TrainSource(real.train.folder), TrainSource(first.sample_set.folder, 0.5))
    assert r3.sample_sets[:3] == first.sample_sets  # one stream: NAS and CAS read the same blocks
    assert len(sample_sets(cells)) == 2 * 3  # two truncations × three blocks, each drawn once
    assert all(s.counts == real.train_counts for s in sample_sets(cells))
    assert len({s.key for s in first.sample_sets}) == 3 and len({s.stream_seed for s in first.sample_sets}) == 1
    # block 0, what the metrics measure and the record names, is the same set at any k and any ratios
    plain = plan_cells(config(), real)
    assert plain[1].sample_sets == (first.sample_set,)
    assert plain[1].sources(real) == (TrainSource(first.sample_set.folder),)
    assert "×2.5" in first.label and "×" not in plain[1].label


def test_per_generator_multiplier_and_limits(digits_store) -> None:
    store, real = digits_store
    generators = """generators:
  - {name: real, kind: real}
  - {name: cvae, kind: cvae, sample_multiplier: 4}
  - {name: cgan, kind: cgan}
"""
    cells = plan_cells(config("sample_multiplier: 2\n", generators), real)
    assert {c.generator: c.sample_multiplier for c in cells if c.mode == "cas"} == {"cvae": 4, "cgan": 2}
    assert config("augmentation_ratios: [10]\n").augmentation_ratios == [10]
    for extra, message in (("augmentation_ratios: [10.5]\n", r"must lie in \(0, 10\]; got \[10.5\]"),
                           ("sample_multiplier: 11\n", "sample_multiplier: Input should be less than or equal to 10"),
                           ("sample_multiplier: 0.5\n", "greater than or equal to 1"),
                           ("nas_step_matched_real: true\n", "list augmentation_ratios and a generator of kind")):
        with pytest.raises(ConfigError, match=message):
            config(extra)
    with pytest.raises(ConfigError, match="real baseline trains on the real train split as it is"):
        config("", "generators:\n  - {name: real, kind: real, sample_multiplier: 2}\n")


def test_step_matched_real_cells_train_as_many_steps_as_nas(digits_store) -> None:
    store, real = digits_store
    cells = plan_cells(config("augmentation_ratios: [0.5, 2]\nnas_step_matched_real: true\n"), real)
    matched = [c for c in cells if c.mode == "real-steps"]
    assert [(c.generator, c.augmentation_ratio, c.epoch_scale) for c in matched] == [("real", 0.5, 1.5), ("real", 2, 3)]
    assert matched[0].sources(real) == (TrainSource(real.train.folder),)
    assert matched[0].label == "real steps of NAS r=0.5 seed 0"
    recipe = DIGITS_SMALL
    assert matched[1].train_recipe(recipe).epochs == 90 and matched[1].train_recipe(recipe).milestones == (60, 81)
    assert cells[0].train_recipe(recipe) is recipe
    n = real.n_train
    for r, cell in ((0.5, matched[0]), (2, matched[1])):
        nas_steps = recipe.epochs * ((n + round(r * n)) // recipe.batch_size)
        epochs = cell.train_recipe(recipe).epochs
        real_steps = epochs * (n // recipe.batch_size)
        # equal but for rounding: the partial last batch of each epoch, and the epoch count
        assert abs(real_steps - nas_steps) <= epochs + n // recipe.batch_size
        assert cell.trial_key(real, recipe) != cells[0].trial_key(real, recipe)


def test_imagenet_wnids_ship_in_sorted_order() -> None:
    wnids = class_order("imagenet-wnid")
    assert len(wnids) == len(set(wnids)) == 1000 and list(wnids) == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[1] == "n01443537" and wnids[999] == "n15075141"
    text = Path(class_order_module.__file__).with_name(CLASS_ORDERS["imagenet-wnid"]).read_bytes()
    assert hashlib.sha256(text).hexdigest() == "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15"


def test_class_order_mismatch_names_the_first_difference() -> None:
    wnids = list(class_order("imagenet-wnid"))
    check_class_order("big", "imagenet-wnid", wnids)
    check_class_order("big", "imagenet-wnid", [str(i) for i in range(1000)])  # indices only: taken as given
    swapped = wnids[:5] + [wnids[6], wnids[5]] + wnids[7:]
    with pytest.raises(GeneratorError, match=r"'big' numbers its classes in the imagenet-wnid order, but the "
                                             rf"dataset's class 5 is '{wnids[6]}' where that order has '{wnids[5]}'"):
        check_class_order("big", "imagenet-wnid", swapped)
    with pytest.raises(GeneratorError, match="class 0 is 'tench' where that order has 'n01440764'"):
        check_class_order("big", "imagenet-wnid", ["tench", *wnids[1:]])
    with pytest.raises(GeneratorError, match="numbers 1000 classes in the imagenet-wnid order, but the dataset has 10"):
        check_class_order("big", "imagenet-wnid", wnids[:10])


def imagenet_like(digits: RealData, class_names: list[str]) -> RealData:
    """A real dataset of 1,000 classes named ``class_names`` (its shard sets are never read by the plan)."""
    return RealData(key="imagenet-like", train=ShardSet(digits.train.store, "none/train"),
                    val=ShardSet(digits.train.store, "none/val"), class_names=tuple(class_names),
                    image_shape=(3, 128, 128), train_counts=(1300,) * 1000)


def test_a_fixed_class_order_is_checked_before_sampling(digits_store) -> None:
    store, digits = digits_store
    wnids = list(class_order("imagenet-wnid"))
    generators = """generators:
  - {name: big, kind: biggan-deep, params: {model: biggan-deep-128}, truncations: [1.0]}
  - {name: dit, kind: diffusers, params: {model: some/dit}}
"""
    sweep = config("", generators)
    assert len(plan_cells(sweep, imagenet_like(digits, wnids))) == 2
    reversed_names = imagenet_like(digits, wnids[::-1])
    with pytest.raises(GeneratorError, match=rf"'big' numbers its classes in the imagenet-wnid order, but the "
                                             rf"dataset's class 0 is '{wnids[-1]}'"):
        plan_cells(sweep, reversed_names)
    plugin = "generators:\n  - {name: p, kind: tests.plugin_generator:WnidOrdered}\n"
    with pytest.raises(GeneratorError, match="'p' numbers its classes in the imagenet-wnid order"):
        plan_cells(config("", plugin), reversed_names)
    assert np.array_equal(np.asarray(digits.class_names), np.arange(10).astype(str))
    assert len(plan_cells(config(), digits)) == 3  # no fixed order: nothing to check


def test_records_and_report_rows_say_how_much_data_a_cell_trained_on(digits_store) -> None:
    from harness.report.aggregate import mode_label
    from harness.report.records import RunContext, make_record

    store, real = digits_store
    cells = plan_cells(config("sample_multiplier: 2\naugmentation_ratios: [3]\nnas_step_matched_real: true\n"), real)
    run = RunContext(dataset=real.key, recipe_name="digits-small", recipe=DIGITS_SMALL, test_split="val")
    records = [make_record(c, {"error": "not trained"}, {}, run).to_dict() for c in cells]
    assert [(r["mode"], r["augmentation_ratio"], r["sample_multiplier"]) for r in records] == [
        ("real", None, None), ("real-steps", 3, None), ("cas", None, 2), ("nas", 3, None), ("cas", None, 2),
        ("nas", 3, None)]
    assert {r["test_split"] for r in records} == {"val"}
    assert records[1]["recipe_settings"]["epochs"] == 4 * records[0]["recipe_settings"]["epochs"] == 4 * 30
    assert [mode_label(r) for r in records[:3]] == ["real", "real, steps of NAS r=3", "2×samples (CAS)"]
