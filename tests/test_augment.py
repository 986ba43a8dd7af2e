"""The ImageNet recipe's augmentation (random resized crop, centre-crop evaluation) and decay groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from scipy import stats
from torchvision import models
from torchvision.transforms import v2

from harness.classify.augment import (
    center_crop_resize,
    random_resized_crop,
    random_resized_crop_boxes,
    resized_crop,
)
from harness.classify.optim import param_groups

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _test_images(height: int = 300, width: int = 400) -> torch.Tensor:
    """Two uint8 images: a smooth one and a noisy one."""
    y, x = torch.linspace(0, 1, height)[:, None], torch.linspace(0, 1, width)[None, :]
    smooth = torch.stack([127 + 120 * torch.sin(8 * x + 3 * y), 127 + 120 * torch.cos(30 * x * y), 255 * x * y])
    noisy = 0.5 * smooth + 40 * torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    return torch.stack([smooth, noisy]).round().clamp(0, 255).to(torch.uint8)


def _torchvision_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                       ratio: tuple[float, float]) -> np.ndarray:
    torch.manual_seed(0)
    img = torch.zeros(1, height, width)
    return np.array([v2.RandomResizedCrop.get_params(img, list(scale), list(ratio)) for _ in range(n)])


def test_boxes_lie_in_scale_and_ratio_bounds_and_differ_per_image() -> None:
    height, width = 480, 640
    boxes = random_resized_crop_boxes(2000, height, width, generator=torch.Generator().manual_seed(0))
    assert boxes.shape == (2000, 4) and boxes.dtype == torch.int64
    top, left, h, w = boxes.T.double()
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= height).all() and (left + w <= width).all()
    # Bounds up to the rounding of h and w to whole pixels.
    area = h * w / (height * width)
    slack = (h + w + 1) / (2 * height * width)
    assert (area >= 0.08 - slack).all() and (area <= 1.0 + slack).all()
    aspect = w / h
    assert (aspect >= 3 / 4 * (1 - 1 / h) / (1 + 1 / w)).all() and (aspect <= 4 / 3 * (1 + 1 / w) / (1 - 1 / h)).all()
    assert len({tuple(b) for b in boxes.tolist()}) > 1990
    # Area uniform over [0.08, 1] (those that fit), log aspect uniform: spread over the whole range.
    assert area.min() < 0.09 and area.max() > 0.95 and aspect.min() < 0.76 and aspect.max() > 1.31


@pytest.mark.parametrize(("height", "width", "scale", "ratio"), [
    (480, 640, (0.08, 1.0), (3 / 4, 4 / 3)),
    (200, 30, (0.08, 1.0), (3 / 4, 4 / 3)),  # narrow: many attempts fail, some images fall back
])
def test_boxes_follow_torchvision_distribution(height: int, width: int, scale: tuple[float, float],
                                               ratio: tuple[float, float]) -> None:
    ours = random_resized_crop_boxes(3000, height, width, scale, ratio, torch.Generator().manual_seed(1)).numpy()
    theirs = _torchvision_boxes(3000, height, width, scale, ratio)
    for column in range(4):
        assert stats.ks_2samp(ours[:, column], theirs[:, column]).pvalue > 1e-3, column


def test_boxes_fall_back_to_a_centre_crop_as_torchvision_does() -> None:
    # No box of aspect 3..4 with area ≥ 90% fits a square image, nor one larger than the image:
    # every attempt fails.
    cases = [(64, 64, (0.9, 1.0), (3.0, 4.0)), (64, 64, (0.9, 1.0), (0.2, 0.25)), (60, 64, (1.2, 1.5), (1.0, 1.1))]
    for height, width, scale, ratio in cases:
        expected = tuple(_torchvision_boxes(1, height, width, scale, ratio)[0])
        ours = random_resized_crop_boxes(5, height, width, scale, ratio, torch.Generator().manual_seed(0))
        assert {tuple(b) for b in ours.tolist()} == {expected}
    assert expected == (0, 0, 60, 64)  # aspect inside the ratio range: the whole image
    with pytest.raises(ValueError, match=r"scale\[0\] ≤ scale\[1\]"):
        random_resized_crop_boxes(1, 8, 8, scale=(0.5, 0.1))


def test_resized_crop_is_torchvisions_bilinear_resize_of_the_box() -> None:
    images = _test_images().float()
    # Enlarging: the same bilinear samples, except in the outermost ring, where torchvision
    # repeats the box's edge pixels and the harness reads the image's pixels beyond them.
    for top, left, h, w in [(10, 20, 100, 150), (50, 60, 201, 173)]:
        ours = resized_crop(images, torch.tensor([[top, left, h, w]] * 2), 224)
        theirs = TF.resized_crop(images, top, left, h, w, [224, 224], antialias=True)
        torch.testing.assert_close(ours[..., 2:-2, 2:-2], theirs[..., 2:-2, 2:-2], atol=1e-3, rtol=0)
    whole = resized_crop(images, torch.tensor([[0, 0, 300, 400]] * 2), 512)
    torch.testing.assert_close(whole, TF.resize(images, [512, 512], antialias=True), atol=1e-3, rtol=0)
    # Shrinking: averaged samples (a box filter) against torchvision's triangle antialias filter.
    ours = resized_crop(images, torch.tensor([[0, 0, 300, 400]] * 2), 128)
    theirs = TF.resize(images, [128, 128], antialias=True)
    assert (ours[0] - theirs[0]).abs().mean() < 0.2 and (ours[0] - theirs[0]).abs().max() < 5


def test_random_resized_crop_per_image_seeded_and_in_dtype() -> None:
    images = _test_images(64, 80).repeat(4, 1, 1, 1)
    out = random_resized_crop(images, 32, generator=torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.uint8
    again = random_resized_crop(images, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, random_resized_crop(images, 32, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(out[0], out[2])  # the same image, its own box
    boxes = random_resized_crop_boxes(8, 64, 80, generator=torch.Generator().manual_seed(0))
    expected = resized_crop(images.float(), boxes, 32).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(out, expected)
    floats = random_resized_crop(images.float() / 255, 32, generator=torch.Generator().manual_seed(0))
    assert floats.dtype == torch.float32
    assert (floats * 255 - out.float()).abs().max() <= 0.5 + 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_augmentation_runs_where_the_batch_is(device: str) -> None:
    images = _test_images(64, 80).to(device)
    out = random_resized_crop(images, 48, generator=torch.Generator().manual_seed(0))
    evaluated = center_crop_resize(images, 48)
    assert out.device.type == evaluated.device.type == device
    cpu = random_resized_crop(images.cpu(), 48, generator=torch.Generator().manual_seed(0))
    assert (out.cpu().int() - cpu.int()).abs().max() <= 1
    assert (evaluated.cpu().int() - center_crop_resize(images.cpu(), 48).int()).abs().max() <= 1


@pytest.mark.parametrize("size", [224, 128])
def test_center_crop_resize_matches_torchvision(size: int) -> None:
    images = _test_images()
    resize = math.floor(size / 0.875)
    reference = v2.Compose([v2.Resize(resize), v2.CenterCrop(size)])
    ours = center_crop_resize(images, size)
    assert ours.shape == (2, 3, size, size) and ours.dtype == torch.uint8
    assert (ours.int() - reference(images).int()).abs().max() <= 1
    torch.testing.assert_close(center_crop_resize(images.float(), size), reference(images.float()))
    portrait = images.transpose(2, 3).contiguous()
    assert (center_crop_resize(portrait, size).int() - reference(portrait).int()).abs().max() <= 1
    assert resize == {224: 256, 128: 146}[size]


def test_center_crop_of_an_image_already_at_the_resize_size_is_a_plain_crop() -> None:
    images = _test_images(256, 256)
    assert torch.equal(center_crop_resize(images, 224), images[:, :, 16:240, 16:240])
    with pytest.raises(ValueError, match="crop_fraction must be at most 1"):
        center_crop_resize(images, 224, crop_fraction=1.5)


def test_param_groups_exempt_batch_norm_and_biases() -> None:
    model = models.resnet50(num_classes=10)
    groups = param_groups(model, 1e-4)
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    decay, no_decay = ({id(p) for p in g["params"]} for g in groups)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[i] for i in decay) == sorted(n for n, p in model.named_parameters() if p.ndim > 1)
    assert len(decay) == 54 and len(no_decay) == 2 * 53 + 1  # 53 conv + fc weights; 53 BN γ, β; fc bias
    assert decay | no_decay == set(names) and not decay & no_decay

    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]


def test_param_groups_shared_and_bias_only() -> None:
    shared = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared, torch.nn.LayerNorm(4))
    groups = param_groups(model, 5e-4)
    decay, no_decay = ([id(p) for p in g["params"]] for g in groups)
    # LayerNorm is not batch norm: its weight is decayed, its bias is not.
    assert decay == [id(shared.weight), id(model[3].weight)]
    assert no_decay == [id(shared.bias), id(model[3].bias)]
    only_bn = param_groups(torch.nn.BatchNorm1d(3), 1e-4)
    assert len(only_bn) == 1 and only_bn[0]["weight_decay"] == 0.0 and len(only_bn[0]["params"]) == 2
