"""A generator that memorised its training set scores as the data does (Ravuri & Vinyals 2019):
a sweep whose ``npz`` generator's pool is the real train split itself draws every train image
once, and its CAS equals the Real row's within a 95% interval of their difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.config_file import parse_config
from harness.report.statistics import wilson_interval
from harness.shards import ShardSet
from harness.store import Store

TRAIN_PER_CLASS, TEST_PER_CLASS = 30, 20


def cifar_sized(path: Path, per_class: int, templates: np.ndarray, seed: int) -> None:
    """``per_class`` 32×32 RGB images of each of 10 classes: the class's smooth template plus noise, shuffled."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10), per_class))
    noise = rng.normal(0, 70, (len(labels), 32, 32, 3))
    np.savez(path, np.clip(templates[labels] + noise, 0, 255).astype(np.uint8), labels)


@pytest.mark.slow
def test_a_memoriser_draws_each_train_image_once_and_scores_as_the_real_data(ray_local, tmp_path: Path) -> None:
    from harness.sweep import run_sweep

    rng = np.random.default_rng(0)
    templates = np.kron(rng.uniform(40, 215, (10, 4, 4, 3)), np.ones((1, 8, 8, 1)))
    cifar_sized(tmp_path / "train.npz", TRAIN_PER_CLASS, templates, seed=1)
    cifar_sized(tmp_path / "test.npz", TEST_PER_CLASS, templates, seed=2)
    config = parse_config(yaml.safe_load(f"""
name: memoriser
store: {tmp_path / "store"}
dataset: {{kind: npz, params: {{train: {tmp_path / "train.npz"}, test: {tmp_path / "test.npz"}}}}}
generators:
  - {{name: real, kind: real}}
  - {{name: memoriser, kind: npz, params: {{path: {tmp_path / "train.npz"}}}}}
classifier: {{recipe: digits-small, overrides: {{epochs: 6, milestones: [5], batch_size: 32}}}}
sampler: {{batch_size: 64, shard_size: 150, num_actors: 2}}
metrics: {{extractors: none}}
"""), "memoriser.yaml")
    _, records = run_sweep(config)
    real, memoriser = records
    assert real["status"] == memoriser["status"] == "ok", records
    assert (memoriser["mode"], memoriser["distinct_fraction"], memoriser["test_split"]) == ("cas", 1.0, "test")
    n_train, n_test = 10 * TRAIN_PER_CLASS, 10 * TEST_PER_CLASS
    assert real["n_train"] == memoriser["n_train"] == n_train and real["n_val"] == memoriser["n_val"] == n_test

    store = Store(str(tmp_path / "store"))
    shards = ShardSet(store, memoriser["sample_set"])
    drawn = [shards.read_shard(e) for e in shards.manifest()["shards"]]
    assert len(drawn) == 2
    images = np.concatenate([x for x, _ in drawn])
    pool = np.load(tmp_path / "train.npz")["arr_0"].transpose(0, 3, 1, 2)
    assert len({im.tobytes() for im in images}) == n_train  # no image twice ...
    assert {im.tobytes() for im in images} == {im.tobytes() for im in pool}  # ... so every train image once

    assert real["top1"] > 0.9  # the task is learnt
    low, high = top1_difference_interval(real["top1"], memoriser["top1"], n_test)
    assert low <= 0 <= high, (real["top1"], memoriser["top1"], (low, high))


def top1_difference_interval(a: float, b: float, n: int) -> tuple[float, float]:
    """Newcombe's 95% interval of a − b for two accuracies on ``n`` test images each, from their Wilson
    intervals (Newcombe 1998, method 10). Two classifiers trained on the same images in another order
    differ by a few images; this interval holds that, where one accuracy's own Wilson interval near
    100% does not."""
    (low_a, low_b), (high_a, high_b) = wilson_interval([round(a * n), round(b * n)], [n, n])
    d = a - b
    return d - float(np.hypot(a - low_a, high_b - b)), d + float(np.hypot(high_a - a, b - low_b))
