"""A user plugin generator, named in configs as ``tests.plugin_generator:StripeGenerator``."""

from __future__ import annotations

import torch


class StripeGenerator:
    """Class c is a horizontal stripe at row c; ``broken`` returns floats to break the contract."""

    def __init__(self, num_classes: int = 10, image_size: int = 8, broken: bool = False) -> None:
        self.num_classes, self.image_size, self.broken = num_classes, image_size, broken

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        images = torch.zeros(len(labels), 1, self.image_size, self.image_size, dtype=torch.uint8)
        images[torch.arange(len(labels)), 0, labels % self.image_size] = 255
        return images.float() if self.broken else images


class WnidOrdered(StripeGenerator):
    """A plugin that declares ImageNet's sorted-wnid class order, as an ImageNet model would."""

    class_order = "imagenet-wnid"
