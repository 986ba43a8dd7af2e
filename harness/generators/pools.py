"""Generators that are fixed sets of samples: ``.npz`` batches and per-class image folders.

Sampling draws, for each requested class, distinct images of that class from the pool
(cycling only when a call asks for more than the pool holds).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.data.readers import list_class_folders, load_image, read_npz_batch
from harness.generators import GeneratorError

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store


class PoolGenerator:
    """Samples of a class are drawn from the pool's images of that class."""

    def __init__(self, name: str, images: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
        if missing:
            raise GeneratorError(f"generator {name!r}: holds no samples of classes {missing[:10]}"
                                 f"{' …' if len(missing) > 10 else ''}; every class needs at least one")
        self.images = torch.from_numpy(images)
        self.num_classes = num_classes
        self.image_size = int(images.shape[-1])
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
        self._by_class = [torch.from_numpy(order[bounds[c]:bounds[c + 1]]) for c in range(num_classes)]

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        picks = torch.empty(len(labels), dtype=torch.long)
        for c in labels.unique().tolist():
            where = (labels == c).nonzero().flatten()
            pool = self._by_class[c]
            draws = torch.cat([pool[torch.randperm(len(pool), generator=generator)]
                               for _ in range(-(-len(where) // len(pool)))])
            picks[where] = draws[:len(where)]
        return self.images[picks]


def build_npz(spec: GeneratorConfig, real: RealData, store: Store) -> PoolGenerator:
    """``params.path``: an ADM-style sample batch (arr_0 uint8 NHWC, arr_1 labels)."""
    if set(spec.params) != {"path"}:
        raise GeneratorError(f"generator {spec.name!r}: kind npz takes exactly params.path, got {sorted(spec.params)}")
    images, labels = read_npz_batch(Path(spec.params["path"]), f"generators ({spec.name}).params.path")
    return PoolGenerator(spec.name, images, labels, real.num_classes)


def build_folder(spec: GeneratorConfig, real: RealData, store: Store) -> PoolGenerator:
    """``params.root``: one subfolder of images per class, named as the dataset's classes."""
    if set(spec.params) != {"root"}:
        raise GeneratorError(f"generator {spec.name!r}: kind folder takes exactly params.root, "
                             f"got {sorted(spec.params)}")
    root = Path(spec.params["root"]).expanduser()
    files, labels = list_class_folders(root, list(real.class_names))
    size, channels = real.image_shape[1], real.image_shape[0]
    images = np.stack([load_image(f, size, channels) for f in files])
    return PoolGenerator(spec.name, images, labels, real.num_classes)
