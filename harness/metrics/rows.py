"""Which rows of a shard set the metrics read: planned by the driver from the manifest, before any pass.

The paper's IS-50K and FID-50K: IS and the Fréchet distance use ``num_samples`` rows drawn by a
seeded permutation (never the first rows), and the Inception Score cuts them into 10 splits in
the permutation's order, so no split is a run of classes; the reference statistics use every
row of the real train split. KID and precision/recall use a subset of ``max_samples`` rows
stratified by class (every class in proportion, at least one row each when the subset holds as
many rows as there are classes), random within each class. The plan needs only the manifests'
per-shard class counts, so only the chosen rows are fed to the networks: on ImageNet a
1.28M-image sample set costs 50k forward passes, not 1.28M.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IS_SPLITS = 10


def class_allocation(counts: Sequence[int], total: int) -> np.ndarray:
    """Rows per class of a ``total``-row subset stratified by class: proportional to ``counts``
    (largest remainders), at least one for every class present when ``total`` allows it."""
    counts = np.asarray(counts, dtype=np.int64)
    total = min(total, int(counts.sum()))
    quota = counts * (total / max(int(counts.sum()), 1))
    alloc = np.floor(quota).astype(np.int64)
    if total >= np.count_nonzero(counts):
        alloc = np.maximum(alloc, (counts > 0).astype(np.int64))
    while alloc.sum() < total:  # the largest remainders, among classes with rows left
        alloc[np.argmax(np.where(alloc < counts, quota - alloc, -np.inf))] += 1
    while alloc.sum() > total:  # the minimum of one overshot: take back where most above the quota
        alloc[np.argmax(np.where(alloc > 1, alloc - quota, -np.inf))] -= 1
    return alloc


@dataclass(frozen=True)
class ShardRows:
    """The rows of one shard the metrics read.

    ``measured``: local row indices (ascending) for IS and FD, with ``is_split`` the Inception
    Score split of each; ``subset``: for KID and precision/recall, per class, the ranks of the
    chosen rows among that class's rows in this shard.
    """

    entry: dict[str, Any]
    index: int
    measured: np.ndarray
    is_split: np.ndarray
    is_splits: int
    subset: dict[int, np.ndarray]

    def subset_rows(self, labels: np.ndarray) -> np.ndarray:
        """Local row indices (ascending) of the KID/P-R subset, given the shard's labels."""
        rows = [np.flatnonzero(labels == c)[ranks] for c, ranks in self.subset.items()]
        return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)

    @property
    def empty(self) -> bool:
        return not len(self.measured) and not self.subset


def _set_rng(seed: int, folder: str) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent streams (measured rows, subset) of a set, fixed by the seed and the set's folder."""
    digest = int(hashlib.sha256(folder.encode()).hexdigest()[:16], 16)
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence([seed, digest]).spawn(2))


def plan_rows(entries: list[dict[str, Any]], num_samples: int | None, max_samples: int, seed: int,
              folder: str) -> list[ShardRows]:
    """Which rows of each shard the metrics read (see the module docstring); shards with none are left out.

    ``entries`` are the set's manifest entries (``n`` and per-class ``counts`` of each shard);
    ``num_samples`` None measures every row (the reference statistics).
    """
    sizes = np.array([e["n"] for e in entries], dtype=np.int64)
    counts = np.array([e["counts"] for e in entries], dtype=np.int64).reshape(len(entries), -1)
    n = int(sizes.sum())
    measured_rng, subset_rng = _set_rng(seed, folder)
    k = n if num_samples is None else min(num_samples, n)
    chosen = measured_rng.permutation(n)[:k]
    splits = min(IS_SPLITS, k) or 1
    split_of = np.arange(k) * splits // max(k, 1)
    alloc = class_allocation(counts.sum(0), max_samples)
    ranks = {c: np.sort(subset_rng.choice(int(total), size=int(a), replace=False))
             for c, (total, a) in enumerate(zip(counts.sum(0), alloc, strict=True)) if a}
    starts, class_starts = np.concatenate([[0], np.cumsum(sizes)]), np.vstack([np.zeros(counts.shape[1], np.int64),
                                                                                np.cumsum(counts, axis=0)])
    plans = []
    for i, entry in enumerate(entries):
        inside = (chosen >= starts[i]) & (chosen < starts[i + 1])
        order = np.argsort(chosen[inside])
        subset = {}
        for c, r in ranks.items():
            mine = r[(r >= class_starts[i, c]) & (r < class_starts[i + 1, c])] - class_starts[i, c]
            if len(mine):
                subset[c] = mine
        rows = ShardRows(entry, i, (chosen[inside] - starts[i])[order], split_of[inside][order], splits, subset)
        if not rows.empty:
            plans.append(rows)
    return plans
