"""The truncation trick, in the two conventions a τ can mean.

``scaled`` (BigGAN's own, and that of its released samplers such as pytorch-pretrained-biggan's
``truncated_noise_sample``): z = τ · TN(-2, 2), a standard normal truncated to [-2, 2] and then
scaled by τ. Every τ gives a different distribution; the per-dimension std is 0.8796 · τ.

``resample`` (the CAS paper's footnote 5 read literally): z ~ N(0, 1) with every dimension
outside [-2τ, 2τ] resampled. Above τ ≈ 1.5 almost nothing is resampled (0.27% of dimensions at
τ = 1.5, 0.006% at τ = 2.0), so those τ give nearly the same z.

``truncation=None`` means no truncation (z ~ N(0, 1)) in both.
"""

from __future__ import annotations

import math

import torch

from harness.knobs import TRUNCATION_MODES

#: The bound of BigGAN's truncated normal, in standard deviations.
SCALED_BOUND = 2.0


def _normal_within(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    """Standard normal conditioned on |z| ≤ bound, dimension by dimension (rejection)."""
    z = torch.randn(shape, generator=generator)
    outside = z.abs() > bound
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > bound
    return z


def _check(truncation: float | None, mode: str) -> None:
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation mode must be one of {TRUNCATION_MODES}, got {mode!r}")
    if truncation is not None and truncation <= 0:
        raise ValueError(f"truncation must be > 0, got {truncation}")


def truncated_normal(shape: tuple[int, ...], truncation: float | None, generator: torch.Generator,
                     mode: str) -> torch.Tensor:
    """z of ``shape`` truncated by τ = ``truncation`` under ``mode`` (see module doc)."""
    _check(truncation, mode)
    if truncation is None:
        return torch.randn(shape, generator=generator)
    if mode == "scaled":
        return truncation * _normal_within(shape, SCALED_BOUND, generator)
    return _normal_within(shape, 2.0 * truncation, generator)


def _truncated_std(bound: float) -> float:
    """Std of a standard normal truncated to [-bound, bound]."""
    density = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(bound / math.sqrt(2))
    return math.sqrt(1 - 2 * bound * density / mass)


def truncation_std(mode: str, tau: float | None) -> float:
    """The analytic per-dimension std of z drawn by :func:`truncated_normal` with ``mode`` and τ."""
    _check(tau, mode)
    if tau is None:
        return 1.0
    if mode == "scaled":
        return tau * _truncated_std(SCALED_BOUND)
    return _truncated_std(2.0 * tau)
