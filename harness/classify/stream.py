"""Streaming training and evaluation data from shard sets, in bounded memory.

A worker never holds its whole part of a set: shards are read from the store (local,
``s3://``, ``gs://``) on a background thread, at most ``read_ahead`` decoded shards ahead
of the batcher, and batches are cut from a shuffle buffer of ``buffer_shards`` shards'
worth of images. Memory per worker depends on the shard size, never on the set's size.

Training order: every epoch lays the shards out in a new order drawn from (seed, epoch)
and gives worker r the r-th of ``world`` equal runs of images along that order (a shard
on the border between two runs is read by both, each keeping its own part). So every
kept image is in exactly one worker's run each epoch; every worker runs the same
``steps_per_epoch`` steps, fixed up front from the manifests, and the few images past the
last full batch (fewer than ``world · (batch_size + 1)`` per epoch) are left out, a
different few each epoch.

NAS subsets: a source with ``fraction`` < 1 keeps round(fraction · count) images of each
class of its set (the paper's r·|real| per class), spread over its shards by largest
remainder and drawn within each shard from a seed that does not change between epochs, so
a cell trains on one fixed subset. Real and sample shards then go through one stream.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from harness.shards import ShardError, ShardSet

T = TypeVar("T")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ShardPiece:
    """One shard of a training source and how many images of each class to keep from it."""

    shards: ShardSet
    entry: dict[str, Any]
    keep: tuple[int, ...]
    subset_seed: tuple[int, ...]

    @property
    def n(self) -> int:
        return sum(self.keep)

    @property
    def name(self) -> str:
        return f"{self.shards.uri}/{self.entry['name']}"

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept images (uint8 N×C×H×W) and labels, in shard order."""
        images, labels = self.shards.read_shard(self.entry)
        if list(self.keep) == self.entry["counts"]:
            return images, labels
        rng = np.random.default_rng(list(self.subset_seed))
        chosen = []
        for c, k in enumerate(self.keep):
            idx = np.flatnonzero(labels == c)
            if len(idx) < k:
                raise ShardError(f"shard {self.name} holds {len(idx)} images of class {c} but its manifest "
                                 f"entry counts {self.entry['counts'][c]}")
            chosen.append(rng.choice(idx, size=k, replace=False))
        keep = np.sort(np.concatenate(chosen))
        return images[keep], labels[keep]


def _allocate(counts: np.ndarray, fraction: float) -> np.ndarray:
    """Per shard (rows) and class (columns): round(fraction · class total) spread by largest remainder."""
    if fraction >= 1:
        return counts
    quota = fraction * counts
    keep = np.floor(quota).astype(int)
    remainder = quota - keep
    for c in range(counts.shape[1]):
        extra = round(fraction * int(counts[:, c].sum())) - int(keep[:, c].sum())
        keep[np.argsort(-remainder[:, c], kind="stable")[:extra], c] += 1
    return keep


def shard_pieces(sources: Sequence[tuple[ShardSet, float]], seed: int) -> list[ShardPiece]:
    """Every shard of ``sources`` (shard set, fraction kept of each class), from the manifests alone."""
    pieces = []
    for s, (shards, fraction) in enumerate(sources):
        if not 0 < fraction <= 1:
            raise ValueError(f"shard set {shards.uri}: fraction {fraction} must lie in (0, 1]")
        entries = shards.manifest()["shards"]
        keep = _allocate(np.array([e["counts"] for e in entries], dtype=int), fraction)
        pieces += [ShardPiece(shards, e, tuple(int(k) for k in keep[i]), (seed, s, i))
                   for i, e in enumerate(entries)]
    return pieces


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def in_background(produce: Callable[[], Iterator[T]], ahead: int, name: str) -> Iterator[T]:
    """The items of ``produce()``, made on a daemon thread at most ``ahead`` items ahead of the consumer.

    An error on the thread is raised in the consumer; a consumer that stops early stops the thread.
    """
    items: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.05)
                return True
        return False

    def run() -> None:
        try:
            with contextlib.closing(produce()) as made:
                for item in made:
                    if not put(item):
                        return
            put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failure(err))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                items.get_nowait()
            thread.join(0.05)


