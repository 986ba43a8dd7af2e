"""Shard sets and the store: round trip, manifest, atomic writes, corruption detected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.shards import ShardError, ShardSet
from harness.store import Store, sha256_bytes, spec_key


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8), rng.integers(0, 5, n)


def test_round_trip_and_manifest(tmp_path: Path) -> None:
    shards = ShardSet(Store(str(tmp_path)), "samples/abc")
    parts = [_images(7, 0), _images(5, 1)]
    entries = [shards.write_shard(i, x, y, num_classes=5) for i, (x, y) in enumerate(parts)]
    assert not shards.is_complete()  # no manifest yet: an unfinished set is never mistaken for a whole one
    manifest = shards.write_manifest({"kind": "test"}, entries, 5, (3, 4, 4))
    assert shards.is_complete()
    assert manifest["n"] == 12 and manifest["spec"] == {"kind": "test"}
    all_labels = np.concatenate([y for _, y in parts])
    assert manifest["counts"] == np.bincount(all_labels, minlength=5).tolist()
    for entry, (x, y) in zip(manifest["shards"], parts, strict=True):
        data = (tmp_path / "samples/abc" / entry["name"]).read_bytes()
        assert entry["sha256"] == sha256_bytes(data) and entry["bytes"] == len(data)
        rx, ry = shards.read_shard(entry)
        assert np.array_equal(rx, x) and np.array_equal(ry, y) and rx.dtype == np.uint8
    x, y = shards.read()
    assert np.array_equal(x, np.concatenate([p[0] for p in parts])) and len(y) == 12
    assert not list((tmp_path / "samples/abc").glob("*.tmp-*"))


def test_corrupt_and_missing_shards_are_named(tmp_path: Path) -> None:
    shards = ShardSet(Store(str(tmp_path)), "s")
    entry = shards.write_shard(0, *_images(4), num_classes=5)
    shards.write_manifest({}, [entry], 5, (3, 4, 4))
    path = tmp_path / "s" / entry["name"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert shards.is_complete()  # same size: only the checksum tells
    with pytest.raises(ShardError, match=r"shard .*/s/shard-00000.npz does not match the SHA-256"):
        shards.read_shard(entry)
    path.write_bytes(bytes(data[:100]))
    assert not shards.is_complete()
    assert shards.existing_shard_entry(0, 5) is None  # a truncated leftover is redone, not trusted
    path.unlink()
    with pytest.raises(ShardError, match="is missing"):
        shards.read_shard(entry)
    with pytest.raises(ShardError, match="has no manifest.json"):
        ShardSet(Store(str(tmp_path)), "never").manifest()


def test_spec_key_is_canonical() -> None:
    assert spec_key({"a": 1, "b": [1, 2]}) == spec_key({"b": [1, 2], "a": 1})
    assert spec_key({"a": 1}) != spec_key({"a": 2})
    assert len(spec_key({})) == 16


def test_store_paths_and_listing(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_json({"x": 1}, "a", "b.json")
    store.write_text("hi", "a", "c.txt")
    assert store.read_json("a", "b.json") == {"x": 1}
    assert store.list("a") == ["b.json", "c.txt"] and store.list("nope") == []
    assert store.path("a", "b.json") == f"{tmp_path}/a/b.json" and store.is_local
    assert not Store("s3://bucket/prefix").is_local
