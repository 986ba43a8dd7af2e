"""Name → component registries: generator kinds, datasets, recipes, models, feature extractors.

Each family is one :class:`Registry`. An entry names its implementation as
``package.module:attr`` and is imported only when used, so validating a config imports
neither torch nor Ray. Config choices and error messages come from the registry: a new
kind is one ``register`` call here plus its code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from harness.knobs import GUIDANCE_SCALE, NUM_STEPS, TRUNCATION


class UnknownName(ValueError):
    """A name that no entry of a registry carries."""


@dataclass(frozen=True)
class Entry:
    """One registered component: where its code lives and what it declares of itself."""

    name: str
    target: str | None
    info: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        if self.target is None:
            raise ValueError(f"{self.name!r} has no implementation to load")
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Registry:
    """The registered components of one family, in registration order."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str | None, **info: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.family} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, info)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(f"unknown {self.family} {name!r}; expected one of {', '.join(self.names())}") from None

    def load(self, name: str) -> Any:
        return self.entry(name).load()


#: Generator kinds; ``knobs`` names the sampling knobs a kind takes (see knobs.py),
#: ``params`` its allowed params with defaults (``REQUIRED`` for those without one).
GENERATORS = Registry("generator kind")
#: Real dataset kinds; ``params`` as for generators, ``test_split`` whether it has an official one.
DATASETS = Registry("dataset kind")
#: Training recipes (classify/recipes.py).
RECIPES = Registry("recipe")
#: Classifier networks (classify/models.py).
MODELS = Registry("model")
#: Feature extractors for IS/FD/KID/PR; ``provides`` lists the outputs (``features``, ``logits``).
EXTRACTORS = Registry("feature extractor")

REQUIRED = "<required>"


def resolve_params(registry: Registry, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A registered kind's params with defaults filled in; unknown or missing ones are refused."""
    allowed = registry.entry(name).info.get("params", {})
    unknown = sorted(set(params) - set(allowed), key=repr)
    if unknown:
        raise ValueError(f"unknown params {unknown} for {registry.family} {name!r}; "
                         f"allowed: {sorted(allowed) or 'none'}")
    missing = sorted(k for k, v in allowed.items() if v == REQUIRED and k not in params)
    if missing:
        raise ValueError(f"{registry.family} {name!r} needs params {missing}")
    return {**{k: v for k, v in allowed.items() if v != REQUIRED}, **params}


GENERATORS.register("real", None, knobs=(), params={})
GENERATORS.register("npz", "harness.generators.pools:build_npz", knobs=(), params={"path": REQUIRED})
GENERATORS.register("folder", "harness.generators.pools:build_folder", knobs=(), params={"root": REQUIRED})
GENERATORS.register("biggan-deep", "harness.generators.biggan:build", knobs=(TRUNCATION,),
                    params={"model": REQUIRED}, truncation_mode="scaled")
GENERATORS.register("cvae", "harness.generators.embedded:build", knobs=(TRUNCATION,),
                    params={"steps": 3000, "latent_dim": 4, "hidden": 256, "seed": 0}, truncation_mode="scaled")
GENERATORS.register("cgan", "harness.generators.embedded:build", knobs=(TRUNCATION,),
                    params={"steps": 3000, "latent_dim": 32, "hidden": 256, "seed": 0}, truncation_mode="scaled")
GENERATORS.register("diffusers", "harness.generators.diffusion:build", knobs=(GUIDANCE_SCALE, NUM_STEPS),
                    params={"model": REQUIRED, "dtype": "float32", "device": None})

DATASETS.register("digits", "harness.data.readers:read_digits", params={}, test_split=False)
for _kind in ("mnist", "fashion-mnist", "cifar10", "cifar100"):
    DATASETS.register(_kind, "harness.data.readers:read_torchvision", params={"root": None, "download": True},
                      test_split=True)
DATASETS.register("npz", "harness.data.readers:read_npz", params={"train": REQUIRED, "val": REQUIRED},
                  test_split=True)
DATASETS.register("folder", "harness.data.readers:read_folder",
                  params={"root": REQUIRED, "image_size": None, "channels": 3}, test_split=True)

RECIPES.register("digits-small", "harness.classify.recipes:DIGITS_SMALL")
RECIPES.register("paper-cifar", "harness.classify.recipes:PAPER_CIFAR")
RECIPES.register("paper-imagenet", "harness.classify.recipes:PAPER_IMAGENET")

MODELS.register("resnet-tiny", "harness.classify.models:resnet_tiny")
MODELS.register("resnet56", "harness.classify.models:resnet56")
MODELS.register("resnet50", "harness.classify.models:resnet50")

EXTRACTORS.register("inception", "harness.metrics.extractors:build_inception", provides=("features", "logits"))
EXTRACTORS.register("domain", "harness.metrics.extractors:build_domain", provides=("features", "logits"))
EXTRACTORS.register("dinov2", "harness.metrics.extractors:build_dinov2", provides=("features",))
