"""Compare harness.metrics.dinov2 with the official torch.hub DINOv2 ViT-L/14 on the same weights.

Builds the hub model from a local checkout of facebookresearch/dinov2 (the code that
``torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')`` runs), loads the official
checkpoint (``--weights``, checked against the pinned SHA-256) or seeded random weights in
its layout, and prints the largest difference of the CLS features, on dgm-eval-preprocessed
images, between the hub model and: this harness's extractor, timm's own loader for the
same checkpoint (antialiased position-embedding resample), and transformers' Dinov2Model
(if installed). The table in docs/METRICS.md was made with it.

    .venv/bin/python bench/dinov2_port_check.py --dinov2-repo PATH [--weights dinov2_vitl14_pretrain.pth]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings

import torch

from harness.metrics.dinov2 import WEIGHTS, DINOv2Extractor, load_official_weights, preprocess
from harness.metrics.weights import load_state_dict, resolve


def seeded_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key in sorted(shapes):
        x = torch.randn(shapes[key], generator=gen)
        if key in ("pos_embed", "cls_token", "mask_token"):
            state[key] = x
        elif len(shapes[key]) >= 2:
            state[key] = x / math.sqrt(math.prod(shapes[key][1:]))
        else:
            is_norm_weight = key.endswith(("norm1.weight", "norm2.weight")) or key == "norm.weight"
            state[key] = (1.0 if is_norm_weight else 0.0) + 0.1 * x
    return state


def transformers_features(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    from transformers import Dinov2Config, Dinov2Model

    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    model = Dinov2Model(Dinov2Config(hidden_size=1024, num_hidden_layers=depth, num_attention_heads=16,
                                     image_size=518, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6))
    names = {"norm1": "norm1", "norm2": "norm2", "ls1.gamma": "layer_scale1.lambda1",
             "ls2.gamma": "layer_scale2.lambda1", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
             "attn.proj": "attention.o_proj"}
    new = {"embeddings.cls_token": state["cls_token"], "embeddings.mask_token": state["mask_token"],
           "embeddings.position_embeddings": state["pos_embed"], "layernorm.weight": state["norm.weight"],
           "layernorm.bias": state["norm.bias"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"]}
    for i in range(depth):
        for suffix in ("weight", "bias"):
            parts = state[f"blocks.{i}.attn.qkv.{suffix}"].chunk(3)
            for qkv, part in zip(("q_proj", "k_proj", "v_proj"), parts, strict=True):
                new[f"encoder.layer.{i}.attention.{qkv}.{suffix}"] = part
        for key, value in state.items():
            for ours, theirs in names.items():
                if key.startswith(f"blocks.{i}.{ours}"):
                    new[f"encoder.layer.{i}.{theirs}{key[len(f'blocks.{i}.{ours}'):]}"] = value
    model.load_state_dict(new, strict=True)
    return model.eval()(pixel_values=x).pooler_output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dinov2-repo", required=True, help="a checkout of facebookresearch/dinov2")
    parser.add_argument("--weights", help=f"the official {WEIGHTS.filename}; default: seeded random weights")
    parser.add_argument("--images", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "xFormers")
    sys.path.insert(0, args.dinov2_repo)
    from dinov2.hub.backbones import dinov2_vitl14
    from timm import create_model
    from timm.models.vision_transformer import checkpoint_filter_fn

    hub = dinov2_vitl14(pretrained=False).eval()
    if args.weights:
        state = load_state_dict(WEIGHTS, resolve(WEIGHTS, args.weights))
    else:
        state = seeded_state({k: tuple(v.shape) for k, v in hub.state_dict().items()})
    hub.load_state_dict(state, strict=True)
    images = torch.randint(0, 256, (args.images, 3, 256, 256), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    x = preprocess(images)
    ours = DINOv2Extractor("random")
    load_official_weights(ours.network, state, "the compared checkpoint")
    timm_default = create_model("vit_large_patch14_dinov2", img_size=224, num_classes=0, init_values=1.0).eval()
    timm_default.load_state_dict(checkpoint_filter_fn(dict(state), timm_default))
    with torch.inference_mode():
        reference = hub(x)
        rows = {"harness.metrics.dinov2": ours(images)["features"],
                "timm create_model + timm checkpoint_filter_fn": timm_default(x)}
        try:
            import transformers

            rows[f"transformers {transformers.__version__} Dinov2Model"] = transformers_features(state, x)
        except ImportError:
            pass
    print(f"weights: {args.weights or 'seeded random (official layout)'}; {args.images} images 256 px; "
          f"torch {torch.__version__}")
    for name, features in rows.items():
        diff = (features - reference).abs().max().item()
        print(f"{name:48s} max |diff| {diff:.3e}   relative to max |feature| {diff / reference.abs().max().item():.3e}")


if __name__ == "__main__":
    main()
