"""Which network gives the features of IS, FD, KID and precision/recall.

An extractor kind is registered in ``harness.registry.EXTRACTORS`` with the outputs it
provides (``features``, ``logits``); its builder takes an :class:`ExtractorSpec`, the store
and a device, and returns a callable from a uint8 batch to ``(features, logits)``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness.classify.preprocess import MODEL_INPUT, to_model_input
from harness.metrics.features import DomainExtractor, InceptionExtractor
from harness.metrics.inception import FEATURE_EXTRACTOR, PREPROCESSING
from harness.registry import EXTRACTORS
from harness.store import Store, spec_key
from harness.verify import read_checked


@dataclass(frozen=True)
class ExtractorSpec:
    """A registered extractor kind and what it is built from.

    ``inception``: the standard FID Inception-v3 (``inception_weights``: None for the pinned
    download, a file, or ``"random"`` for tests). ``domain``: the classifier trained on the
    real train split in the same sweep (``model_path`` in the store, ``model_name``).
    """

    kind: str
    inception_weights: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    image_shape: tuple[int, int, int] = (3, 0, 0)
    num_classes: int = 0

    @property
    def name(self) -> str:
        if self.kind == "inception":
            return FEATURE_EXTRACTOR
        return f"domain-{self.model_name}-{spec_key(self.model_path)}"

    @property
    def preprocessing(self) -> str:
        return PREPROCESSING if self.kind == "inception" else MODEL_INPUT

    @property
    def provides(self) -> tuple[str, ...]:
        return EXTRACTORS.entry(self.kind).info["provides"]


def build_inception(spec: ExtractorSpec, store: Store, device: torch.device) -> Callable:
    net = InceptionExtractor(spec.inception_weights).to(device)
    return lambda x: net(x.expand(-1, 3, -1, -1))


def build_domain(spec: ExtractorSpec, store: Store, device: torch.device) -> Callable:
    from harness.classify.models import build_model

    model = build_model(spec.model_name, spec.image_shape[0], spec.num_classes)
    state = torch.load(io.BytesIO(read_checked(store, spec.model_path)), weights_only=True, map_location="cpu")
    model.load_state_dict(state)
    model = model.to(device).eval()
    return DomainExtractor(model.body, model.head, to_model_input, spec.name, MODEL_INPUT)


def build_extractor(spec: ExtractorSpec, store: Store, device: torch.device) -> Any:
    """The extractor callable on ``device``: uint8 batch -> (features, logits)."""
    return EXTRACTORS.load(spec.kind)(spec, store, device)
