"""A plugin generator that never produces one class: named in configs as
``tests.plugin_missing_class:MissingClassGenerator``."""

from __future__ import annotations

import numpy as np
import torch

from harness.config import DatasetConfig
from harness.data import read_splits


class MissingClassGenerator:
    """Returns real digits from the train split (a memoriser), except that class ``missing`` gets images of
    class ``instead``: a classifier trained on its samples never sees a real ``missing``, so scores 0% on it."""

    def __init__(self, missing: int = 3, instead: int = 4) -> None:
        train = read_splits(DatasetConfig(kind="digits")).train
        images = train.load(np.arange(len(train.labels)))
        self.by_class = [torch.from_numpy(images[train.labels == c]) for c in range(10)]
        self.num_classes, self.image_size = 10, images.shape[-1]
        self.missing, self.instead = missing, instead

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        shown = torch.where(labels == self.missing, self.instead, labels)
        out = torch.empty(len(labels), 1, self.image_size, self.image_size, dtype=torch.uint8)
        for c in shown.unique().tolist():
            where = (shown == c).nonzero().flatten()
            pool = self.by_class[c]
            out[where] = pool[torch.randint(len(pool), (len(where),), generator=generator)]
        return out