def _span(sizes: Sequence[int], order: Sequence[int], lo: int, hi: int) -> list[tuple[int, int, int]]:
    """The (piece, start, stop) parts of images ``lo`` to ``hi`` along the pieces laid out in ``order``."""
    parts, offset = [], 0
    for i in order:
        start, stop = max(lo, offset), min(hi, offset + sizes[i])
        if start < stop:
            parts.append((i, start - offset, stop - offset))
        offset += sizes[i]
    return parts


Reader = Callable[[ShardPiece], tuple[np.ndarray, np.ndarray]]


def _read_parts(pieces: Sequence[ShardPiece], parts: list[tuple[int, int, int]], read: Reader,
                read_ahead: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    def produce() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i, start, stop in parts:
            images, labels = read(pieces[i])
            yield images[start:stop], labels[start:stop]

    return in_background(produce, read_ahead, "shard-reader")


def _batch(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, pin: bool) -> Batch:
    out = torch.empty((len(idx), *images.shape[1:]), dtype=torch.uint8, pin_memory=pin)
    np.take(images, idx, axis=0, out=out.numpy(), mode="clip")  # "raise" would buffer the output
    targets = torch.from_numpy(labels[idx])
    return out, targets.pin_memory() if pin else targets


class ShardStream:
    """Shuffled uint8 training batches of one worker, streamed from shards; see the module's doc.

    ``batch_size`` is this worker's. Held at once, in images: at most ``read_ahead + 2``
    shards (queued, being read, being merged), the shuffle buffer (``buffer_shards`` of the
    largest shard, or one shard and a batch if batches are larger than shards) and
    ``prefetch_batches + 2`` batches. ``pin_memory`` makes
    batches in page-locked memory, for non-blocking copies to a GPU. ``read`` reads one
    piece (``ShardPiece.read``; a test counts reads through it).
    """

    def __init__(self, pieces: Sequence[ShardPiece], batch_size: int, rank: int, world: int, seed: int, *,
                 read_ahead: int = 2, buffer_shards: int = 2, prefetch_batches: int = 4, pin_memory: bool = False,
                 read: Reader = ShardPiece.read) -> None:
        if buffer_shards < 2 or read_ahead < 1 or batch_size < 1:
            raise ValueError("ShardStream needs buffer_shards ≥ 2, read_ahead ≥ 1 and batch_size ≥ 1")
        self.pieces, self.rank, self.world, self.seed = list(pieces), rank, world, seed
        self.read_ahead, self.prefetch_batches, self.pin_memory, self.read = (
            read_ahead, prefetch_batches, pin_memory, read)
        self.sizes = [p.n for p in self.pieces]
        self.n_images = sum(self.sizes)
        quota = self.n_images // world
        if quota == 0:
            raise ValueError(f"{len(self.pieces)} shards ({', '.join(p.shards.uri for p in self.pieces[:3])}) hold "
                             f"{self.n_images} images, fewer than the {world} workers")
        self.batch_size = min(batch_size, quota)
        self.steps_per_epoch = quota // self.batch_size
        self.keep_images = (buffer_shards - 1) * max(self.sizes)
        self.fill_images = self.keep_images + max(max(self.sizes), self.batch_size)

    @property
    def images_per_epoch(self) -> int:
        """Images all workers together train on per epoch (the rest is the equal-steps truncation)."""
        return self.steps_per_epoch * self.batch_size * self.world

    def parts(self, epoch: int) -> list[tuple[int, int, int]]:
        """This worker's (piece index, start, stop) parts in ``epoch``."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pieces)).tolist()
        quota = self.n_images // self.world
        return _span(self.sizes, order, self.rank * quota, (self.rank + 1) * quota)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """``steps_per_epoch`` batches: uint8 images (N×C×H×W) and int64 labels."""
        chunks = _read_parts(self.pieces, self.parts(epoch), self.read, self.read_ahead)
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        b = self.batch_size

        def produce() -> Iterator[Batch]:
            pool_x = pool_y = None
            made, exhausted = 0, False
            with contextlib.closing(chunks):
                while made < self.steps_per_epoch:
                    while not exhausted and (pool_y is None or len(pool_y) < self.fill_images):
                        chunk = next(chunks, None)
                        if chunk is None:
                            exhausted = True
                        elif pool_y is None:
                            pool_x, pool_y = chunk
                        else:
                            pool_x, pool_y = np.concatenate([pool_x, chunk[0]]), np.concatenate([pool_y, chunk[1]])
                    order = rng.permutation(len(pool_y))
                    used, keep = 0, 0 if exhausted else self.keep_images
                    while made < self.steps_per_epoch and len(order) - used >= b + keep:
                        yield _batch(pool_x, pool_y, order[used:used + b], self.pin_memory)
                        used, made = used + b, made + 1
                    if exhausted and made < self.steps_per_epoch:
                        raise RuntimeError(f"worker {self.rank} ran out of images after {made} of "
                                           f"{self.steps_per_epoch} steps in epoch {epoch}")
                    pool_x, pool_y = pool_x[order[used:]], pool_y[order[used:]]

        return in_background(produce, self.prefetch_batches, "shard-batcher")


def eval_batches(pieces: Sequence[ShardPiece], batch_size: int, rank: int, world: int, *, read_ahead: int = 2,
                 pin_memory: bool = False, read: Reader = ShardPiece.read) -> Iterator[Batch]:
    """Worker ``rank``'s part of every image, in shard order, in batches (the last may be short).

    The parts of all workers are disjoint and together hold every image once, so
    confusion counts summed over workers are those of the whole set.
    """
    sizes = [p.n for p in pieces]
    total = sum(sizes)
    parts = _span(sizes, range(len(pieces)), rank * total // world, (rank + 1) * total // world)

    def produce() -> Iterator[Batch]:
        px = py = None
        with contextlib.closing(_read_parts(pieces, parts, read, read_ahead)) as chunks:
            for x, y in chunks:
                px, py = (x, y) if py is None else (np.concatenate([px, x]), np.concatenate([py, y]))
                whole = len(py) // batch_size * batch_size
                for start in range(0, whole, batch_size):
                    yield _batch(px, py, np.arange(start, start + batch_size), pin_memory)
                px, py = px[whole:], py[whole:]
        if py is not None and len(py):
            yield _batch(px, py, np.arange(len(py)), pin_memory)

    return in_background(produce, 4, "eval-batcher")


class DevicePrefetcher:
    """Batches moved to ``device`` one step ahead: pinned, non-blocking, on a side CUDA stream.

    The copy of batch i + 1 runs while step i computes; the compute stream waits for it
    only when it takes the batch. On a CPU device batches pass through unchanged.
    """

    def __init__(self, batches: Iterator[Batch], device: torch.device) -> None:
        self.batches, self.device = batches, device
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def _to_device(self, batch: Batch) -> Batch:
        if self.copy_stream is None:
            return batch
        with torch.cuda.stream(self.copy_stream):
            return tuple(t.pin_memory().to(self.device, non_blocking=True) if not t.is_pinned()
                         else t.to(self.device, non_blocking=True) for t in batch)

    def __iter__(self) -> Iterator[Batch]:
        upcoming = None
        for batch in self.batches:
            ready, upcoming = upcoming, self._to_device(batch)
            if ready is not None:
                yield self._take(ready)
        if upcoming is not None:
            yield self._take(upcoming)

    def _take(self, batch: Batch) -> Batch:
        if self.copy_stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self.copy_stream)
            for t in batch:
                t.record_stream(current)
        return batch

