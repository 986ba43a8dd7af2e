"""The truncation trick as the CAS paper applies it (Ravuri & Vinyals 2019, footnote 5)."""

from __future__ import annotations

import torch


def truncated_normal(shape: tuple[int, ...], truncation: float | None,
                     generator: torch.Generator) -> torch.Tensor:
    """Standard-normal z whose dimensions outside [-2τ, 2τ] are resampled until inside.

    The result follows a standard normal conditioned on |z| ≤ 2τ, dimension by dimension;
    ``truncation=None`` means no truncation.
    """
    z = torch.randn(shape, generator=generator)
    if truncation is None:
        return z
    if truncation <= 0:
        raise ValueError(f"truncation must be > 0, got {truncation}")
    bound = 2.0 * truncation
    outside = z.abs() > bound
    while outside.any():
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > bound
    return z
