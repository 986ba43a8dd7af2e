"""Turning a real dataset into train and validation shard sets in the store, once.

Images go into shards in a seeded random order, so that every shard holds a random
sample of the classes (a folder dataset lists its images class by class, and a streaming
reader shuffles within a few shards only). When Ray is running and the split is large,
one Ray worker per CPU of this node (where the source is) decodes and resizes chunks of
images in parallel, and each shard is encoded and written by one call of its own;
otherwise this process does it all. Both give the same shards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness import layout
from harness.config import DatasetConfig
from harness.data.readers import Split, dataset_spec, read_splits
from harness.progress import Progress
from harness.shards import ShardSet
from harness.store import Store


@dataclass(frozen=True)
class RealData:
    """The real dataset as it lives in the store: what every stage needs to know of it."""

    key: str
    train: ShardSet
    val: ShardSet
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    train_counts: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return int(sum(self.train_counts))


MIN_PARALLEL_IMAGES = 2_000
MIN_CHUNK_IMAGES = 100
CHUNKS_PER_CPU = 8


class _SplitWorker:
    """Holds a split's loader (unpickled once: a folder's loader carries every file name) and
    loads chunks of it or writes shards from chunks."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def load(self, idx: np.ndarray) -> np.ndarray:
        return self.split.load(idx)

    def write(self, shards: ShardSet, index: int, labels: np.ndarray, num_classes: int, *chunks: np.ndarray) -> dict:
        return shards.write_shard(index, np.concatenate(chunks), labels, num_classes)


def _local_cpus() -> int:
    """CPUs Ray offers on this node (0 without Ray, or on a head kept free of work)."""
    import ray

    if not ray.is_initialized():
        return 0
    here = ray.get_runtime_context().get_node_id()
    return int(next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == here), 0))


def _write_parallel(split: Split, shards: ShardSet, groups: list[np.ndarray], num_classes: int,
                    cpus: int, progress: Progress) -> list[dict]:
    """Shards written by one Ray worker per CPU of this node: chunks loaded in parallel, one writer call per shard.

    A split is cut into about ``CHUNKS_PER_CPU`` chunks per CPU, and only enough shards to
    keep every CPU busy are in flight at once, so the object store holds a few shards'
    images, not the dataset's.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    split_ref = ray.put(split)
    worker_class = ray.remote(num_cpus=1)(_SplitWorker)
    workers = [worker_class.options(scheduling_strategy=here).remote(split_ref) for _ in range(cpus)]
    shard_size = max(len(g) for g in groups)
    chunk = min(shard_size, max(MIN_CHUNK_IMAGES, math.ceil(len(split.labels) / (CHUNKS_PER_CPU * cpus))))
    window = 1 + math.ceil(cpus * chunk / shard_size)
    pending, entries, todo, calls = [], [], list(enumerate(groups)), 0
    try:
        while todo or pending:
            while todo and len(pending) < window:
                index, idx = todo.pop(0)
                chunks = []
                for start in range(0, len(idx), chunk):
                    chunks.append(workers[calls % cpus].load.remote(idx[start:start + chunk]))
                    calls += 1
                pending.append(workers[index % cpus].write.remote(shards, index, split.labels[idx], num_classes,
                                                                   *chunks))
            done, pending = ray.wait(pending, num_returns=1)
            entries.append(ray.get(done[0]))
            progress.advance()
    finally:
        for worker in workers:
            ray.kill(worker)
    return entries


def _write_split(split: Split, shards: ShardSet, spec: dict, num_classes: int,
                 image_shape: tuple[int, int, int], shard_size: int, what: str, seed: int) -> None:
    n = len(split.labels)
    order = np.random.default_rng(seed).permutation(n)
    groups = [order[start:start + shard_size] for start in range(0, n, shard_size)]
    progress = Progress(f"dataset {what}", total=len(groups), unit="shards")
    cpus = _local_cpus()
    if cpus >= 2 and n >= MIN_PARALLEL_IMAGES:
        entries = _write_parallel(split, shards, groups, num_classes, cpus, progress)
    else:
        entries = []
        for index, idx in enumerate(groups):
            entries.append(shards.write_shard(index, split.load(idx), split.labels[idx], num_classes))
            progress.advance()
    shards.write_manifest(spec, entries, num_classes, image_shape)


def materialize(cfg: DatasetConfig, store: Store, shard_size: int = 10_000) -> RealData:
    """The dataset's shard sets, written from its source unless already complete."""
    spec = dataset_spec(cfg)
    key = layout.content_key(spec)
    train = ShardSet(store, layout.dataset_split(key, "train"))
    val = ShardSet(store, layout.dataset_split(key, "val"))
    if not (train.is_complete() and val.is_complete()):
        splits = read_splits(cfg)
        num_classes = len(splits.class_names)
        bad = [int(v) for v in np.unique(np.concatenate([splits.train.labels, splits.val.labels]))
               if not 0 <= v < num_classes]
        if bad:
            raise ValueError(f"dataset {cfg.kind}: labels {bad[:5]} lie outside 0..{num_classes - 1}")
        info = {"dataset": spec, "class_names": splits.class_names}
        for name, split, shards in (("train", splits.train, train), ("val", splits.val, val)):
            _write_split(split, shards, {**info, "split": name}, num_classes, splits.image_shape,
                         shard_size, f"{cfg.kind}/{name}", cfg.split_seed)
    manifest = train.manifest()
    return RealData(key=key, train=train, val=val,
                    class_names=tuple(manifest["spec"]["class_names"]),
                    image_shape=tuple(manifest["image_shape"]),
                    train_counts=tuple(manifest["counts"]))
