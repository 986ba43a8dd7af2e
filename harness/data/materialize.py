"""Turning a real dataset into train and validation shard sets in the store, once.

Images go into shards in a seeded random order, so that every shard holds a random
sample of the classes (a folder dataset lists its images class by class, and a streaming
reader shuffles within a few shards only). When Ray is running and a split is large,
one Ray worker per CPU of this node (where the source is), started once for both
splits, decodes and resizes chunks of images in parallel, and each shard is encoded and
written by one call of its own; otherwise this process does it all. Both give the same
shards.
"""

from __future__ import annotations

import math
from collections import deque
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
CALLS_PER_WORKER = 2


class _SplitWorker:
    """Holds the splits' loaders (unpickled once: a folder's loader carries every file name) and
    loads chunks of them or writes shards from chunks."""

    def __init__(self, splits: dict[str, Split]) -> None:
        self.splits = splits

    def load(self, name: str, idx: np.ndarray) -> np.ndarray:
        return self.splits[name].load(idx)

    def write(self, shards: ShardSet, index: int, labels: np.ndarray, num_classes: int, *chunks: np.ndarray) -> dict:
        return shards.write_shard(index, np.concatenate(chunks), labels, num_classes)


@dataclass
class _SplitWrite:
    """One split on its way into the store: its images in seeded shard groups, and where they go."""

    split: Split
    shards: ShardSet
    spec: dict
    groups: list[np.ndarray]
    progress: Progress

    @classmethod
    def plan(cls, split: Split, shards: ShardSet, spec: dict, shard_size: int, seed: int, stage: str) -> _SplitWrite:
        order = np.random.default_rng(seed).permutation(len(split.labels))
        groups = [order[start:start + shard_size] for start in range(0, len(order), shard_size)]
        return cls(split, shards, spec, groups, Progress(stage, total=len(groups), unit="shards"))


def _local_cpus() -> int:
    """CPUs Ray offers on this node (0 without Ray, or on a head kept free of work)."""
    import ray

    if not ray.is_initialized():
        return 0
    here = ray.get_runtime_context().get_node_id()
    return int(next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == here), 0))


def _write_parallel(writes: dict[str, _SplitWrite], num_classes: int, cpus: int) -> dict[str, list[dict]]:
    """Each split's shard entries, written by one Ray worker per CPU of this node: chunks loaded in parallel,
    one writer call per shard.

    The workers start once for all the splits, and the splits' shards form one queue, so no
    CPU waits between splits. A split is cut into about ``CHUNKS_PER_CPU`` chunks per CPU.
    Each call goes to a worker with fewer than ``CALLS_PER_WORKER`` calls queued, a shard's
    write before any load once its chunks are in, so the loads are not queued behind a
    worker's write while another worker idles. Only enough shards to keep every CPU busy are
    open at once, so the object store holds a few shards' images, not the dataset's.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    splits_ref = ray.put({name: w.split for name, w in writes.items()})
    worker_class = ray.remote(num_cpus=1)(_SplitWorker)
    workers = [worker_class.options(scheduling_strategy=here).remote(splits_ref) for _ in range(cpus)]
    chunks = {name: min(max(map(len, w.groups)),
                        max(MIN_CHUNK_IMAGES, math.ceil(len(w.split.labels) / (CHUNKS_PER_CPU * cpus))))
              for name, w in writes.items()}
    max_open = 1 + max(math.ceil(cpus * chunks[name] / max(map(len, w.groups))) for name, w in writes.items())
    unopened = deque((name, index) for name, w in writes.items() for index in range(len(w.groups)))
    loads: deque[tuple[tuple[str, int], np.ndarray]] = deque()  # (split, shard index), image indices
    chunk_refs: dict[tuple[str, int], list[ray.ObjectRef]] = {}
    open_shards: dict[tuple[str, int], int] = {}  # → chunks still loading
    loaded: deque[tuple[str, int]] = deque()
    queued = [0] * cpus
    calls: dict[ray.ObjectRef, tuple[int, bool, tuple[str, int]]] = {}  # → worker, is a write, shard
    entries: dict[str, list[dict]] = {name: [] for name in writes}

    def call(worker: int) -> bool:
        """Give the worker its next call, if there is one."""
        if not loaded and not loads and unopened and len(open_shards) < max_open:
            shard = unopened.popleft()
            idx, size = writes[shard[0]].groups[shard[1]], chunks[shard[0]]
            loads.extend((shard, idx[start:start + size]) for start in range(0, len(idx), size))
            chunk_refs[shard], open_shards[shard] = [], math.ceil(len(idx) / size)
        if loaded:
            shard, is_write = loaded.popleft(), True
            w = writes[shard[0]]
            ref = workers[worker].write.remote(w.shards, shard[1], w.split.labels[w.groups[shard[1]]], num_classes,
                                               *chunk_refs.pop(shard))
        elif loads:
            (shard, idx), is_write = loads.popleft(), False
            ref = workers[worker].load.remote(shard[0], idx)
            chunk_refs[shard].append(ref)
        else:
            return False
        calls[ref] = (worker, is_write, shard)
        queued[worker] += 1
        return True

    try:
        while calls or loaded or loads or unopened:
            for worker in range(cpus):
                while queued[worker] < CALLS_PER_WORKER and call(worker):
                    pass
            (done,), _ = ray.wait(list(calls), num_returns=1, fetch_local=False)
            worker, is_write, shard = calls.pop(done)
            queued[worker] -= 1
            if is_write:
                del open_shards[shard]
                entries[shard[0]].append(ray.get(done))
                writes[shard[0]].progress.advance()
            else:
                open_shards[shard] -= 1
                if not open_shards[shard]:
                    loaded.append(shard)
    finally:
        for worker in workers:
            ray.kill(worker)
    return entries


def _write_splits(writes: dict[str, _SplitWrite], num_classes: int, image_shape: tuple[int, int, int]) -> None:
    """Every split's shards and manifest: the large splits by Ray workers when this node offers
    two CPUs or more, the others by this process."""
    cpus = _local_cpus()
    large = {name: w for name, w in writes.items() if len(w.split.labels) >= MIN_PARALLEL_IMAGES}
    entries = _write_parallel(large, num_classes, cpus) if cpus >= 2 and large else {}
    for name, w in writes.items():
        if name not in entries:
            entries[name] = []
            for index, idx in enumerate(w.groups):
                entries[name].append(w.shards.write_shard(index, w.split.load(idx), w.split.labels[idx], num_classes))
                w.progress.advance()
        w.shards.write_manifest(w.spec, entries[name], num_classes, image_shape)


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
        _write_splits({name: _SplitWrite.plan(split, shards, {**info, "split": name}, shard_size, cfg.split_seed,
                                              f"dataset {cfg.kind}/{name}")
                       for name, split, shards in (("train", splits.train, train), ("val", splits.val, val))},
                      num_classes, splits.image_shape)
    manifest = train.manifest()
    return RealData(key=key, train=train, val=val,
                    class_names=tuple(manifest["spec"]["class_names"]),
                    image_shape=tuple(manifest["image_shape"]),
                    train_counts=tuple(manifest["counts"]))
