"""A tiny randomly initialised class-conditional DiT pipeline, saved to a folder, for the diffusers tests."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_dit(folder: Path, latent: int = 4) -> Path:
    """A 2-layer DiT with 1,000 classes (DiT's guidance feeds the null class 1000) and a two-block VAE, which
    makes RGB images of ``2 * latent`` pixels a side; written to ``folder`` by ``save_pretrained``."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(
        sample_size=latent, patch_size=2, in_channels=4, out_channels=8, num_layers=2, num_attention_heads=2,
        attention_head_dim=8, num_embeds_ada_norm=1000, norm_num_groups=4)
    with torch.no_grad():  # DiT zero-initialises its output layers, which would make every sample the same
        for param in transformer.parameters():
            if not param.any():
                param.normal_(0, 0.2)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=2 * latent)
    DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler()).save_pretrained(folder)
    return folder
