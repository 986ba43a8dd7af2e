"""Class-conditional generators: the contract, the registry of built-in kinds, plugins.

A config names a generator by a registered kind or by ``package.module:attr``, a class or
factory called with the config's ``params``. Whatever it is, the harness checks what it
returns and fails with the generator's name when the contract is broken.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store


@runtime_checkable
class Generator(Protocol):
    """What the harness needs of a class-conditional generator."""

    num_classes: int
    image_size: int

    def sample(self, labels: torch.Tensor, truncation: float | None,
               generator: torch.Generator) -> torch.Tensor:
        """uint8 [N, C, H, W] images for the given class labels."""


class GeneratorError(RuntimeError):
    """A generator that cannot be built or that broke the contract."""


Builder = Callable[["GeneratorConfig", "RealData", "Store"], Generator]

#: Kinds whose samples come from a latent z, so truncation applies.
LATENT_KINDS = {"cvae", "cgan", "biggan-deep"}


def _builtin(kind: str) -> Builder:
    from harness.generators import biggan, embedded, pools

    builders: dict[str, Builder] = {
        "npz": pools.build_npz, "folder": pools.build_folder,
        "biggan-deep": biggan.build, "cvae": embedded.build, "cgan": embedded.build,
    }
    return builders[kind]


BUILTIN_KINDS = ("real", "npz", "folder", "biggan-deep", "cvae", "cgan")


def _plugin(spec: GeneratorConfig) -> Generator:
    module_name, _, attr = spec.kind.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise GeneratorError(f"generator {spec.name!r}: cannot import {module_name!r} ({err})") from err
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise GeneratorError(f"generator {spec.name!r}: module {module_name!r} has no attribute {attr!r}") from None
    return factory(**spec.params)


def check_kind(spec: GeneratorConfig) -> None:
    """Reject an unknown kind before any work starts."""
    if spec.kind not in BUILTIN_KINDS and ":" not in spec.kind:
        raise GeneratorError(f"generator {spec.name!r}: unknown kind {spec.kind!r}; expected one of "
                             f"{', '.join(BUILTIN_KINDS)} or 'package.module:attr'")
    if spec.truncations and spec.kind in BUILTIN_KINDS and spec.kind not in LATENT_KINDS:
        raise GeneratorError(f"generator {spec.name!r}: kind {spec.kind!r} has no latent z, so "
                             f"'truncations' does not apply; remove it")


def build_generator(spec: GeneratorConfig, real: RealData, store: Store) -> Generator:
    """The generator a spec names, checked against the real dataset it must imitate."""
    check_kind(spec)
    if spec.kind == "real":
        raise GeneratorError(f"generator {spec.name!r}: the real data is trained on as it is, never sampled")
    gen = _builtin(spec.kind)(spec, real, store) if spec.kind in BUILTIN_KINDS else _plugin(spec)
    if not isinstance(gen, Generator):
        raise GeneratorError(f"generator {spec.name!r}: {spec.kind} returned {type(gen).__name__}, which lacks "
                             f"num_classes, image_size or sample(labels, truncation, generator)")
    if gen.num_classes != real.num_classes or gen.image_size != real.image_shape[1]:
        raise GeneratorError(
            f"generator {spec.name!r}: makes {gen.num_classes} classes at {gen.image_size}×{gen.image_size}, "
            f"but the dataset has {real.num_classes} classes at {real.image_shape[1]}×{real.image_shape[2]}")
    return gen


def check_samples(name: str, images: torch.Tensor, labels: torch.Tensor,
                  image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The images a generator returned, or an error naming the generator and the fault."""
    if not isinstance(images, torch.Tensor):
        raise GeneratorError(f"generator {name!r}: sample() returned {type(images).__name__}, expected a torch.Tensor")
    expected = (len(labels), *image_shape)
    if tuple(images.shape) != expected:
        raise GeneratorError(f"generator {name!r}: sample() returned shape {tuple(images.shape)} for "
                             f"{len(labels)} labels, expected {expected} (N, C, H, W)")
    if images.dtype != torch.uint8:
        problem = " and contains NaN" if images.is_floating_point() and torch.isnan(images).any() else ""
        raise GeneratorError(f"generator {name!r}: sample() returned dtype {images.dtype}{problem}, expected "
                             f"torch.uint8 in [0, 255] (harness.generators.to_uint8 converts [-1, 1] floats)")
    return images


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] as uint8 in [0, 255], rounded; NaN is an error, not a colour."""
    if torch.isnan(images).any():
        raise GeneratorError("generated images contain NaN")
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
