"""DINOv2 ViT-L/14 features as dgm-eval computes them (FD_DINOv2 of Stein et al. 2023, EDM2).

dgm-eval loads ``torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')``, resizes each
PIL image to 224x224 with bicubic resampling (torchvision ``Resize`` on a PIL image, i.e.
Pillow), scales to [0, 1], normalises with the ImageNet mean and std, and takes the
model's output: the CLS token after the final layer norm (1024 numbers).

The network is timm's ``vit_large_patch14_dinov2``, built for 224x224 input, with the
official checkpoint (:data:`WEIGHTS`). The checkpoint's position embedding covers a 37x37
patch grid (518 px); at 224 px the grid is 16x16 and the torch.hub model interpolates it
on every call with ``F.interpolate(scale_factor=(16 + 0.1) / 37, mode="bicubic",
antialias=False)``. timm's own loader (and ``dynamic_img_size``) resamples by output size
with antialiasing, and transformers' ``Dinov2Model`` by output size without the 0.1
offset; both change the features (docs/METRICS.md gives the measured differences). So the
embedding is interpolated here exactly as the hub model does it, once, at load time;
with that, timm's features equal the hub model's bit for bit (float32, CPU).

Preprocessing reproduces Pillow's resampling exactly (:func:`resize_bicubic_pil`):
Pillow resizes uint8 images in two passes (horizontal, then vertical) with fixed-point
filter coefficients and rounds and clamps to uint8 after each pass; a float bicubic
resize with ``antialias=True`` differs from it by up to 23 grey levels on noisy images
(overshoot clamped between the passes), so the float shortcut is not used.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.metrics.features import exact_float32
from harness.metrics.weights import PinnedWeights, load_state_dict, resolve

FEATURE_EXTRACTOR = "dinov2-vitl14"
PREPROCESSING = (
    "uint8 RGB (grey replicated to 3 channels) -> Pillow bicubic resize to 224x224 (two uint8 passes, "
    "as torchvision Resize on PIL images in dgm-eval) -> x / 255 -> (x - ImageNet mean) / ImageNet std"
)
WEIGHTS = PinnedWeights(
    what="DINOv2 ViT-L/14",
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    filename="dinov2_vitl14_pretrain.pth",
    sha256="d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
    env="CAS_DINOV2_WEIGHTS",
)
TIMM_MODEL = "vit_large_patch14_dinov2"
INPUT_SIZE = 224
PATCH_SIZE = 14
FEATURE_DIM = 1024
HUB_INTERPOLATE_OFFSET = 0.1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIL_PRECISION_BITS = 32 - 8 - 2


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5)."""
    x = np.abs(x)
    a = -0.5
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


@lru_cache(maxsize=16)
def pil_bicubic_weights(in_size: int, out_size: int) -> torch.Tensor:
    """(out_size, in_size) float64 matrix of Pillow's fixed-point bicubic coefficients (integers, scale 2^22).

    Mirrors ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` in Pillow's ``Resample.c``:
    output pixel ``i`` centres at ``(i + 0.5) * scale``, the kernel is stretched by the
    scale when shrinking, taps are normalised to sum 1 in double, then rounded half away
    from zero to 22 fractional bits.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = _pil_bicubic((np.arange(lo, hi) - center + 0.5) * (1.0 / filterscale))
        total = float(np.cumsum(taps)[-1])  # summed in order, as the C loop does
        if total != 0.0:
            taps = taps / total
        matrix[i, lo:hi] = np.trunc(taps * (1 << PIL_PRECISION_BITS) + np.where(taps < 0, -0.5, 0.5))
    return torch.from_numpy(matrix)


def _pil_pass(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One Pillow pass along the last axis: integer sums rounded half up and clamped to uint8 (``clip8``)."""
    sums = x @ weights.to(x.device).T
    return torch.floor((sums + (1 << (PIL_PRECISION_BITS - 1))) / (1 << PIL_PRECISION_BITS)).clamp_(0, 255)


