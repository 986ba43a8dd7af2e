"""Synthetic labelled images for the benchmarks, written as shard sets (no dataset needed).

Images are smooth random colour fields (random 8×8 fields upsampled bicubically) plus
Gaussian pixel noise of σ = 4: photograph-like for the codec, cheap to make in bulk.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.shards import ShardSet


def synthetic_images(n: int, channels: int, size: int, seed: int) -> np.ndarray:
    """uint8 N×C×H×W images: smooth fields plus noise, from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    fields = torch.randn(n, channels, 8, 8, generator=g) * 50 + 128
    smooth = torch.nn.functional.interpolate(fields, size=(size, size), mode="bicubic", align_corners=False)
    noisy = smooth + 4 * torch.randn(smooth.shape, generator=g)
    return noisy.round().clamp(0, 255).to(torch.uint8).numpy()


def write_synthetic_set(shards: ShardSet, n: int, channels: int, size: int, num_classes: int,
                        shard_size: int, seed: int = 0) -> dict:
    """A complete shard set of ``n`` synthetic images, made and written one shard at a time."""
    entries = []
    for index, start in enumerate(range(0, n, shard_size)):
        count = min(shard_size, n - start)
        labels = np.random.default_rng([seed, index]).integers(0, num_classes, count)
        entries.append(shards.write_shard(index, synthetic_images(count, channels, size, seed * 100_003 + index),
                                          labels, num_classes))
    return shards.write_manifest({"synthetic": n, "seed": seed}, entries, num_classes, (channels, size, size))
