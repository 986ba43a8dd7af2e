"""Generators that are fixed sets of samples: ``.npz`` batches and per-class image folders.

A pool is drawn without replacement across a whole sample set. Each class's images are
permuted once per sample stream (a generator at one knob setting and seed; its blocks are
the sample sets of :class:`harness.plan.SampleSet`), seeded by the stream, and the sample
at *position* p of a class (p counts that class's samples before it in the stream, see
:meth:`harness.plan.SampleSet.pool_positions`) takes image p of the permutation. So a
pool that holds at least as many images of each class as the sweep draws yields distinct
images, whichever actor draws which shard. A class that holds fewer is refused before
sampling (:func:`harness.plan.plan_cells`) unless ``params.allow_reuse`` is true; then
position p takes image ``p mod P`` of pass ``p // P``, each pass a permutation of its own,
and records carry the fraction of distinct images.

``allow_reuse`` is a param of these kinds, not a field of every generator: only a pool can
run short, and the kinds' params are checked against their registration.

Images are read only when drawn: an npz pool is memory-mapped where stored uncompressed
(``np.savez``; a compressed one is loaded), a folder pool lists its files and reads the
files of the shard being drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.data.readers import list_class_folders, load_image, open_npz_batch
from harness.generators import GeneratorError

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store


def class_positions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """For each label, how many labels of its class come before it."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=num_classes)
    positions = np.empty(len(labels), dtype=np.int64)
    positions[order] = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
    return positions


class PoolGenerator:
    """Samples of a class are images of that class from the pool, each drawn once per stream.

    ``load`` reads pool images (uint8 N×C×H×W) by index; ``labels`` are the pool's labels.
    """

    def __init__(self, name: str, labels: np.ndarray, num_classes: int, image_size: int,
                 load: Callable[[np.ndarray], np.ndarray], allow_reuse: bool) -> None:
        missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
        if missing:
            raise GeneratorError(f"generator {name!r}: holds no samples of classes {missing[:10]}"
                                 f"{' …' if len(missing) > 10 else ''}; every class needs at least one")
        self.name = name
        self.num_classes = num_classes
        self.image_size = image_size
        self.allow_reuse = allow_reuse
        self._load = load
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
        self._by_class = [order[bounds[c]:bounds[c + 1]] for c in range(num_classes)]

    def take(self, labels: np.ndarray, positions: np.ndarray, seed: int) -> torch.Tensor:
        """The images at ``positions`` of their classes' permutations in the stream ``seed``."""
        labels, positions = np.asarray(labels, dtype=np.int64), np.asarray(positions, dtype=np.int64)
        picks = np.empty(len(labels), dtype=np.int64)
        for c in np.unique(labels).tolist():
            where = np.flatnonzero(labels == c)
            pool = self._by_class[c]
            size = len(pool)
            wanted = positions[where]
            if not self.allow_reuse and wanted.max() >= size:
                raise GeneratorError(f"generator {self.name!r}: class {c} holds {size} images, but sample "
                                     f"{int(wanted.max()) + 1} of that class is asked for; "
                                     f"set params.allow_reuse: true to draw images again")
            passes = wanted // size
            for q in np.unique(passes).tolist():
                permutation = np.random.default_rng([seed, c, q]).permutation(size)
                now = passes == q
                picks[where[now]] = pool[permutation[wanted[now] % size]]
        unique, inverse = np.unique(picks, return_inverse=True)
        return torch.from_numpy(np.ascontiguousarray(self._load(unique)[inverse]))

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        """The generator contract: the call's labels drawn as a stream of their own, seeded by ``generator``."""
        y = labels.numpy()
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self.take(y, class_positions(y, self.num_classes), seed)

    def shard(self, seed: int, labels: np.ndarray, positions: np.ndarray) -> PoolShard:
        """This pool as a generator of one shard: the shard's labels at their ``positions`` in stream ``seed``."""
        return PoolShard(self, seed, np.asarray(labels), np.asarray(positions))


class PoolShard:
    """One shard of a pool's stream behind the generator contract: ``sample`` calls in order
    take the shard's labels batch by batch, each at its place in the stream."""

    def __init__(self, pool: PoolGenerator, seed: int, labels: np.ndarray, positions: np.ndarray) -> None:
        self.pool, self.seed, self.labels, self.positions = pool, seed, labels, positions
        self.num_classes, self.image_size = pool.num_classes, pool.image_size
        self.drawn = 0

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        end = self.drawn + len(labels)
        if not np.array_equal(labels.numpy(), self.labels[self.drawn:end]):
            raise GeneratorError(f"generator {self.pool.name!r}: labels {self.drawn}..{end - 1} of the shard are "
                                 f"not the ones planned for it; a pool shard is drawn in order, batch by batch")
        images = self.pool.take(self.labels[self.drawn:end], self.positions[self.drawn:end], self.seed)
        self.drawn = end
        return images


def _npz(spec: GeneratorConfig) -> tuple[np.ndarray, np.ndarray]:
    return open_npz_batch(Path(spec.params["path"]).expanduser(), f"generators ({spec.name}).params.path")


def _folder(spec: GeneratorConfig, real: RealData) -> tuple[list[Path], np.ndarray]:
    return list_class_folders(Path(spec.params["root"]).expanduser(), list(real.class_names))


def pool_sizes(spec: GeneratorConfig, real: RealData) -> np.ndarray:
    """How many images of each of the dataset's classes the pool holds (only labels and file names are read)."""
    labels = _npz(spec)[1] if spec.kind == "npz" else _folder(spec, real)[1]
    return np.bincount(labels[labels < real.num_classes], minlength=real.num_classes)


def build_npz(spec: GeneratorConfig, real: RealData, store: Store) -> PoolGenerator:
    """``params.path``: an ADM-style sample batch (arr_0 uint8 NHWC, arr_1 labels)."""
    images, labels = _npz(spec)

    def load(idx: np.ndarray) -> np.ndarray:
        return images[idx].transpose(0, 3, 1, 2)

    return PoolGenerator(spec.name, labels, real.num_classes, int(images.shape[1]), load,
                         bool(spec.params["allow_reuse"]))


def build_folder(spec: GeneratorConfig, real: RealData, store: Store) -> PoolGenerator:
    """``params.root``: one subfolder of images per class, named as the dataset's classes."""
    files, labels = _folder(spec, real)
    channels, size = real.image_shape[0], real.image_shape[1]

    def load(idx: np.ndarray) -> np.ndarray:
        return np.stack([load_image(files[i], size, channels) for i in idx])

    return PoolGenerator(spec.name, labels, real.num_classes, size, load, bool(spec.params["allow_reuse"]))
