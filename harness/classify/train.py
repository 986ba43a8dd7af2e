"""Training a classifier on shard sets with Ray Train, and testing it on real data.

``train_classifier`` runs a Ray Train ``TorchTrainer``: with ``num_workers = 0`` the
train loop runs in the calling process (Ray Train's local mode; small trials do not pay
for a worker group), with ``num_workers ≥ 1`` it runs data-parallel (DDP) over that many
workers, gloo on CPUs, NCCL on GPUs.

Each worker reads its own part of the shards straight from the store: whole shards
round-robin when there are at least as many shards as workers, otherwise every worker
reads all and keeps a strided slice. Every worker runs the same number of steps per epoch.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.classify.augment import random_crop_flip
from harness.classify.evaluate import accuracy_summary, confusion_and_top5
from harness.classify.models import build_model
from harness.classify.preprocess import to_model_input
from harness.classify.recipes import Recipe, learning_rate
from harness.plan import TrainSource
from harness.progress import format_seconds, status
from harness.shards import ShardSet
from harness.store import Store

WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
WORKER_START_TIMEOUT_S = 900
CONTROLLER_FAILURE_LIMIT = 2


@dataclass(frozen=True)
class TrainTask:
    """Everything a worker needs: where the data is, the recipe, the seed."""

    label: str
    store: str
    sources: tuple[TrainSource, ...]
    val_folder: str
    num_classes: int
    image_shape: tuple[int, int, int]
    recipe: Recipe
    seed: int
    use_gpu: bool = False
    save_model_to: str | None = None


def _subset(labels: np.ndarray, fraction: float, num_classes: int, seed: int) -> np.ndarray:
    """Indices keeping round(fraction · count) of each class, chosen by ``seed``."""
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        keep.append(rng.choice(idx, size=int(round(fraction * len(idx))), replace=False))
    return np.sort(np.concatenate(keep))


def _partition(store: Store, sources: list[TrainSource], num_classes: int, seed: int,
               rank: int, world: int) -> tuple[np.ndarray, np.ndarray, int]:
    """This worker's images and labels, and the smallest count any worker holds.

    Whole shards go round-robin to workers when that splits the data within 10% of even;
    otherwise every worker reads all shards and keeps a strided slice.
    """
    pieces = [(ShardSet(store, s.folder), e, s.fraction, i)
              for s in sources for i, e in enumerate(ShardSet(store, s.folder).manifest()["shards"])]

    def kept(entry: dict, fraction: float) -> int:
        return sum(int(round(fraction * c)) if fraction < 1 else c for c in entry["counts"])

    per_rank = [sum(kept(e, f) for _, e, f, _ in pieces[r::world]) for r in range(world)]
    by_shard = world > 1 and min(per_rank) >= 0.9 * sum(per_rank) / world
    images, labels = [], []
    for shards, entry, fraction, index in (pieces[rank::world] if by_shard else pieces):
        x, y = shards.read_shard(entry)
        keep = _subset(y, fraction, num_classes, seed * 100_003 + index)
        images.append(x[keep])
        labels.append(y[keep])
    x, y = np.concatenate(images), np.concatenate(labels)
    if by_shard:
        return x, y, min(per_rank)
    return x[rank::world], y[rank::world], len(y) // world


def train_loop(task: TrainTask) -> dict[str, Any] | None:
    """The per-worker train loop; rank 0 returns the evaluation on the real validation split."""
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device("cuda", 0) if task.use_gpu and torch.cuda.is_available() else torch.device("cpu")
    recipe, store = task.recipe, Store(task.store)
    torch.manual_seed(task.seed)

    x, y, steps_base = _partition(store, list(task.sources), task.num_classes, task.seed, rank, world)
    per_worker_batch = max(1, recipe.batch_size // world)
    steps = max(1, steps_base // per_worker_batch)
    model = build_model(recipe.model, task.image_shape[0], task.num_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    if device.type == "cuda":
        images, labels = images.pin_memory(), labels.pin_memory()
    order_gen = torch.Generator().manual_seed(task.seed * 7919 + rank)
    started = last_print = time.monotonic()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(labels), generator=order_gen)
        total_loss = torch.zeros((), device=device)
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, epoch + step / steps)
            idx = order[step * per_worker_batch:(step + 1) * per_worker_batch]
            batch = to_model_input(images[idx].to(device, non_blocking=True))
            if recipe.augment != "none":
                batch = random_crop_flip(batch, recipe.pad, recipe.augment == "crop-flip", order_gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = torch.nn.functional.cross_entropy(model(batch), labels[idx].to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach()
        now = time.monotonic()
        if rank == 0 and (now - last_print > 15 or epoch == recipe.epochs - 1):
            last_print = now
            left = (now - started) / (epoch + 1) * (recipe.epochs - epoch - 1)
            status(f"[train {task.label}] epoch {epoch + 1}/{recipe.epochs} · loss {total_loss.item() / steps:.3f}"
                  f" · {(epoch + 1) / (now - started):.2f} epochs/s · ETA {format_seconds(left)}")
    train_seconds = time.monotonic() - started

    vx, vy, _ = _partition(store, [TrainSource(task.val_folder)], task.num_classes, task.seed, rank, world)
    confusion, top5 = confusion_and_top5(model, torch.from_numpy(vx), torch.from_numpy(vy), task.num_classes,
                                         recipe.eval_batch_size, device)
    n_train = torch.tensor(len(labels), device=device)
    if world > 1:
        for count in (confusion, top5, n_train):
            dist.all_reduce(count)
    if rank != 0:
        return None
    if task.save_model_to:
        buf = io.BytesIO()
        torch.save(getattr(model, "module", model).state_dict(), buf)
        store.write_bytes(buf.getvalue(), task.save_model_to)
    return {**accuracy_summary(confusion.cpu().numpy(), int(top5)), "n_train": int(n_train),
            "model": task.save_model_to,
            "steps_per_epoch": steps, "train_seconds": round(train_seconds, 2), "world_size": world}


def train_classifier(task: TrainTask, num_workers: int, cpus_per_worker: float, storage_path: str,
                     resources_per_worker: dict[str, float] | None = None) -> dict[str, Any]:
    """Train on the task's sources with Ray Train and return rank 0's evaluation.

    Each of ``num_workers`` workers holds ``cpus_per_worker`` CPUs, a GPU if the task uses
    one, and the custom Ray resources ``resources_per_worker``. Workers may wait for an
    autoscaler's nodes: Ray Train gives a worker group ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S``
    (``WORKER_START_TIMEOUT_S`` unless set) to start and retries ``CONTROLLER_FAILURE_LIMIT``
    times, so a run waits up to three quarters of an hour for nodes, then fails with Ray
    Train's startup timeout error instead of waiting forever.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    os.environ.setdefault(WORKER_START_TIMEOUT_ENV, str(WORKER_START_TIMEOUT_S))
    use_gpu = task.use_gpu
    resources = {"CPU": cpus_per_worker, **({"GPU": 1} if use_gpu else {}), **(resources_per_worker or {})}
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=task,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker=resources if num_workers else None),
        run_config=RunConfig(name=task.label.replace(" ", "_"), storage_path=storage_path,
                             failure_config=FailureConfig(max_failures=1 if num_workers else 0,
                                                          controller_failure_limit=CONTROLLER_FAILURE_LIMIT)),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    return result.return_value

