"""BigGAN-deep through the pytorch-pretrained-biggan model family.

``params.model`` is a published name (``biggan-deep-128``, ``-256``, ``-512``; downloaded
once by that package to its cache) or a folder holding its ``config.json`` and
``pytorch_model.bin``.

Class index i is the i-th ImageNet class in the standard sorted-wnid order (the one-hot
class vector the model was trained with); the kind declares ``class_order="imagenet-wnid"``
in the registry, and the plan refuses a dataset whose classes are not in that order before
anything is sampled (:mod:`harness.generators.class_order`).

Truncation reaches the model twice. z is drawn in the generator's truncation mode, by
default BigGAN's own ``scaled`` convention z = τ · TN(-2, 2) (see
:mod:`harness.generators.truncation`), and the model's own ``truncation`` input picks the batch-norm
statistics precomputed for 51 values of τ on a 0.02 grid over [0, 1]. That package
asserts 0 < τ ≤ 1 and, off the grid, blends the two neighbouring statistics with swapped
weights; as float division rarely lands exactly on the grid (0.14 / 0.02 = 7.000…01), a
plain τ = 0.14 gets the statistics of 0.16. So the harness hands it
:func:`model_truncation` (τ): τ snapped to the nearest grid point, clamped to [0.02, 1]
(τ > 1 gets the τ = 1 statistics), as the float for which the package's own formula puts
all weight (to 1e-9) on that grid point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from harness.generators import GeneratorError, to_uint8
from harness.generators.truncation import truncated_normal

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store

GRID_STEPS = 50
#: BigGAN's own convention; under ``resample`` τ = 1.5 and τ = 2.0 are nearly the same generator.


def _stats_weights(value: float, step_size: float) -> dict[int, float]:
    """Weights the package's ``BigGANBatchNorm`` gives each grid index for ``value``."""
    coef, start = math.modf(value / step_size)
    start = int(start)
    return {start: 1.0} if coef == 0.0 else {start: coef, start + 1: 1.0 - coef}


def model_truncation(truncation: float | None, n_stats: int = GRID_STEPS + 1) -> float:
    """The value handed to the model's ``truncation`` input for a paper τ (see module doc)."""
    steps = n_stats - 1
    step_size = 1.0 / steps
    k = steps if truncation is None else min(steps, max(1, round(truncation * steps)))
    for start in (k * step_size, (k - 1) * step_size):
        value = start
        for _ in range(64):
            if 0 < value <= 1 and _stats_weights(value, step_size).get(k, 0.0) >= 1 - 1e-9:
                return value
            value = math.nextafter(value, math.inf)
    raise AssertionError(f"no float selects truncation grid point {k}/{steps}")


class BigGANDeep:
    """A pytorch-pretrained-biggan model behind the generator contract."""

    def __init__(self, model: torch.nn.Module, device: torch.device,
                 truncation_mode: str) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.truncation_mode = truncation_mode
        config = model.config
        self.num_classes = int(config.num_classes)
        self.image_size = int(config.output_dim)
        self.z_dim = int(config.z_dim)
        self.n_stats = int(config.n_stats)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        z = truncated_normal((len(labels), self.z_dim), truncation, generator, self.truncation_mode).to(self.device)
        onehot = torch.nn.functional.one_hot(labels, self.num_classes).float().to(self.device)
        images = self.model(z, onehot, model_truncation(truncation, self.n_stats))
        return to_uint8(images).cpu()


def build(spec: GeneratorConfig, real: RealData, store: Store) -> BigGANDeep:
    from pytorch_pretrained_biggan import BigGAN

    unknown = set(spec.params) - {"model"}
    if unknown or "model" not in spec.params:
        raise GeneratorError(f"generator {spec.name!r}: kind biggan-deep takes params.model (a name such as "
                             f"biggan-deep-128 or a folder with config.json and pytorch_model.bin)")
    try:
        model = BigGAN.from_pretrained(spec.params["model"])
    except OSError as err:
        raise GeneratorError(f"generator {spec.name!r}: cannot load BigGAN model "
                             f"{spec.params['model']!r} ({err})") from err
    return BigGANDeep(model, torch.device("cuda" if torch.cuda.is_available() else "cpu"), spec.truncation_mode)
