"""The one conversion from stored uint8 pixels to what a classifier sees.

Training, evaluation and the domain feature extractor all call :func:`to_model_input`, so
the features of the domain extractor always match the classifier's own input.
"""

from __future__ import annotations

import torch

#: How :func:`to_model_input` maps pixels, as records and reports name it.
MODEL_INPUT = "uint8 -> float32 -> x / 127.5 - 1 at native resolution"


def to_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) as float32 in [-1, 1], on the device they are on."""
    return images.float() / 127.5 - 1
