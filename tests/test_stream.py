"""Streaming shards: each image once per epoch across workers, seeded order, equal steps,
NAS fractions per class, bounded memory, evaluation parts, S3, the device prefetcher."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.classify.stream import DevicePrefetcher, ShardPiece, ShardStream, eval_batches, shard_pieces
from harness.shards import ShardError, ShardSet
from harness.store import Store

NUM_CLASSES = 5


def write_set(store: Store, folder: str, n: int, shard_size: int, source: int = 0, seed: int = 0) -> ShardSet:
    """``n`` labelled 3×4×4 images whose first pixels spell their index and ``source``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    ids = np.arange(n)
    images[:, 0, 0, 0], images[:, 0, 0, 1], images[:, 0, 0, 2] = ids % 256, ids // 256 % 256, ids // 65536
    images[:, 1, 0, 0] = source
    labels = rng.integers(0, NUM_CLASSES, n)
    shards = ShardSet(store, folder)
    entries = [shards.write_shard(i, images[s:s + shard_size], labels[s:s + shard_size], NUM_CLASSES)
               for i, s in enumerate(range(0, n, shard_size))]
    shards.write_manifest({"test": folder}, entries, NUM_CLASSES, (3, 4, 4))
    return shards


def ids_of(images: torch.Tensor) -> list[int]:
    x = images.numpy().astype(np.int64)
    return (x[:, 1, 0, 0] * 2**24 + x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1] + 65536 * x[:, 0, 0, 2]).tolist()


def run_epoch(pieces: list[ShardPiece], world: int, epoch: int, batch: int = 10, seed: int = 0,
              **options) -> list[list[int]]:
    """Each worker's image ids in the order its stream yields them."""
    seen = []
    for rank in range(world):
        stream = ShardStream(pieces, batch, rank, world, seed, **options)
        batches = list(stream.epoch(epoch))
        assert len(batches) == stream.steps_per_epoch
        assert all(len(x) == len(y) == stream.batch_size and x.dtype == torch.uint8 for x, y in batches)
        seen.append([i for x, _ in batches for i in ids_of(x)])
    return seen


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(str(tmp_path_factory.mktemp("stream")))


def test_each_image_once_per_epoch_and_equal_steps(store: Store) -> None:
    n, world, batch = 1000, 3, 10
    pieces = shard_pieces([(write_set(store, "a", n, 64), 1.0)], seed=0)
    assert [p.n for p in pieces] == [64] * 15 + [40]
    stream = ShardStream(pieces, batch, 0, world, seed=7)
    assert stream.steps_per_epoch == 33 and stream.images_per_epoch == 990
    epochs = [run_epoch(pieces, world, e, batch, seed=7) for e in range(3)]
    for seen in epochs:
        flat = [i for worker in seen for i in worker]
        assert len(flat) == len(set(flat)) == 990  # no image twice; only the equal-steps truncation is missing
        assert n - len(flat) < world * (batch + 1)
    assert epochs[0] != epochs[1] != epochs[2]
    assert {frozenset(w) for w in epochs[0]} != {frozenset(w) for w in epochs[1]}  # shards dealt anew
    assert run_epoch(pieces, world, 1, batch, seed=7) == epochs[1]  # deterministic for a seed
    assert run_epoch(pieces, world, 1, batch, seed=8) != epochs[1]
    left_out = [set(range(n)) - {i for w in seen for i in w} for seen in epochs]
    assert left_out[0] != left_out[1]  # a different few are truncated each epoch


