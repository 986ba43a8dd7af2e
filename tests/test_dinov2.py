"""DINOv2 extractor: Pillow-exact preprocessing, the hub model's position embedding, batch-size invariance.

Golden values come from the official code (facebookresearch/dinov2 at b8931f7, the code
torch.hub loads) run on the same seeded weights and images, with dgm-eval's transform.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision.transforms as TF

from harness.metrics.dinov2 import (
    FEATURE_DIM,
    TIMM_MODEL,
    WEIGHTS,
    DINOv2Extractor,
    dinov2_vit,
    hub_pos_embed,
    load_official_weights,
    preprocess,
    resize_bicubic_pil,
)

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}
# facebookresearch/dinov2 DinoVisionTransformer (img_size 518, patch 14, the tiny sizes above, hub defaults
# init_values=1, interpolate_offset=0.1, no antialias) loaded with seeded_official_state(), on the
# dgm-eval-transformed images of golden_images(): features[:, ::8].
HUB_FEATURES = [
    [-0.478146, -1.094011, 1.758946, 1.19791, 0.639646, 0.180558, 1.316263, 0.576523],
    [-0.4664, -1.155352, 1.762415, 1.194258, 0.652604, 0.180803, 1.323952, 0.57845],
    [-0.486879, -1.088493, 1.767978, 1.199819, 0.651757, 0.184495, 1.322518, 0.573349],
]
# The same model's interpolate_pos_encoding at 224 px: sum, and entries [1, :3] and [256, :3].
HUB_POS_SUM = -105.07881164550781
HUB_POS_ROWS = {1: [-1.2435284852981567, -0.2721250653266907, -0.1888268142938614],
                256: [-0.25267237424850464, -0.43706944584846497, 0.252454549074173]}
# The official ViT-L/14 (dinov2.models.vision_transformer.vit_large, img_size 518): parameter count,
# and SHA-256 of its sorted state-dict keys joined by newlines.
HUB_L14_PARAMS = 304_368_640
HUB_L14_KEYS_SHA256 = "0338f9a0605886a995d62422185dcf4e5f1b5f450c1d025cec34c1a100b8da8d"


def dgm_eval_transform(image: PIL.Image.Image) -> torch.Tensor:
    """dgm-eval's DINOv2Encoder.transform (clean_resize=False) on an RGB PIL image."""
    x = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])(image)
    return TF.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))(x)


