"""The classifier: per-image augmentation, data partitioning, and a 2-worker DDP run on CPUs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.classify.augment import random_crop_flip
from harness.classify.evaluate import accuracy_summary
from harness.classify.models import build_model
from harness.classify.recipes import resolve_recipe
from harness.classify.train import TrainTask, _partition, train_classifier
from harness.plan import TrainSource


def test_augmentation_is_per_image() -> None:
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = random_crop_flip(images, pad=1, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 8  # one random draw per batch would give a single variant
    # Every output is a shifted (and maybe mirrored) window of the zero-padded input.
    padded = torch.nn.functional.pad(images[0], (1, 1, 1, 1))
    windows = {tuple(w.flatten().tolist()) for dy in range(3) for dx in range(3)
               for w in (padded[:, dy:dy + 4, dx:dx + 4], padded[:, dy:dy + 4, dx:dx + 4].flip(2))}
    assert distinct <= windows
    assert torch.equal(random_crop_flip(images, pad=0, flip=False), images)


def test_accuracy_summary() -> None:
    confusion = np.array([[8, 2, 0], [0, 5, 5], [0, 0, 0]])
    summary = accuracy_summary(confusion, top5_hits=20)
    assert summary["top1"] == pytest.approx(13 / 20) and summary["top5"] == 1.0
    assert summary["per_class_accuracy"] == [0.8, 0.5, None] and summary["n_val"] == 20


@pytest.mark.parametrize("name", ["resnet-tiny", "resnet56", "resnet50"])
def test_models_give_logits_and_features(name: str) -> None:
    model = build_model(name, 3, 7).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert model.body(x).shape[0] == 2 and model.head.out_features == 7


def test_partition_covers_every_image_once(digits_store) -> None:
    store, real = digits_store
    sources = [TrainSource(real.train.folder), TrainSource(real.val.folder, 0.5)]
    n_half_val = sum(int(round(0.5 * c)) for c in real.val.manifest()["counts"])
    for world in (1, 2, 3):
        parts = [_partition(store, sources, 10, seed=0, rank=r, world=world) for r in range(world)]
        total = sum(len(p[1]) for p in parts)
        assert total == real.n_train + n_half_val
        assert all(p[2] <= len(p[1]) for p in parts) and min(len(p[1]) for p in parts) == parts[0][2]
    x0, y0, _ = _partition(store, sources, 10, seed=0, rank=0, world=1)
    x1, y1, _ = _partition(store, sources, 10, seed=0, rank=0, world=1)
    assert np.array_equal(y0, y1) and np.array_equal(x0, x1)
    val_part = y0[real.n_train:]
    assert np.bincount(val_part, minlength=10).tolist() == [int(round(0.5 * c)) for c in real.val.manifest()["counts"]]


@pytest.mark.slow
def test_two_worker_cpu_torchtrainer(ray_local, digits_store, tmp_path) -> None:
    store, real = digits_store
    recipe = resolve_recipe("digits-small", {"epochs": 6, "milestones": [5]})
    task = TrainTask(label="ddp", store=store.root, sources=(TrainSource(real.train.folder),),
                     val_folder=real.val.folder, num_classes=10, image_shape=real.image_shape, recipe=recipe, seed=0)
    result = train_classifier(task, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path))
    assert result["world_size"] == 2
    assert result["n_train"] == real.n_train and result["n_val"] == 360
    assert result["steps_per_epoch"] == (real.n_train // 2) // 32
    assert result["top1"] > 0.85 and result["top5"] >= result["top1"]
    assert len(result["per_class_accuracy"]) == 10
    assert np.array(result["confusion"]).sum() == 360
