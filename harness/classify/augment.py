"""Per-image training augmentation on whatever device the batch is on.

torchvision's ``transforms.v2`` draws one random choice for a whole batched tensor; here
every image gets its own crop offset and flip.
"""

from __future__ import annotations

import torch


def random_crop_flip(images: torch.Tensor, pad: int, flip: bool,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``pad``, crop back at a random offset per image, flip half at random.

    Random numbers are drawn on the generator's device (a CUDA generator keeps the step free
    of host-to-device copies).
    """
    n, _, h, w = images.shape
    dev = images.device
    draw_on = generator.device if generator is not None else torch.device("cpu")
    if pad > 0:
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=draw_on).to(dev)
        dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=draw_on).to(dev)
        rows = (dy + torch.arange(h, device=dev).view(1, h, 1)).expand(n, h, w)
        cols = (dx + torch.arange(w, device=dev).view(1, 1, w)).expand(n, h, w)
        batch = torch.arange(n, device=dev).view(n, 1, 1).expand(n, h, w)
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(n, generator=generator, device=draw_on) < 0.5).to(dev)
        images = torch.where(mask.view(n, 1, 1, 1), images.flip(3), images)
    return images.contiguous()
