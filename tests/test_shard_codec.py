"""Shard codecs: lossless round trips, the codec named in the manifest, old npz shards still read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.shards import CODECS, DEFAULT_CODEC, ShardSet, decode_shard, encode_shard
from harness.store import Store, encode_arrays


def smooth_images(n: int, channels: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(h), np.arange(w)) * 3
    base = ramp[None, None] + rng.integers(0, 200, (n, channels, 1, 1))
    return ((base + rng.integers(-2, 3, (n, channels, h, w))) % 256).astype(np.uint8)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("shape", [(7, 3, 16, 16), (5, 1, 9, 13), (1, 3, 1, 4), (0, 3, 8, 8)])
def test_lossless_round_trip(codec: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    for images in (rng.integers(0, 256, shape, dtype=np.uint8), smooth_images(*shape)):
        labels = rng.integers(0, 10, shape[0])
        x, y = decode_shard(encode_shard(images, labels, codec), codec)
        assert x.dtype == np.uint8 and x.flags.writeable and np.array_equal(x, images) and np.array_equal(y, labels)


def test_zstd_up_is_smaller_on_smooth_images() -> None:
    images = smooth_images(64, 3, 32, 32)
    labels = np.zeros(64, np.int64)
    assert len(encode_shard(images, labels, "zstd-up")) < 0.5 * len(encode_shard(images, labels, "npz"))


def test_manifest_names_codec_and_old_shards_still_read(tmp_path: Path) -> None:
    shards = ShardSet(Store(str(tmp_path)), "s")
    images, labels = smooth_images(6, 3, 8, 8), np.arange(6) % 3
    entry = shards.write_shard(0, images, labels, num_classes=3)
    assert entry["codec"] == DEFAULT_CODEC == "zstd-up"
    assert shards.existing_shard_entry(0, 3) == entry
    legacy = encode_arrays(images=images, labels=labels)  # a shard as written before codecs existed
    (tmp_path / "s" / "shard-00001.npz").write_bytes(legacy)
    old = shards.existing_shard_entry(1, 3)
    assert old["codec"] == "npz"
    del old["codec"]
    for e in (entry, old):
        x, y = shards.read_shard(e)
        assert np.array_equal(x, images) and np.array_equal(y, labels)


def test_unknown_codec_is_named() -> None:
    with pytest.raises(ValueError, match="unknown shard codec 'png'; expected one of"):
        encode_shard(np.zeros((1, 1, 2, 2), np.uint8), np.zeros(1), "png")
