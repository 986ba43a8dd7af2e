"""Class-conditional generators: the contract, building a configured one, checking its output.

A config names a generator by a registered kind (``harness.registry.GENERATORS``) or by
``package.module:attr``, a class or factory called with the config's ``params``. Whatever
it is, the harness checks what it returns and fails with the generator's name when the
contract is broken. torch is imported where it is used, so that configs are checked
without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.knobs import DEFAULT_PLUGIN_KNOBS, Knob
from harness.registry import GENERATORS

if TYPE_CHECKING:
    import torch

    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store


@runtime_checkable
class Generator(Protocol):
    """What the harness needs of a class-conditional generator.

    Knobs other than truncation that the generator declares (``knobs``) arrive as keyword
    arguments of ``sample``.
    """

    num_classes: int
    image_size: int

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator,
               **knobs: float) -> torch.Tensor:
        """uint8 [N, C, H, W] images for the given class labels."""


class GeneratorError(RuntimeError):
    """A generator that cannot be built or that broke the contract."""


def is_plugin(kind: str) -> bool:
    return ":" in kind


def plugin_factory(spec: GeneratorConfig) -> Any:
    """The class or factory a ``package.module:attr`` kind names, imported."""
    module_name, _, attr = spec.kind.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import-time failure of user code is the user's to fix
        raise GeneratorError(f"generator {spec.name!r}: cannot import {module_name!r} "
                             f"({type(err).__name__}: {err})") from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise GeneratorError(f"generator {spec.name!r}: module {module_name!r} has no attribute {attr!r}") from None


def declared_knobs(spec: GeneratorConfig) -> tuple[Knob, ...]:
    """The knobs a generator takes: its kind's registration, or a plugin's ``knobs`` attribute."""
    if not is_plugin(spec.kind):
        return GENERATORS.entry(spec.kind).info["knobs"]
    knobs = getattr(plugin_factory(spec), "knobs", DEFAULT_PLUGIN_KNOBS)
    if not isinstance(knobs, tuple | list) or not all(isinstance(k, Knob) for k in knobs):
        raise GeneratorError(f"generator {spec.name!r}: {spec.kind}.knobs must be a tuple of "
                             f"harness.knobs.Knob, got {knobs!r}")
    return tuple(knobs)


def build_generator(spec: GeneratorConfig, real: RealData, store: Store) -> Generator:
    """The generator a spec names, checked against the real dataset it must imitate."""
    if spec.kind == "real":
        raise GeneratorError(f"generator {spec.name!r}: the real data is trained on as it is, never sampled")
    if is_plugin(spec.kind):
        gen = plugin_factory(spec)(**spec.params)
    else:
        gen = GENERATORS.load(spec.kind)(spec, real, store)
    if not isinstance(gen, Generator):
        raise GeneratorError(f"generator {spec.name!r}: {spec.kind} returned {type(gen).__name__}, which lacks "
                             f"num_classes, image_size or sample(labels, truncation, generator)")
    if gen.num_classes != real.num_classes or gen.image_size != real.image_shape[1]:
        raise GeneratorError(
            f"generator {spec.name!r}: makes {gen.num_classes} classes at {gen.image_size}×{gen.image_size}, "
            f"but the dataset has {real.num_classes} classes at {real.image_shape[1]}×{real.image_shape[2]}")
    return gen


def check_samples(name: str, images: Any, labels: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The images a generator returned, or an error naming the generator and the fault."""
    import torch

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
    import torch

    if torch.isnan(images).any():
        raise GeneratorError("generated images contain NaN")
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
