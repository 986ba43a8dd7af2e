"""Shard sets: labelled uint8 images in the store, split into files, closed by a manifest.

A shard is an ``.npz`` holding ``labels`` (int64, N) and the images (uint8, N×C×H×W),
stored by the codec its manifest entry names (``codec``):

* ``zstd-up`` (the default): each image row minus the row above it (mod 256, PNG's "up"
  filter), the whole shard compressed as one zstd frame, in ``images_zstd`` with the
  array's ``shape``. Lossless; about 0.6–0.7 of the raw bytes for photograph-like
  images, decoded at well over 10,000 128-px images per second per core (BENCHMARKS.md).
* ``npz``: the raw array in ``images`` (entries without a ``codec`` field).

A shard set is a folder of shards plus ``manifest.json``, written last, holding the spec
that made the set, the per-class counts and each shard's size, SHA-256 and codec. Real
dataset splits and generator samples are both shard sets, so the trainer reads one format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

from harness.store import Store, decode_arrays, encode_arrays, sha256_bytes

MANIFEST = "manifest.json"
CODECS = ("zstd-up", "npz")
DEFAULT_CODEC = "zstd-up"
ZSTD_LEVEL = 1


class ShardError(RuntimeError):
    """A shard or manifest in the store is missing, truncated or corrupt."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels, minlength=num_classes).astype(int).tolist()


def encode_shard(images: np.ndarray, labels: np.ndarray, codec: str = DEFAULT_CODEC) -> bytes:
    """A shard's bytes: uint8 N×C×H×W images and their labels, by ``codec`` (one of ``CODECS``)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if codec == "npz":
        return encode_arrays(images=images, labels=labels)
    if codec == "zstd-up":
        residual = images.copy()
        residual[..., 1:, :] -= images[..., :-1, :]
        frame = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(residual.tobytes())
        return encode_arrays(images_zstd=np.frombuffer(frame, np.uint8), shape=np.asarray(images.shape),
                             labels=labels)
    raise ValueError(f"unknown shard codec {codec!r}; expected one of {CODECS}")


def decode_shard(data: bytes, codec: str = "npz") -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 N×C×H×W, writable) and labels of a shard's bytes written by ``codec``."""
    arrays = decode_arrays(data)
    if codec == "npz":
        return arrays["images"], arrays["labels"]
    if codec == "zstd-up":
        shape = tuple(int(v) for v in arrays["shape"])
        images = np.empty(shape, np.uint8)
        view, done = memoryview(images.reshape(-1)), 0
        with zstandard.ZstdDecompressor().stream_reader(memoryview(arrays["images_zstd"])) as frame:
            while done < images.size and (got := frame.readinto(view[done:])):
                done += got
            if done != images.size or frame.read(1):
                raise ValueError(f"zstd frame does not hold the {images.size} bytes of a {shape} array")
        for row in range(1, shape[-2]):
            images[..., row, :] += images[..., row - 1, :]
        return images, arrays["labels"]
    raise ValueError(f"unknown shard codec {codec!r}; expected one of {CODECS}")


def shard_entry(name: str, data: bytes, labels: np.ndarray, num_classes: int,
                codec: str = DEFAULT_CODEC) -> dict[str, Any]:
    """The manifest's record of one shard."""
    return {"name": name, "n": int(len(labels)), "bytes": len(data), "sha256": sha256_bytes(data),
            "counts": class_counts(labels, num_classes), "codec": codec}


@dataclass(frozen=True)
class ShardSet:
    """A shard set's location: a store and the folder under it."""

    store: Store
    folder: str

    @property
    def uri(self) -> str:
        return self.store.path(self.folder)

    def is_complete(self) -> bool:
        """True when the manifest exists and every shard it lists has the recorded size."""
        if not self.store.exists(self.folder, MANIFEST):
            return False
        manifest = self.manifest()
        return all(self.store.exists(self.folder, s["name"])
                   and self.store.size(self.folder, s["name"]) == s["bytes"]
                   for s in manifest["shards"])

    def manifest(self) -> dict[str, Any]:
        try:
            return self.store.read_json(self.folder, MANIFEST)
        except FileNotFoundError as err:
            raise ShardError(f"shard set {self.uri} has no {MANIFEST}: it was never completed") from err

    def write_shard(self, index: int, images: np.ndarray, labels: np.ndarray,
                    num_classes: int) -> dict[str, Any]:
        """Write one shard atomically and return its manifest entry."""
        data = encode_shard(images, labels)
        name = shard_name(index)
        self.store.write_bytes(data, self.folder, name)
        return shard_entry(name, data, labels, num_classes)

    def existing_shard_entry(self, index: int, num_classes: int) -> dict[str, Any] | None:
        """The entry of a shard left by an interrupted run, if it reads back whole."""
        name = shard_name(index)
        if not self.store.exists(self.folder, name):
            return None
        data = self.store.read_bytes(self.folder, name)
        try:
            arrays = decode_arrays(data)  # decoding every member checks each one's CRC-32
            labels = arrays["labels"]
        except Exception:  # a truncated, altered or foreign file is resampled, not trusted
            return None
        return shard_entry(name, data, labels, num_classes, "zstd-up" if "images_zstd" in arrays else "npz")

    def write_manifest(self, spec: dict[str, Any], entries: list[dict[str, Any]],
                       num_classes: int, image_shape: tuple[int, int, int]) -> dict[str, Any]:
        entries = sorted(entries, key=lambda e: e["name"])
        counts = np.sum([e["counts"] for e in entries], axis=0).astype(int).tolist()
        manifest = {"spec": spec, "num_classes": num_classes, "image_shape": list(image_shape),
                    "n": int(sum(e["n"] for e in entries)), "counts": counts, "shards": entries}
        from harness.verify import write_checked  # verify reads shard sets: imported here, not at the top

        write_checked(self.store, json.dumps(manifest, indent=2, sort_keys=True).encode(), self.folder, MANIFEST)
        return manifest

    def read_shard(self, entry: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """One shard's images and labels, checked against the manifest's checksum."""
        try:
            data = self.store.read_bytes(self.folder, entry["name"])
        except FileNotFoundError as err:
            raise ShardError(f"shard {self.uri}/{entry['name']} is missing") from err
        if sha256_bytes(data) != entry["sha256"]:
            raise ShardError(
                f"shard {self.uri}/{entry['name']} does not match the SHA-256 in its manifest; "
                f"delete the folder {self.uri} and the next run regenerates it")
        return decode_shard(data, entry.get("codec", "npz"))

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """All shards concatenated."""
        parts = [self.read_shard(e) for e in self.manifest()["shards"]]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
