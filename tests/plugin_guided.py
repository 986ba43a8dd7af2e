"""A user plugin that declares a guidance scale, named in configs as ``tests.plugin_guided:GuidedStripes``."""

from __future__ import annotations

import torch

from harness.knobs import Knob


class GuidedStripes:
    """Grey 8×8 images of class-coloured stripes; guidance extrapolates from grey towards the class pattern.

    Class ``c`` lights row ``c`` (classes 0-7) or column ``2(c - 8) + 2`` (classes 8 and up); at
    ``guidance_scale`` 1 the pattern sits faintly above the noise, larger scales make it plainer.
    """

    knobs = (Knob("guidance_scale", 1.0, 10.0, 1.0, doc="extrapolation from grey towards the class pattern"),)

    def __init__(self, num_classes: int = 10, image_size: int = 8) -> None:
        self.num_classes, self.image_size = num_classes, image_size
        self.patterns = torch.zeros(num_classes, 1, image_size, image_size)
        for c in range(num_classes):
            if c < image_size:
                self.patterns[c, 0, c, :] = 1
            else:
                self.patterns[c, 0, :, 2 * (c - image_size) + 2] = 1

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator,
               guidance_scale: float = 1.0) -> torch.Tensor:
        noise = torch.rand(len(labels), 1, self.image_size, self.image_size, generator=generator)
        images = 0.5 + guidance_scale * 0.15 * (2 * self.patterns[labels] - 1) + 0.25 * (noise - 0.5)
        return (images.clamp(0, 1) * 255).round().to(torch.uint8)
