"""Per-image training augmentation, and the evaluation crop, on whatever device the batch is on.

torchvision's ``transforms.v2`` draws one random choice for a whole batched tensor; here
every image gets its own crop offset and flip, or its own random-resized-crop box. The ImageNet
recipe of Goyal et al. (2017), which the CAS paper mirrors, trains on Inception-style random
resized crops and evaluates on a single centre crop of 0.875 of the resized image.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align

#: Attempts at a box inside the image before torchvision's RandomResizedCrop falls back to a centre crop.
RESIZED_CROP_ATTEMPTS = 10


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


def random_resized_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float] = (0.08, 1.0),
                              ratio: tuple[float, float] = (3 / 4, 4 / 3),
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """One box (top, left, h, w) per image, int64 [n, 4] on the CPU, as torchvision's
    ``RandomResizedCrop.get_params`` draws it: area a fraction ``scale`` of the image's and
    aspect w/h log-uniform in ``ratio``, up to 10 attempts at a box that fits, else a centre
    crop of the image at the nearest aspect within ``ratio``.
    """
    if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
        raise ValueError(f"random resized crop needs 0 < scale[0] ≤ scale[1] and 0 < ratio[0] ≤ ratio[1]; "
                         f"got scale={scale}, ratio={ratio}")
    shape = (n, RESIZED_CROP_ATTEMPTS)
    area = height * width * torch.empty(shape, dtype=torch.float64).uniform_(scale[0], scale[1], generator=generator)
    log_ratio = torch.empty(shape, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                                  generator=generator)
    aspect = log_ratio.exp()
    w = (area * aspect).sqrt().round().long()
    h = (area / aspect).sqrt().round().long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.long().argmax(1, keepdim=True)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    top = (torch.rand(n, dtype=torch.float64, generator=generator) * (height - h + 1)).floor().long()
    left = (torch.rand(n, dtype=torch.float64, generator=generator) * (width - w + 1)).floor().long()

    fallback_h, fallback_w = height, width
    if width / height < min(ratio):
        fallback_h = int(round(width / min(ratio)))
    elif width / height > max(ratio):
        fallback_w = int(round(height * max(ratio)))
    fallback = torch.tensor([(height - fallback_h) // 2, (width - fallback_w) // 2, fallback_h, fallback_w])
    boxes = torch.stack([top, left, h, w], dim=1)
    return torch.where(fits.any(1, keepdim=True), boxes, fallback)


def _as_input_dtype(resized: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.uint8:
        return resized.round().clamp(0, 255).to(torch.uint8)
    return resized.to(dtype)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (top, left, h, w) resized to ``size`` × ``size``, in the images' dtype.

    Bilinear, sampled where ``F.interpolate(align_corners=False)`` samples; where a box shrinks,
    each output pixel averages ceil(box / size) bilinear samples per axis (``roi_align``'s
    adaptive sampling), a box filter where torchvision's antialias uses a triangle one. Samples
    within half a pixel of the box's edge blend in the image's pixels just outside the box,
    where torchvision, which crops before it resizes, repeats the box's edge pixels.
    """
    boxes = boxes.to(images.device, torch.float32)
    rois = torch.stack([torch.arange(len(images), device=images.device, dtype=torch.float32),
                        boxes[:, 1], boxes[:, 0], boxes[:, 1] + boxes[:, 3], boxes[:, 0] + boxes[:, 2]], dim=1)
    source = images if images.is_floating_point() else images.float()
    resized = roi_align(source, rois.to(source.dtype), (size, size), spatial_scale=1.0, sampling_ratio=-1,
                        aligned=True)
    return _as_input_dtype(resized, images.dtype)


def random_resized_crop(images: torch.Tensor, size: int, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Inception-style training crop: each image its own random box (see
    :func:`random_resized_crop_boxes`), resized to ``size`` × ``size`` (see :func:`resized_crop`)."""
    n, _, height, width = images.shape
    return resized_crop(images, random_resized_crop_boxes(n, height, width, scale, ratio, generator), size)


def center_crop_resize(images: torch.Tensor, size: int, crop_fraction: float = 0.875) -> torch.Tensor:
    """Single-crop evaluation: resize the shorter side to floor(size / crop_fraction), bilinear with
    antialiasing, then take the centre ``size`` × ``size`` (for 224: resize to 256, crop 224), as
    torchvision's ``Resize`` + ``CenterCrop`` do."""
    _, _, height, width = images.shape
    short_side = math.floor(size / crop_fraction)
    if short_side < size:
        raise ValueError(f"crop_fraction must be at most 1, got {crop_fraction}")
    short, long = min(height, width), max(height, width)
    new_long = int(short_side * long / short)
    new_h, new_w = (new_long, short_side) if height > width else (short_side, new_long)
    if (new_h, new_w) != (height, width):
        source = images if images.is_floating_point() else images.float()
        resized = torch.nn.functional.interpolate(source, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                                  antialias=True)
        images = _as_input_dtype(resized, images.dtype)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return images[:, :, top:top + size, left:left + size].contiguous()
