"""Turning a real dataset into train and validation shard sets in the store, once.

Images go into shards in a seeded random order, so that every shard holds a random
sample of the classes (a folder dataset lists its images class by class, and a streaming
reader shuffles within a few shards only). A thread of this process loads the images
(decode, crop, resize) and writes the shards; when Ray is running and the dataset is
large, one Ray worker per further CPU of this node (where the source is) shares the
work: chunks of images loaded in parallel, each shard encoded and written by one call of
its own. However many take part, the shards are the same.
"""

from __future__ import annotations

import math
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
CHUNKS_PER_WORKER = 8
CALLS_PER_WORKER = 2


class _SplitWorker:
    """Holds the splits' loaders (unpickled once: a folder's loader carries every file name) and
    loads chunks of them or writes shards from chunks."""

    def __init__(self, splits: dict[str, Split]) -> None:
        self.splits = splits

    def load(self, name: str, idx: np.ndarray) -> np.ndarray:
        return self.splits[name].load(idx)

    def write(self, shards: ShardSet, index: int, labels: np.ndarray, num_classes: int, *chunks: np.ndarray) -> dict:
        return shards.write_shard(index, chunks[0] if len(chunks) == 1 else np.concatenate(chunks), labels,
                                  num_classes)


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


def _ray_workers_wanted(images: int) -> int:
    """Ray workers to start beside this process: one per further CPU that Ray offers on this node (none
    without Ray, on a head kept free of work, or for a dataset too small to repay their start)."""
    import ray

    if images < MIN_PARALLEL_IMAGES or not ray.is_initialized():
        return 0
    here = ray.get_runtime_context().get_node_id()
    cpus = int(next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == here), 0))
    return max(0, cpus - 1)


def _write_shards(writes: dict[str, _SplitWrite], num_classes: int, ray_workers: int) -> dict[str, list[dict]]:
    """Each split's shard entries: chunks of images loaded, and each shard written from its chunks, by a thread
    of this process and by ``ray_workers`` Ray workers on this node.

    This process works as one of the workers, so it is the whole job without Ray and saves one Ray
    worker's start with it. The splits' shards form one queue, cut into about ``CHUNKS_PER_WORKER``
    chunks per worker when there are several. Each call goes to a worker with fewer than
    ``CALLS_PER_WORKER`` calls queued, a shard's write before any load once its chunks are in, so
    no worker waits behind another's write. Only enough shards to keep every worker busy are open
    at once, so memory holds a few shards' images, not the dataset's.
    """
    import ray

    splits = {name: w.split for name, w in writes.items()}
    remote = []
    if ray_workers:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        worker_class = ray.remote(num_cpus=1)(_SplitWorker).options(scheduling_strategy=here)
        splits_ref = ray.put(splits)
        remote = [worker_class.remote(splits_ref) for _ in range(ray_workers)]
    local, thread = _SplitWorker(splits), ThreadPoolExecutor(1, thread_name_prefix="materialize")
    workers = 1 + ray_workers
    chunk_size = {name: min(max(map(len, w.groups)),
                            max(MIN_CHUNK_IMAGES, math.ceil(len(w.split.labels) / (CHUNKS_PER_WORKER * workers))))
                  if ray_workers else max(map(len, w.groups))
                  for name, w in writes.items()}
    max_open = 1 + max(math.ceil(workers * chunk_size[name] / max(map(len, w.groups))) for name, w in writes.items())
    unopened = deque((name, index) for name, w in writes.items() for index in range(len(w.groups)))
    loads: deque[tuple[tuple[str, int], np.ndarray]] = deque()  # (split, shard index), image indices
    chunks: dict[tuple[str, int], list[Future | ray.ObjectRef]] = {}  # a chunk from this process, or a Ray worker
    open_shards: dict[tuple[str, int], int] = {}  # → chunks still loading
    loaded: deque[tuple[str, int]] = deque()
    calls: dict[Future, tuple[int, bool, tuple[str, int]]] = {}  # → worker (0: this process), is a write, shard
    entries: dict[str, list[dict]] = {name: [] for name in writes}

    def call(worker: int) -> bool:
        """Give the worker its next call, if there is one."""
        if not loaded and not loads and unopened and len(open_shards) < max_open:
            shard = unopened.popleft()
            idx, size = writes[shard[0]].groups[shard[1]], chunk_size[shard[0]]
            loads.extend((shard, idx[start:start + size]) for start in range(0, len(idx), size))
            chunks[shard], open_shards[shard] = [], math.ceil(len(idx) / size)
        if loaded:
            shard, is_write = loaded.popleft(), True
            w = writes[shard[0]]
            args = shard[1], w.split.labels[w.groups[shard[1]]], num_classes
            # chunks this process loaded go as arrays; a Ray worker's stay references unless this process writes
            parts = [part.result() if isinstance(part, Future) else (part if worker else ray.get(part))
                     for part in chunks.pop(shard)]
            future = (remote[worker - 1].write.remote(w.shards, *args, *parts).future() if worker
                      else thread.submit(local.write, w.shards, *args, *parts))
        elif loads:
            (shard, idx), is_write = loads.popleft(), False
            if worker:
                ref = remote[worker - 1].load.remote(shard[0], idx)
                chunks[shard].append(ref)
                future = ref.future()
            else:
                future = thread.submit(local.load, shard[0], idx)
                chunks[shard].append(future)
        else:
            return False
        calls[future] = (worker, is_write, shard)
        return True

    def queued(worker: int) -> int:
        return sum(w == worker for w, _, _ in calls.values())

    try:
        while calls or loaded or loads or unopened:
            for worker in range(workers):
                while queued(worker) < CALLS_PER_WORKER and call(worker):
                    pass
            done, _ = wait(calls, return_when=FIRST_COMPLETED)
            for future in done:
                _, is_write, shard = calls.pop(future)
                result = future.result()
                if is_write:
                    del open_shards[shard]
                    entries[shard[0]].append(result)
                    writes[shard[0]].progress.advance()
                else:
                    open_shards[shard] -= 1
                    if not open_shards[shard]:
                        loaded.append(shard)
    finally:
        thread.shutdown(cancel_futures=True)
        for worker in remote:
            ray.kill(worker)
    return entries


def _write_splits(writes: dict[str, _SplitWrite], num_classes: int, image_shape: tuple[int, int, int]) -> None:
    """Every split's shards and manifest."""
    entries = _write_shards(writes, num_classes, _ray_workers_wanted(sum(len(w.split.labels) for w in writes.values())))
    for name, w in writes.items():
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
