"""The FID Inception-v3: PyTorch port of TensorFlow's 2015-12-05 Inception graph.

This is the network behind the published FID, KID, IS and precision/recall numbers
(TTUR's TF FID, OpenAI's improved-GAN IS and ADM evaluators, pytorch-fid,
torch-fidelity, torchmetrics). It differs from torchvision's Inception-v3 in its
weights, in having 1008 classes, and in three pooling details of the TF graph:
average pools that exclude the zero padding (Mixed_5b-d, 6b-e, 7b) and a max pool
in the pooling branch of Mixed_7c.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` from pytorch-fid's release, in
the state-dict layout that pytorch-fid and torch-fidelity load. Its published
SHA-256 is pinned in :data:`WEIGHTS` (see :mod:`harness.metrics.weights`); the
``6726825d`` in the file name is its first eight hex digits (torch.hub's naming
convention). Every file used is checked against it, so a result labelled
:data:`FEATURE_EXTRACTOR` always comes from these weights.

Preprocessing (:data:`PREPROCESSING`) follows the TF graph rather than
pytorch-fid: the graph resizes with TF1's ``ResizeBilinear`` (align_corners=False,
no half-pixel centres: output pixel ``i`` samples source coordinate
``i * in / out``) and normalises with ``(x - 128) / 128``; torch-fidelity and
torchmetrics reproduce exactly this. pytorch-fid instead resizes with
``F.interpolate(bilinear, align_corners=False)``, which samples at
``(i + 0.5) * in / out - 0.5``, and normalises with ``2 * x / 255 - 1``. At
299x299 input both resizes are the identity and only the normalisation differs
(by under 0.4 % of a grey level).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

from harness.metrics.weights import PinnedWeights, load_state_dict, resolve

FEATURE_EXTRACTOR = "fid-inception-v3-tf-2015-12-05"
PREPROCESSING = (
    "uint8 RGB (grey replicated to 3 channels) -> float32 -> TF1 bilinear resize to "
    "299x299 (align_corners=False, half_pixel_centers=False) -> (x - 128) / 128"
)
WEIGHTS = PinnedWeights(
    what="Inception",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    filename="pt_inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    env="CAS_INCEPTION_WEIGHTS",
)
INPUT_SIZE = 299
POOL3_DIM = 2048
NUM_LOGITS = 1008


def resize_bilinear_tf1(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a float (N, C, H, W) batch exactly like TF1 ``tf.image.resize_bilinear``.

    Output row ``i`` reads source coordinate ``y = i * (H / out_h)`` in float32,
    interpolating between rows ``floor(y)`` and ``min(ceil(y), H - 1)``; likewise
    for columns. This is the resize inside the 2015-12-05 graph, so features
    match the TF reference for inputs of any size.
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float (N, C, H, W) tensor, got {images.dtype} of shape "
            f"{tuple(images.shape)}"
        )
    out_h, out_w = (size, size) if isinstance(size, int) else size
    y_lo, y_hi, y_frac = _tf1_source_coords(images.shape[-2], out_h, images.device)
    x_lo, x_hi, x_frac = _tf1_source_coords(images.shape[-1], out_w, images.device)
    rows_lo = images[..., y_lo, :]
    rows_hi = images[..., y_hi, :]
    top = rows_lo[..., x_lo] + (rows_lo[..., x_hi] - rows_lo[..., x_lo]) * x_frac
    bottom = rows_hi[..., x_lo] + (rows_hi[..., x_hi] - rows_hi[..., x_lo]) * x_frac
    return top + (bottom - top) * y_frac[:, None]


def _tf1_source_coords(
    in_size: int, out_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    scale = torch.tensor(in_size / out_size, dtype=torch.float32, device=device)
    coords = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    lo = coords.floor()
    hi = coords.ceil().clamp(max=in_size - 1)
    return lo.long(), hi.long(), coords - lo


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Map a uint8 (N, 1 or 3, H, W) batch to the network's float32 input (see PREPROCESSING)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            "images must be a uint8 tensor of shape (N, 3, H, W) or (N, 1, H, W), got "
            f"{images.dtype} of shape {tuple(images.shape)}"
        )
    x = images.to(torch.float32).expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_bilinear_tf1(x, INPUT_SIZE)
    return (x - 128) / 128


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TF's 3x3 SAME average pool: padding is excluded from the mean."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _same_max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class _InceptionA(tv_inception.InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_tf_avg_pool(x))]


class _InceptionC(tv_inception.InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for conv in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = conv(branch7x7dbl)
        return [self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_tf_avg_pool(x))]


class _InceptionE(tv_inception.InceptionE):
    """Mixed_7b (TF average pool) or Mixed_7c (max pool, as in the TF graph)."""

    def __init__(self, in_channels: int, pool_max: bool) -> None:
        super().__init__(in_channels)
        self._pool = _same_max_pool if pool_max else _tf_avg_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        return [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(self._pool(x))]


class FIDInceptionV3(nn.Module):
    """The 2015-12-05 Inception graph; ``forward(x) -> (pool3, logits)``.

    ``x`` is a float32 (N, 3, 299, 299) batch in [-1, 1] (see :func:`preprocess`).
    ``pool3`` (N, 2048) is the final average pool, the FID/KID/precision-recall
    feature. ``logits`` (N, 1008) are ``pool3 @ fc.weight.T`` over all 1008
    outputs *without* the fc bias, which is what the original IS code
    (Salimans et al.), ADM's evaluator and torch-fidelity ("logits_unbiased")
    feed to the softmax. Module names match the weights file.
    """

    def __init__(self) -> None:
        super().__init__()
        conv = tv_inception.BasicConv2d
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = _InceptionA(192, pool_features=32)
        self.Mixed_5c = _InceptionA(256, pool_features=64)
        self.Mixed_5d = _InceptionA(288, pool_features=64)
        self.Mixed_6a = tv_inception.InceptionB(288)
        self.Mixed_6b = _InceptionC(768, channels_7x7=128)
        self.Mixed_6c = _InceptionC(768, channels_7x7=160)
        self.Mixed_6d = _InceptionC(768, channels_7x7=160)
        self.Mixed_6e = _InceptionC(768, channels_7x7=192)
        self.Mixed_7a = tv_inception.InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, pool_max=False)
        self.Mixed_7c = _InceptionE(2048, pool_max=True)
        self.fc = nn.Linear(POOL3_DIM, NUM_LOGITS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"FIDInceptionV3 expects a (N, 3, {INPUT_SIZE}, {INPUT_SIZE}) batch, got shape "
                f"{tuple(x.shape)}; use harness.metrics.inception.preprocess on uint8 images"
            )
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        pool3 = x.mean(dim=(2, 3))
        return pool3, F.linear(pool3, self.fc.weight)


def fid_inception_v3(
    weights: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> FIDInceptionV3:
    """Build the FID Inception in eval mode with gradients off.

    ``weights``:
      * ``None``: the file named by ``$CAS_INCEPTION_WEIGHTS`` if set, else the
        standard file, downloaded once into ``cache_dir`` (default
        :func:`harness.metrics.weights.default_cache_dir`);
      * a path: that local file;
      * ``"random"``: deterministic random weights (fixed seed, He-scaled so
        activations stay O(1)), for tests and timing; nothing is downloaded.

    Every weights file must match :data:`WEIGHTS` (its SHA-256), and is read with
    ``torch.load(..., weights_only=True)``.
    """
    net = FIDInceptionV3()
    if weights == "random":
        _init_random(net)
    else:
        path = resolve(WEIGHTS, weights, cache_dir)
        _load_weights(net, load_state_dict(WEIGHTS, path), path)
    return net.eval().requires_grad_(False)


def _load_weights(net: FIDInceptionV3, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ValueError(f"Inception weights file {path} has mismatched tensor shapes: {e}") from e
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"Inception weights file {path} does not have the FID Inception layout: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )


def _init_random(net: FIDInceptionV3, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=gen)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=gen)
                module.bias.normal_(0.0, 0.1, generator=gen)
                module.running_mean.normal_(0.0, 0.1, generator=gen)
                module.running_var.uniform_(0.5, 1.5, generator=gen)
        net.fc.weight.normal_(0.0, 1.0 / math.sqrt(POOL3_DIM), generator=gen)
        net.fc.bias.normal_(0.0, 0.1, generator=gen)
