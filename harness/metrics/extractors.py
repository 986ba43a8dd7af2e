"""Which networks give the features of IS, FD, KID and precision/recall.

An extractor kind is registered in ``harness.registry.EXTRACTORS`` with the outputs it
provides (``features``, ``logits``); its builder takes an :class:`ExtractorSpec`, the store
and a device, and returns an extractor (see :mod:`harness.metrics.features`): a callable
from a uint8 batch to a dict of named outputs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

from harness.classify.preprocess import MODEL_INPUT, to_model_input
from harness.metrics import dinov2, inception
from harness.metrics.features import DomainExtractor, InceptionExtractor
from harness.registry import EXTRACTORS
from harness.store import Store, sha256_bytes, spec_key
from harness.verify import read_checked

#: The pinned network behind each extractor kind that has one.
PINNED = {"inception": (inception.FEATURE_EXTRACTOR, inception.PREPROCESSING, inception.WEIGHTS),
          "dinov2": (dinov2.FEATURE_EXTRACTOR, dinov2.PREPROCESSING, dinov2.WEIGHTS)}


@dataclass(frozen=True)
class ExtractorSpec:
    """A registered extractor kind and what it is built from.

    ``inception``, ``dinov2``: a pinned network; ``weights`` None for the pinned download (or
    the file its environment variable names), a local file, or ``"random"`` for tests;
    ``architecture`` overrides the DINOv2 ViT's size, with random weights only. ``domain``:
    the classifier trained on the real train split in the same sweep (``model_path`` in the
    store, ``model_name``, and ``model_sha256`` of that file).
    """

    kind: str
    weights: str | None = None
    architecture: tuple[tuple[str, int], ...] = ()
    model_path: str | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    image_shape: tuple[int, int, int] = (3, 0, 0)
    num_classes: int = 0

    @property
    def name(self) -> str:
        if self.kind in PINNED:
            return PINNED[self.kind][0]
        return f"domain-{self.model_name}-{spec_key(self.model_path)}"

    @property
    def preprocessing(self) -> str:
        return PINNED[self.kind][1] if self.kind in PINNED else MODEL_INPUT

    @property
    def weights_sha256(self) -> str | None:
        """The SHA-256 of the weights the features come from; None for random weights."""
        if self.kind in PINNED:
            return None if self.weights == "random" else PINNED[self.kind][2].sha256
        return self.model_sha256

    @property
    def provides(self) -> tuple[str, ...]:
        return EXTRACTORS.entry(self.kind).info["provides"]

    def identity(self) -> dict[str, Any]:
        """What makes two specs give the same features (a weights file's path does not)."""
        return {"kind": self.kind, "name": self.name, "weights_sha256": self.weights_sha256,
                "random": self.weights == "random", "architecture": dict(self.architecture)}


def build_inception(spec: ExtractorSpec, store: Store, device: torch.device) -> InceptionExtractor:
    return InceptionExtractor(spec.weights).to(device)


def build_dinov2(spec: ExtractorSpec, store: Store, device: torch.device) -> dinov2.DINOv2Extractor:
    return dinov2.DINOv2Extractor(spec.weights, **dict(spec.architecture)).to(device)


def build_domain(spec: ExtractorSpec, store: Store, device: torch.device) -> DomainExtractor:
    from harness.classify.models import build_model

    data = read_checked(store, spec.model_path)
    if spec.model_sha256 is not None and sha256_bytes(data) != spec.model_sha256:
        raise ValueError(f"classifier {store.path(spec.model_path)} changed since the metrics were planned: "
                         f"SHA-256 {sha256_bytes(data)}, expected {spec.model_sha256}")
    model = build_model(spec.model_name, spec.image_shape[0], spec.num_classes)
    model.load_state_dict(torch.load(io.BytesIO(data), weights_only=True, map_location="cpu"))
    model = model.to(device).eval()
    return DomainExtractor(model.body, model.head, to_model_input, spec.name, MODEL_INPUT, sha256_bytes(data))


def build_extractor(spec: ExtractorSpec, store: Store, device: torch.device) -> Any:
    """The extractor of ``spec`` on ``device``: uint8 batch -> {output name: (B, D) tensor}."""
    return EXTRACTORS.load(spec.kind)(spec, store, device)
