"""Training a classifier on shard sets with Ray Train, and testing it on the real test split.

``train_classifier`` runs a Ray Train ``TorchTrainer``: with ``num_workers = 0`` the
train loop runs in the calling process (Ray Train's local mode; small trials do not pay
for a worker group), with ``num_workers ≥ 1`` it runs data-parallel (DDP) over that many
workers, gloo on CPUs, NCCL on GPUs.

Data: each worker streams its part of the shards from the store
(:class:`harness.classify.stream.ShardStream`): every epoch deals the shards anew in an
order drawn from (seed, epoch), shuffles within a buffer of shards, and gives every worker
the same number of steps; memory does not grow with the set. NAS cells stream their real
and sample shards through the one stream. uint8 batches go to the device one step ahead;
conversion, augmentation and normalisation run there (:class:`harness.classify.step.TrainStep`).
The test split is streamed in its manifest's order, each worker a contiguous part; rank 0
pools the counts and keeps every test image's top-5 classes (``predictions.npz``).

Checkpoints: every ``recipe.checkpoint_every`` epochs rank 0 writes the model and the
optimizer with the epoch reached (and the epochs it resumed after, if it ever did) to
``checkpoint.pt`` in the trial's folder. A train loop
that starts again (Ray Train's retry after a lost worker or node, or a rerun of the sweep
after the process was killed) resumes after that epoch. The stream's order and every
random draw of an epoch come from (seed, epoch, rank), so the epoch is all the random
state there is: a resumed run trains on exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness import layout
from harness.classify.evaluate import accuracy_summary, evaluate_batches
from harness.classify.models import build_model
from harness.classify.optim import param_groups
from harness.classify.recipes import Recipe, learning_rate
from harness.classify.step import TrainStep
from harness.classify.stream import DevicePrefetcher, ShardStream, eval_batches, shard_pieces
from harness.plan import TrainSource
from harness.progress import format_seconds, status
from harness.report.predictions import encode_predictions
from harness.shards import ShardSet
from harness.store import Store
from harness.verify import CorruptArtefact, read_checked, write_checked

WORKER_START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
WORKER_START_TIMEOUT_S = 900
CONTROLLER_FAILURE_LIMIT = 2
#: Seconds between a trial's progress lines.
PRINT_EVERY_S = 15


@dataclass(frozen=True)
class TrainTask:
    """Everything a worker needs: where the data is, the recipe, the seed, and where the trial keeps
    its checkpoint and predictions (``folder``, none for a trial kept nowhere)."""

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
    folder: str | None = None


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of every random draw of one worker in one epoch (augmentation, and torch's own)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0] >> 1)


def read_checkpoint(store: Store, folder: str, recipe: Recipe, label: str) -> dict[str, Any] | None:
    """The trial's last checkpoint, or None when there is none or it does not read back whole (then
    the trial starts at epoch 0, with a warning)."""
    if not store.exists(folder, layout.TRIAL_CHECKPOINT):
        return None
    try:
        state = torch.load(io.BytesIO(read_checked(store, folder, layout.TRIAL_CHECKPOINT)), map_location="cpu",
                           weights_only=True)
        if not 0 < state["epoch"] <= recipe.epochs:
            raise ValueError(f"epoch {state['epoch']} outside 1..{recipe.epochs}")
    except (CorruptArtefact, FileNotFoundError, RuntimeError, KeyError, TypeError, ValueError) as err:
        status(f"[train {label}] checkpoint {store.path(folder, layout.TRIAL_CHECKPOINT)} is unusable "
               f"({type(err).__name__}: {err}); training from epoch 0")
        return None
    return state


def write_checkpoint(store: Store, folder: str, epoch: int, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, resumes: list[int]) -> None:
    """Model and optimizer after ``epoch`` epochs, and the epochs the run resumed after, with a checksum
    sidecar, atomically."""
    buf = io.BytesIO()
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "resumes": resumes}, buf)
    write_checked(store, buf.getvalue(), folder, layout.TRIAL_CHECKPOINT)


def train_epoch(step: TrainStep, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], recipe: Recipe, epoch: int,
                steps: int) -> torch.Tensor:
    """One epoch of ``steps`` SGD steps on device batches, each at the recipe's rate for its fraction of the
    epoch; the summed loss, left on the device (no host synchronisation)."""
    total = torch.zeros((), device=step.device)
    for i, (images, labels) in enumerate(batches):
        for group in step.optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch + i / steps)
        total += step(images, labels)
    return total


def _device(use_gpu: bool) -> torch.device:
    if use_gpu and torch.cuda.is_available():
        from ray.train.torch import get_device

        device = get_device()
        torch.cuda.set_device(device)
        return device
    return torch.device("cpu")


def train_loop(task: TrainTask) -> dict[str, Any] | None:
    """The per-worker train loop; rank 0 returns the evaluation on the real test split."""
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = _device(task.use_gpu)
    cuda = device.type == "cuda"
    recipe, store = task.recipe, Store(task.store)

    pieces = shard_pieces([(ShardSet(store, s.folder), s.fraction) for s in task.sources], task.seed)
    stream = ShardStream(pieces, max(1, recipe.batch_size // world), rank, world, task.seed, pin_memory=cuda)
    steps = stream.steps_per_epoch
    torch.manual_seed(task.seed)
    model = build_model(recipe.model, task.image_shape[0], task.num_classes).to(device)
    params = model.parameters() if recipe.decay_bn_and_bias else param_groups(model, recipe.weight_decay)
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                                nesterov=recipe.momentum > 0)
    checkpoints = bool(task.folder and recipe.checkpoint_every)
    start_epoch, resumes = 0, []
    if checkpoints and (state := read_checkpoint(store, task.folder, recipe, task.label)):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]
        resumes = [*state.get("resumes", []), start_epoch]
        if rank == 0:
            status(f"[train {task.label}] resuming after epoch {start_epoch} from its checkpoint")
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    trained = model
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if cuda else None)
    step = TrainStep(trained, optimizer, device, augment=recipe.augment, pad=recipe.pad,
                     input_size=recipe.input_size, compile=recipe.compile)

    started = last_print = time.monotonic()
    for epoch in range(start_epoch, recipe.epochs):
        seed = epoch_seed(task.seed, epoch, rank)
        torch.manual_seed(seed)
        step.reseed(seed)
        trained.train()
        total_loss = train_epoch(step, DevicePrefetcher(stream.epoch(epoch), device), recipe, epoch, steps)
        done = epoch + 1
        if rank == 0 and checkpoints and (done % recipe.checkpoint_every == 0 or done == recipe.epochs):
            write_checkpoint(store, task.folder, done, model, optimizer, resumes)
        now = time.monotonic()
        if rank == 0 and (now - last_print > PRINT_EVERY_S or done == recipe.epochs):
            last_print = now
            rate = (done - start_epoch) / (now - started)
            status(f"[train {task.label}] epoch {done}/{recipe.epochs} · loss {total_loss.item() / steps:.3f}"
                   f" · {rate:.2f} epochs/s · ETA {format_seconds((recipe.epochs - done) / rate)}")
    train_seconds = time.monotonic() - started

    val_pieces = shard_pieces([(ShardSet(store, task.val_folder), 1.0)], task.seed)
    batches = eval_batches(val_pieces, recipe.eval_batch_size, rank, world, pin_memory=cuda)
    tested = evaluate_batches(model, DevicePrefetcher(batches, device), task.num_classes, device,
                              input_size=recipe.input_size, channels_last=step.channels_last, autocast=step.autocast)
    top_k = tested.top_k.cpu().numpy()
    if world > 1:
        dist.all_reduce(tested.confusion)
        dist.all_reduce(tested.top5)
        parts: list[np.ndarray] | None = [None] * world if rank == 0 else None  # type: ignore[list-item]
        dist.gather_object(top_k, parts, dst=0)
        top_k = np.concatenate(parts) if rank == 0 else top_k
    if rank != 0:
        return None
    confusion = tested.confusion.cpu().numpy()
    if len(top_k) != confusion.sum():
        raise RuntimeError(f"{len(top_k)} predictions for {confusion.sum()} test images of {task.val_folder}")
    predictions = None
    if task.folder:
        predictions = f"{task.folder}/{layout.TRIAL_PREDICTIONS}"
        write_checked(store, encode_predictions(top_k), predictions)
    if task.save_model_to:
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        store.write_bytes(buf.getvalue(), task.save_model_to)
    return {**accuracy_summary(confusion, int(tested.top5)), "n_train": stream.n_images,
            "model": task.save_model_to, "predictions": predictions,
            "steps_per_epoch": steps, "train_seconds": round(train_seconds, 2), "world_size": world}


def train_classifier(task: TrainTask, num_workers: int, cpus_per_worker: float, storage_path: str,
                     resources_per_worker: dict[str, float] | None = None) -> dict[str, Any]:
    """Train on the task's sources with Ray Train and return rank 0's evaluation.

    Each of ``num_workers`` workers holds ``cpus_per_worker`` CPUs, a GPU if the task uses
    one, and the custom Ray resources ``resources_per_worker``. Workers may wait for an
    autoscaler's nodes: Ray Train gives a worker group ``RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S``
    (``WORKER_START_TIMEOUT_S`` unless set) to start and retries ``CONTROLLER_FAILURE_LIMIT``
    times, so a run waits up to three quarters of an hour for nodes, then fails with Ray
    Train's startup timeout error instead of waiting forever. A data-parallel run whose
    worker or node is lost starts again once (from the trial's last checkpoint).
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