def to_pil(image: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB")


def made_images(height: int, width: int, channels: int = 3, n: int = 2) -> torch.Tensor:
    """Uniform noise (bicubic overshoot is clamped between Pillow's passes) and a smooth pattern."""
    noise = torch.randint(0, 256, (n - 1, channels, height, width), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(height * 1000 + width))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    smooth = torch.stack([127.5 + 127.5 * torch.sin(6 * xx + c) * torch.cos(5 * yy - c) for c in range(channels)])
    return torch.cat([noise, smooth.round().to(torch.uint8)[None]])


def golden_images() -> torch.Tensor:
    return torch.randint(0, 256, (3, 3, 40, 56), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def seeded_official_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official checkpoint's layout, drawn in sorted key order (so any code can redo it)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = shapes[key]
        x = torch.randn(shape, generator=gen)
        if key in ("pos_embed", "cls_token", "mask_token"):
            state[key] = x
        elif len(shape) >= 2:
            state[key] = x / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(("norm1.weight", "norm2.weight")) or key == "norm.weight":
            state[key] = 1 + 0.1 * x
        else:
            state[key] = 0.1 * x
    return state


def tiny_official_state() -> dict[str, torch.Tensor]:
    """The tiny model's official layout: timm's keys at 518 px (37x37 grid) plus mask_token."""
    import timm

    with torch.device("meta"):
        net = timm.create_model(TIMM_MODEL, img_size=518, num_classes=0, **TINY)
    shapes = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    return seeded_official_state({**shapes, "mask_token": (1, TINY["embed_dim"])})


@pytest.mark.parametrize(("height", "width", "channels"), [
    (8, 8, 3), (32, 32, 3), (64, 64, 3), (100, 100, 3), (128, 128, 3), (224, 224, 3), (256, 256, 3),
    (299, 299, 3), (512, 512, 3), (48, 80, 3), (64, 64, 1),
])
def test_resize_equals_pillow(height: int, width: int, channels: int) -> None:
    images = made_images(height, width, channels)
    ours = resize_bicubic_pil(images.expand(-1, 3, -1, -1))
    for image, resized in zip(images, ours, strict=True):
        reference = TF.PILToTensor()(TF.Resize((224, 224), TF.InterpolationMode.BICUBIC)(to_pil(image)))
        assert torch.equal(resized, reference)


@pytest.mark.parametrize(("height", "width", "channels"), [(32, 32, 3), (256, 256, 3), (64, 64, 1)])
def test_preprocess_equals_dgm_eval(height: int, width: int, channels: int) -> None:
    images = made_images(height, width, channels)
    reference = torch.stack([dgm_eval_transform(to_pil(image)) for image in images])
    ours = preprocess(images)
    assert ours.dtype == torch.float32 and torch.equal(ours, reference)


def test_position_embedding_is_interpolated_as_the_hub_model_does() -> None:
    pos = tiny_official_state()["pos_embed"]
    ours = hub_pos_embed(pos, 16)
    assert ours.shape == (1, 257, TINY["embed_dim"])
    assert float(ours.sum()) == pytest.approx(HUB_POS_SUM, abs=1e-3)
    for row, values in HUB_POS_ROWS.items():
        assert ours[0, row, :3].tolist() == pytest.approx(values, abs=1e-6)
    from timm.layers import resample_abs_pos_embed

    timm_default = resample_abs_pos_embed(pos, (16, 16), num_prefix_tokens=1)
    assert (timm_default - ours).abs().max() > 1e-2


def test_features_equal_the_hub_model_on_official_layout_weights(tmp_path: Path) -> None:
    extractor = DINOv2Extractor("random", **TINY)
    extractor.network.to("meta")  # as dinov2_vit builds it for a checkpoint: no initialisation
    path = tmp_path / "tiny_official.pth"
    torch.save(tiny_official_state(), path)
    load_official_weights(extractor.network, torch.load(path, weights_only=True), f"test file {path}")
    assert not any(p.is_meta for p in extractor.parameters())
    with torch.inference_mode():
        features = extractor(golden_images())["features"]
    assert features.shape == (3, TINY["embed_dim"])
    assert features[:, ::8].tolist() == [pytest.approx(row, abs=2e-5) for row in HUB_FEATURES]


def test_a_checkpoint_without_the_official_layout_is_refused() -> None:
    state = tiny_official_state()
    del state["mask_token"]
    with pytest.raises(ValueError, match="checkpoint.pth is not an official DINOv2 checkpoint"):
        load_official_weights(dinov2_vit("random", **TINY), state, "checkpoint.pth")


def test_same_features_for_batch_sizes_1_7_64() -> None:
    extractor = DINOv2Extractor("random", depth=1, embed_dim=32, num_heads=2)
    images = torch.randint(0, 256, (64, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        runs = [torch.cat([extractor(images[i:i + b])["features"] for i in range(0, 64, b)]) for b in (1, 7, 64)]
    scale = runs[0].abs().max()
    for run in runs[1:]:
        assert (run - runs[0]).abs().max() <= 1e-5 * scale


def test_extractor_interface() -> None:
    extractor = DINOv2Extractor("random", **TINY)
    assert extractor.provides == ("features",) and extractor.name == "dinov2-vitl14"
    assert "bicubic" in extractor.preprocessing and "ImageNet mean" in extractor.preprocessing
    assert extractor.weights_sha256 is None and DINOv2Extractor.weights_sha256 == WEIGHTS.sha256
    assert not extractor.training and not any(p.requires_grad for p in extractor.parameters())


def test_real_vit_l14_architecture_matches_the_official_layout() -> None:
    import timm

    with torch.device("meta"):
        net = timm.create_model(TIMM_MODEL, img_size=224, num_classes=0, init_values=1.0)
    keys = sorted([*net.state_dict(), "mask_token"])
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest() == HUB_L14_KEYS_SHA256
    grid_tokens = 1 + 37 * 37
    params = sum(p.numel() for p in net.parameters())
    assert params + FEATURE_DIM + (grid_tokens - net.pos_embed.shape[1]) * FEATURE_DIM == HUB_L14_PARAMS
    assert net.pos_embed.shape == (1, 257, FEATURE_DIM) and net.num_features == FEATURE_DIM


@pytest.mark.slow
def test_real_vit_l14_builds_with_random_weights() -> None:
    extractor = DINOv2Extractor("random")
    with torch.inference_mode():
        features = extractor(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))["features"]
    assert features.shape == (1, FEATURE_DIM) and torch.isfinite(features).all()


def test_architecture_overrides_need_random_weights() -> None:
    with pytest.raises(ValueError, match="need weights='random'"):
        dinov2_vit(None, depth=2)


def test_weights_file_is_checked_against_the_pinned_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save({"pos_embed": torch.zeros(1)}, fake)
    with pytest.raises(ValueError, match=f"{fake} has SHA-256 .* expected {WEIGHTS.sha256}"):
        dinov2_vit(fake)
    monkeypatch.setenv("CAS_DINOV2_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match=r"absent.pth \(from the \$CAS_DINOV2_WEIGHTS\) does not exist"):
        dinov2_vit()