def resize_bicubic_pil(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (N, C, H, W) resized to (N, C, size, size) exactly as Pillow's ``resize(BICUBIC)``.

    The sums are float64 on the images' device: uint8 pixels times 22-bit integer
    coefficients stay below 2^53, so every sum is exact and the result is bit-identical to
    Pillow's on any device. An axis already of the target size is not resampled (Pillow
    skips it too).
    """
    if images.shape[-2:] == (size, size):
        return images
    x = images.to(torch.float64)
    if x.shape[-1] != size:
        x = _pil_pass(x, pil_bicubic_weights(x.shape[-1], size))
    if x.shape[-2] != size:
        x = _pil_pass(x.transpose(-1, -2), pil_bicubic_weights(x.shape[-2], size)).transpose(-1, -2)
    return x.to(torch.uint8)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """Map a uint8 (N, 1 or 3, H, W) batch to the network's float32 input (see :data:`PREPROCESSING`)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a uint8 tensor of shape (N, 3, H, W) or (N, 1, H, W), got "
                         f"{images.dtype} of shape {tuple(images.shape)}")
    x = resize_bicubic_pil(images.expand(-1, 3, -1, -1)).to(torch.float32).div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def hub_pos_embed(pos_embed: torch.Tensor, grid: int, offset: float = HUB_INTERPOLATE_OFFSET) -> torch.Tensor:
    """The official checkpoint's (1, 1 + M*M, D) position embedding interpolated to a grid x grid patch
    grid as ``DinoVisionTransformer.interpolate_pos_encoding`` does it (bicubic, scale (grid + 0.1) / M,
    no antialias)."""
    cls_embed, patch_embed = pos_embed[:, :1], pos_embed[:, 1:]
    side = math.isqrt(patch_embed.shape[1])
    dim = patch_embed.shape[-1]
    scale = (grid + offset) / side
    patch_embed = F.interpolate(patch_embed.float().reshape(1, side, side, dim).permute(0, 3, 1, 2),
                                scale_factor=(scale, scale), mode="bicubic", antialias=False)
    if patch_embed.shape[-2:] != (grid, grid):
        raise ValueError(f"interpolating a {side}x{side} position embedding gave {tuple(patch_embed.shape[-2:])}, "
                         f"expected ({grid}, {grid})")
    return torch.cat([cls_embed, patch_embed.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)], dim=1)


def load_official_weights(network: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a checkpoint in the official DINOv2 layout into a timm ViT built for :data:`INPUT_SIZE`.

    The position embedding is interpolated as the hub model does it; timm's own checkpoint
    filter then drops ``mask_token`` (used in training only) and renames nothing else for
    ViT-L/14. Every tensor must be used (strict load); the checkpoint's tensors replace the
    network's (``assign``), so a network built on the meta device needs no initialisation.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = dict(state)
    if "pos_embed" not in state or "mask_token" not in state:
        raise ValueError(f"{source} is not an official DINOv2 checkpoint: it lacks pos_embed or mask_token")
    state["pos_embed"] = hub_pos_embed(state["pos_embed"], INPUT_SIZE // PATCH_SIZE)
    try:
        network.load_state_dict(checkpoint_filter_fn(state, network), strict=True, assign=True)
    except RuntimeError as e:
        raise ValueError(f"{source} does not fit {TIMM_MODEL} at {INPUT_SIZE} px: {e}") from e


def dinov2_vit(weights: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None,
               **architecture: int) -> nn.Module:
    """timm's DINOv2 ViT-L/14 for 224x224 input, in eval mode with gradients off.

    ``weights``: None (``$CAS_DINOV2_WEIGHTS`` if set, else the official file downloaded
    once into ``cache_dir``), a path to the official file, or ``"random"`` (deterministic
    random weights, nothing downloaded). ``architecture`` overrides timm's ViT-L settings
    (e.g. ``depth=2, embed_dim=64, num_heads=2``) and is allowed with random weights only.
    """
    import timm

    if architecture and weights != "random":
        raise ValueError(f"architecture overrides {sorted(architecture)} need weights='random'; the official "
                         f"checkpoint is ViT-L/14")
    path = None if weights == "random" else resolve(WEIGHTS, weights, cache_dir)
    settings = {"img_size": INPUT_SIZE, "num_classes": 0, "init_values": 1.0, **architecture}
    with torch.random.fork_rng(devices=[]), torch.device("cpu" if path is None else "meta"):
        torch.manual_seed(0)
        network = timm.create_model(TIMM_MODEL, pretrained=False, **settings)
    if path is not None:
        load_official_weights(network, load_state_dict(WEIGHTS, path), f"DINOv2 weights file {path}")
    return network.eval().requires_grad_(False)


class DINOv2Extractor(nn.Module):
    """uint8 images -> {"features": (B, 1024)}, the DINOv2 ViT-L/14 CLS token of dgm-eval's FD_DINOv2.

    ``weights``, ``cache_dir`` and ``architecture`` are passed to :func:`dinov2_vit`. With
    random weights :attr:`weights_sha256` is None, so no result claims the official
    network. Features are computed in IEEE float32 (TF32 and autocast off). Move it to the
    extraction device with ``.to(device)``.
    """

    provides = ("features",)
    name = FEATURE_EXTRACTOR
    preprocessing = PREPROCESSING
    weights_sha256: str | None = WEIGHTS.sha256

    def __init__(self, weights: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, **architecture: int) -> None:
        super().__init__()
        self.network = dinov2_vit(weights, cache_dir, **architecture)
        if weights == "random":
            self.weights_sha256 = None
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with exact_float32(), torch.autocast(images.device.type, enabled=False):
            tokens = self.network.forward_features(preprocess(images))
        return {"features": tokens[:, 0]}
