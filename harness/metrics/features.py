"""Batched feature extraction with exact float32 arithmetic.

An *extractor* is any callable that takes a uint8 (B, C, H, W) batch already on
the target device, does its own preprocessing there, and returns a dict of named
float outputs, each (B, D): ``{"features": ...}`` and, where the network has a
classifier head, ``"logits"``. Its class says what it returns (``provides``), its
``name``, its ``preprocessing`` (one line) and the SHA-256 of its weights
(``weights_sha256``, None for random weights). Two are here:
:class:`InceptionExtractor` (the standard FID Inception) and :class:`DomainExtractor`
(the penultimate layer and head of a classifier trained on the data itself, for
small images such as 8x8 digits where ImageNet features say little); the DINOv2
ViT-L/14 is :class:`harness.metrics.dinov2.DINOv2Extractor`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from harness.metrics.inception import (
    FEATURE_EXTRACTOR,
    PREPROCESSING,
    WEIGHTS,
    fid_inception_v3,
    preprocess,
)

Extractor = Callable[[torch.Tensor], dict[str, torch.Tensor]]


@contextmanager
def exact_float32() -> Iterator[None]:
    """Disable TF32 for cuDNN convolutions and cuBLAS matmuls inside the block, then restore.

    TF32 keeps 10 mantissa bits (relative rounding about 5e-4), so with it the
    features, and FID, would depend on the GPU generation and its default math
    mode. Torch >= 2.9 has an ``fp32_precision`` API whose state makes the
    legacy ``allow_tf32`` flags raise when read, so that API is used where it
    exists; older versions get ``allow_tf32 = False``.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        switches = [
            (torch.backends.cudnn.conv, "fp32_precision", "ieee"),
            (torch.backends.cuda.matmul, "fp32_precision", "ieee"),
        ]
    else:
        switches = [
            (torch.backends.cudnn, "allow_tf32", False),
            (torch.backends.cuda.matmul, "allow_tf32", False),
        ]
    saved = [getattr(obj, name) for obj, name, _ in switches]
    try:
        for obj, name, value in switches:
            setattr(obj, name, value)
        yield
    finally:
        for (obj, name, _), value in zip(switches, saved, strict=True):
            setattr(obj, name, value)


class InceptionExtractor(nn.Module):
    """uint8 images -> {"features": pool3 (B, 2048), "logits": (B, 1008)} of the FID Inception.

    Preprocessing (TF1 bilinear resize to 299, ``(x - 128) / 128``) runs on the
    batch's device. ``weights`` is passed to
    :func:`harness.metrics.inception.fid_inception_v3` (None: standard file,
    downloaded and checksum-verified; a path; or ``"random"`` for tests, which
    leaves :attr:`weights_sha256` None). Move it to the extraction device with
    ``.to(device)``.
    """

    provides = ("features", "logits")
    name = FEATURE_EXTRACTOR
    preprocessing = PREPROCESSING
    weights_sha256: str | None = WEIGHTS.sha256

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.network = fid_inception_v3(weights)
        if weights == "random":
            self.weights_sha256 = None
        self.eval()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features, logits = self.network(preprocess(images))
        return {"features": features, "logits": logits}


class DomainExtractor:
    """uint8 images -> {"features": penultimate layer, "logits": head} of a classifier trained on the domain.

    ``preprocess`` maps the uint8 batch to the classifier's input (for example
    ``lambda x: x.float() / 255``), ``features_fn`` maps that to the
    penultimate layer and ``head`` maps the features to logits; e.g.
    ``DomainExtractor(clf.features, clf.head, preprocess, name="digits-cnn-v1")``.
    ``weights_sha256`` is the SHA-256 of the classifier's state-dict file, where
    there is one. The classifier must be in eval mode (batch-norm statistics and
    dropout in training mode would make features depend on the batch).
    """

    provides = ("features", "logits")

    def __init__(
        self,
        features_fn: Callable[[torch.Tensor], torch.Tensor],
        head: Callable[[torch.Tensor], torch.Tensor],
        preprocess: Callable[[torch.Tensor], torch.Tensor],
        name: str,
        preprocessing: str = "",
        weights_sha256: str | None = None,
    ) -> None:
        self.features_fn = features_fn
        self.head = head
        self.preprocess = preprocess
        self.name = name
        self.preprocessing = preprocessing
        self.weights_sha256 = weights_sha256

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        for label, module in (
            ("features_fn", getattr(self.features_fn, "__self__", self.features_fn)),
            ("head", self.head),
        ):
            if isinstance(module, nn.Module) and module.training:
                raise ValueError(
                    f"DomainExtractor {self.name!r}: the module behind {label} is in training "
                    "mode; call .eval() on the classifier first"
                )
        features = self.features_fn(self.preprocess(images)).flatten(1)
        return {"features": features, "logits": self.head(features)}


def extract(
    images: torch.Tensor,
    extractor: Extractor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Run ``extractor`` over uint8 ``images`` (N, C, H, W) in batches on ``device``.

    Returns each output the extractor gives, by name, as a float64 (N, D) array (e.g.
    ``{"features": ..., "logits": ...}``). Inside, TF32 is off (:func:`exact_float32`),
    autocast is disabled and gradients are not tracked, so convolutions and matmuls run
    in IEEE float32 and the result does not depend on ``batch_size`` beyond float32
    rounding. The extractor's parameters must already be on ``device``.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            "images must be a uint8 torch.Tensor of shape (N, C, H, W), got "
            f"{type(images).__name__} {getattr(images, 'dtype', '')} of shape "
            f"{tuple(getattr(images, 'shape', ()))}"
        )
    if len(images) == 0:
        raise ValueError("images is empty; nothing to extract")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(extractor, nn.Module) and extractor.training:
        raise ValueError(f"extractor {type(extractor).__name__} is in training mode; call .eval()")
    device = torch.device(device)
    n = len(images)
    out: dict[str, np.ndarray] = {}
    with exact_float32(), torch.autocast(device.type, enabled=False), torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = images[start : start + batch_size].to(device)
            outputs = extractor(batch)
            if not isinstance(outputs, dict) or not outputs or (out and set(outputs) != set(out)):
                raise ValueError(
                    f"extractor {getattr(extractor, 'name', type(extractor).__name__)!r} returned "
                    f"{type(outputs).__name__} {sorted(outputs) if isinstance(outputs, dict) else ''}; expected a "
                    f"dict of named outputs{f' {sorted(out)}' if out else ''} for every batch"
                )
            for label, value in outputs.items():
                if value.ndim != 2 or len(value) != len(batch):
                    raise ValueError(
                        f"extractor returned {label} of shape {tuple(value.shape)} for a batch of "
                        f"{len(batch)}; expected ({len(batch)}, dim)"
                    )
                if label not in out:
                    out[label] = np.empty((n, value.shape[1]), dtype=np.float64)
                out[label][start : start + len(batch)] = value.to(torch.float64).cpu().numpy()
    return out