def test_shuffle_buffer_mixes_shards(store: Store) -> None:
    pieces = shard_pieces([(write_set(store, "mix", 400, 50), 1.0)], seed=0)
    first = run_epoch(pieces, 1, 0, batch=10)[0]
    shard_of = [i // 50 for i in first]
    for start in range(0, 400 - 100, 100):  # every stretch of 10 batches draws on at least two shards
        assert len(set(shard_of[start:start + 100])) >= 2
    assert sum(a + 1 == b for a, b in zip(first, first[1:], strict=False)) < 20  # no runs in shard order


@pytest.mark.parametrize(("n", "shard_size", "world", "batch"), [(100, 60, 4, 8), (37, 100, 2, 64), (500, 7, 5, 9)])
def test_equal_steps_for_any_shape(store: Store, n: int, shard_size: int, world: int, batch: int) -> None:
    pieces = shard_pieces([(write_set(store, f"shape-{n}-{shard_size}", n, shard_size), 1.0)], seed=0)
    seen = run_epoch(pieces, world, 0, batch)
    assert len({len(w) for w in seen}) == 1
    flat = [i for w in seen for i in w]
    assert len(set(flat)) == len(flat) and n - len(flat) < world * (min(batch, n // world) + 1)


def test_nas_fraction_per_class(store: Store) -> None:
    real = write_set(store, "real", 300, 64, source=0, seed=1)
    samples = write_set(store, "samples", 900, 100, source=1, seed=2)
    pieces = shard_pieces([(real, 1.0), (samples, 0.3)], seed=3)
    counts = np.array(samples.manifest()["counts"])
    wanted = [round(0.3 * c) for c in counts]
    assert np.sum([p.keep for p in pieces if p.shards == samples], axis=0).tolist() == wanted
    labels_by_source: dict[int, Counter] = {0: Counter(), 1: Counter()}
    kept_ids = set()
    for rank in range(2):
        for x, y in eval_batches(pieces, 32, rank, 2):
            for i, label in zip(ids_of(x), y.tolist(), strict=True):
                labels_by_source[i >> 24][label] += 1
                kept_ids.add(i)
    assert [labels_by_source[1][c] for c in range(NUM_CLASSES)] == wanted
    assert [labels_by_source[0][c] for c in range(NUM_CLASSES)] == real.manifest()["counts"]
    for epoch in range(2):  # one fixed subset for every epoch and worker, mixed with the real shards
        seen = [i for w in run_epoch(pieces, 2, epoch, batch=16) for i in w]
        assert set(seen) <= kept_ids and len(kept_ids) - len(seen) < 2 * 17
    again = shard_pieces([(real, 1.0), (samples, 0.3)], seed=3)
    assert all(np.array_equal(a.read()[0], b.read()[0]) for a, b in zip(pieces, again, strict=True))


def test_bounded_shards_held(store: Store) -> None:
    size, read_ahead, buffer_shards = 50, 2, 2
    pieces = shard_pieces([(write_set(store, "many", 40 * size, size), 1.0)], seed=0)
    counts = {"read": 0, "yielded": 0, "peak": 0}
    lock = threading.Lock()

    def counting_read(piece: ShardPiece) -> tuple[np.ndarray, np.ndarray]:
        x, y = piece.read()
        with lock:
            counts["read"] += len(y)
            counts["peak"] = max(counts["peak"], counts["read"] - counts["yielded"])
        return x, y

    stream = ShardStream(pieces, 16, 0, 1, 0, read_ahead=read_ahead, buffer_shards=buffer_shards,
                         read=counting_read)
    for x, _ in stream.epoch(0):
        with lock:
            counts["yielded"] += len(x)
    assert counts["yielded"] == stream.images_per_epoch == 40 * size // 16 * 16
    assert counts["peak"] <= (read_ahead + buffer_shards + 2) * size < 40 * size


def test_eval_parts_are_disjoint_complete_and_in_order(store: Store) -> None:
    pieces = shard_pieces([(write_set(store, "val", 203, 40), 1.0)], seed=0)
    parts = []
    for rank in range(3):
        batches = list(eval_batches(pieces, 16, rank, 3))
        assert all(len(x) == 16 for x, _ in batches[:-1]) and 0 < len(batches[-1][0]) <= 16
        parts.append([i for x, _ in batches for i in ids_of(x)])
    assert [i for p in parts for i in p] == list(range(203))
    assert [len(p) for p in parts] == [67, 68, 68]


def test_reader_errors_reach_the_consumer_and_early_stop_ends_threads(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    shards = write_set(store, "bad", 200, 50)
    pieces = shard_pieces([(shards, 1.0)], seed=0)
    before = threading.active_count()
    for _ in zip(range(2), ShardStream(pieces, 10, 0, 1, 0).epoch(0), strict=False):
        pass
    assert threading.active_count() == before
    (tmp_path / "bad" / "shard-00002.npz").write_bytes(b"not a shard")
    with pytest.raises(ShardError, match=r"bad/shard-00002.npz does not match the SHA-256"):
        list(ShardStream(pieces, 10, 0, 1, 0).epoch(0))
    assert threading.active_count() == before
    with pytest.raises(ValueError, match="fewer than the 300 workers"):
        ShardStream(pieces, 10, 0, 300, 0)


def test_device_prefetcher_passes_through_on_cpu() -> None:
    batches = [(torch.full((2, 1, 2, 2), i, dtype=torch.uint8), torch.tensor([i, i])) for i in range(5)]
    out = list(DevicePrefetcher(iter(batches), torch.device("cpu")))
    assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(out, batches, strict=True))
    assert list(DevicePrefetcher(iter([]), torch.device("cpu"))) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_prefetcher_copies_to_cuda() -> None:
    batches = [(torch.full((4, 3, 8, 8), i, dtype=torch.uint8), torch.tensor([i] * 4)) for i in range(5)]
    out = list(DevicePrefetcher(iter(batches), torch.device("cuda")))
    assert [int(x[0, 0, 0, 0]) for x, _ in out] == list(range(5)) and out[0][0].is_cuda


def test_stream_over_s3() -> None:
    from tests.sweep_support import BUCKET, local_s3

    with local_s3():
        store = Store(f"s3://{BUCKET}/stream")
        pieces = shard_pieces([(write_set(store, "set", 300, 64), 1.0), (write_set(store, "nas", 200, 64, 1), 0.5)],
                              seed=0)
        seen = run_epoch(pieces, 2, 0, batch=20)
        flat = [i for w in seen for i in w]
        assert len(flat) == len(set(flat)) == 2 * (400 // 2 // 20) * 20
