"""Turning a real dataset into train and validation shard sets in the store, once."""

from __future__ import annotations

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


def _write_split(split: Split, shards: ShardSet, spec: dict, num_classes: int,
                 image_shape: tuple[int, int, int], shard_size: int, what: str) -> None:
    n = len(split.labels)
    starts = range(0, n, shard_size)
    progress = Progress(f"dataset {what}", total=len(starts), unit="shards")
    entries = []
    for index, start in enumerate(starts):
        idx = np.arange(start, min(start + shard_size, n))
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
                         shard_size, f"{cfg.kind}/{name}")
    manifest = train.manifest()
    return RealData(key=key, train=train, val=val,
                    class_names=tuple(manifest["spec"]["class_names"]),
                    image_shape=tuple(manifest["image_shape"]),
                    train_counts=tuple(manifest["counts"]))
