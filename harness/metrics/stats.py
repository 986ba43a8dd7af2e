"""Gaussian feature statistics and the Fréchet distance (FID).

:class:`FeatureStats` keeps the float64 sums ``(n, Σx, Σxxᵀ)``, which merge by
addition, so features computed by many actors pool into exactly the statistics
of one pass; FID is computed once from the pooled statistics, never averaged
over shards.

Statistics files: pytorch-fid and the ADM evaluation suite store ``mu`` and
``sigma`` (``np.cov``, ddof=1) in an ``.npz``; :func:`load_fid_stats` reads any
such file (ADM reference batches included) and :func:`save_fid_stats` writes
one. ADM's ``evaluator.py`` additionally expects its spatial-FID keys
``mu_s``/``sigma_s``, which this harness does not compute.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

import numpy as np

PathOrFile = str | os.PathLike[str] | IO[bytes]


def as_feature_matrix(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy or torch, any device) as a finite float64 (samples, dim) array; ``name`` labels errors."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (samples, dim) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _check_gaussian(mu: Any, sigma: Any, label: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ValueError(
            f"mu{label} must have shape (d,) and sigma{label} shape (d, d), got {mu.shape} and "
            f"{sigma.shape}"
        )
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{label} or sigma{label} contains NaN or infinite values")
    return mu, sigma


def _at_rounding_level(eigvals: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) indistinguishable from zero: ≤ n·ε·max, negative ones included."""
    largest = max(eigvals[-1], 0.0) if eigvals.size else 0.0
    return eigvals <= largest * eigvals.size * np.finfo(np.float64).eps


def _factor(sigma: np.ndarray) -> np.ndarray:
    """A with sigma = A Aᵀ: Cholesky when sigma is positive definite, else from eigh."""
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sigma)
        keep = ~_at_rounding_level(w)
        return v[:, keep] * np.sqrt(w[keep])


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr √(Σ1 Σ2) between two Gaussians.

    Everything is float64 and no general matrix square root is taken (unlike
    pytorch-fid's ``scipy.linalg.sqrtm``: several times slower at d = 2048, see
    bench/bench_fid.py, and unreliable for singular products). For any factor A
    with Σ1 = A Aᵀ, the symmetric PSD matrix Aᵀ Σ2 A has the non-zero eigenvalues
    of Σ1 Σ2, so tr √(Σ1 Σ2) is the sum of the square roots of its eigenvalues
    (one symmetric eigendecomposition). A is the Cholesky factor of Σ1 when Σ1
    is positive definite (the usual case with more samples than dimensions,
    and the fast path); otherwise A = V diag(√w) from the eigendecomposition
    Σ1 = V diag(w) Vᵀ, with eigenvalues at rounding level (≤ n·ε·max, small
    negative ones included) dropped. Eigenvalues of Aᵀ Σ2 A at rounding level
    are treated as exact zeros too, so singular covariances (fewer samples
    than dimensions) give the exact result instead of square roots of rounding
    noise. For identical inputs the result is 0 up to rounding (≈1e-12·tr Σ;
    it may be that small and negative).
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "2")
    if mu1.size != mu2.size:
        raise ValueError(f"dimensions differ: mu1 has {mu1.size} entries, mu2 has {mu2.size}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    a = _factor(sigma1)
    inner = a.T @ (sigma2 @ a)
    eigvals = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(np.where(_at_rounding_level(eigvals), 0.0, eigvals)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


class FeatureStats:
    """Mergeable float64 statistics ``(n, Σx, Σxxᵀ)`` of a feature set.

    ``update`` adds samples in place; ``merge`` returns the pooled statistics of
    two sets. ``mean`` and ``cov`` (ddof=1, like ``np.cov``) derive from the sums;
    the subtraction Σxxᵀ − n μμᵀ costs about log10(‖μ‖²/σ²) of float64's 16
    digits, negligible for Inception features. Serialise the exact sums with
    ``to_bytes``/``to_dict`` (for a store) or ``to_npz`` (which also writes
    ``mu``/``sigma`` so the file is a pytorch-fid statistics file as well).
    """

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.n = 0
        self.sum_x = np.zeros(dim)
        self.sum_xx = np.zeros((dim, dim))

    @classmethod
    def from_features(cls, features: Any) -> FeatureStats:
        x = as_feature_matrix(features, "features")
        return cls(x.shape[1]).update(x)

    @property
    def dim(self) -> int:
        return self.sum_x.size

    def update(self, features: Any) -> FeatureStats:
        """Add a (samples, dim) batch (numpy or torch, any float dtype); returns self."""
        x = as_feature_matrix(features, "features")
        if x.shape[1] != self.dim:
            raise ValueError(f"features have dim {x.shape[1]}, these FeatureStats have dim {self.dim}")
        self.n += x.shape[0]
        self.sum_x += x.sum(axis=0)
        self.sum_xx += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Statistics of the union of both sample sets; neither operand changes."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge FeatureStats of dim {self.dim} and {other.dim}")
        merged = FeatureStats(self.dim)
        merged.n = self.n + other.n
        merged.sum_x = self.sum_x + other.sum_x
        merged.sum_xx = self.sum_xx + other.sum_xx
        return merged

    @property
    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise ValueError("mean of empty FeatureStats")
        return self.sum_x / self.n

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.n}")
        mean = self.mean
        return (self.sum_xx - self.n * np.outer(mean, mean)) / (self.n - 1)

    def fid(self, other: FeatureStats | tuple[Any, Any]) -> float:
        """Fréchet distance to another FeatureStats or to a ``(mu, sigma)`` pair."""
        mu2, sigma2 = (other.mean, other.cov) if isinstance(other, FeatureStats) else other
        return frechet_distance(self.mean, self.cov, mu2, sigma2)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "sum_x": self.sum_x.copy(), "sum_xx": self.sum_xx.copy()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureStats:
        n = int(state["n"])
        sum_x = np.asarray(state["sum_x"], dtype=np.float64)
        sum_xx = np.asarray(state["sum_xx"], dtype=np.float64)
        if n < 0 or sum_x.ndim != 1 or sum_xx.shape != (sum_x.size, sum_x.size):
            raise ValueError(
                f"inconsistent FeatureStats state: n={n}, sum_x shape {sum_x.shape}, "
                f"sum_xx shape {sum_xx.shape}"
            )
        stats = cls(sum_x.size)
        stats.n, stats.sum_x, stats.sum_xx = n, sum_x.copy(), sum_xx.copy()
        return stats

    def to_bytes(self) -> bytes:
        """The exact sums as an uncompressed ``.npz`` (keys n, sum_x, sum_xx)."""
        buffer = io.BytesIO()
        np.savez(buffer, n=np.int64(self.n), sum_x=self.sum_x, sum_xx=self.sum_xx)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FeatureStats:
        return cls.from_npz(io.BytesIO(data))

    def to_npz(self, file: PathOrFile) -> None:
        """Write the sums plus ``mu``/``sigma`` (needs n >= 2): readable by pytorch-fid too."""
        np.savez(
            file, n=np.int64(self.n), sum_x=self.sum_x, sum_xx=self.sum_xx, mu=self.mean, sigma=self.cov
        )

    @classmethod
    def from_npz(cls, file: PathOrFile) -> FeatureStats:
        with np.load(file, allow_pickle=False) as data:
            if not {"n", "sum_x", "sum_xx"} <= set(data.files):
                raise ValueError(
                    f"{_name(file)} holds no FeatureStats (keys n, sum_x, sum_xx; found "
                    f"{sorted(data.files)}); for a mu/sigma file use load_fid_stats"
                )
            return cls.from_dict({key: data[key] for key in ("n", "sum_x", "sum_xx")})


def _name(file: PathOrFile) -> str:
    return str(getattr(file, "name", file))


def load_fid_stats(file: PathOrFile) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(mu, sigma)`` as float64 from a pytorch-fid / ADM / ``to_npz`` statistics file."""
    with np.load(file, allow_pickle=False) as data:
        if not {"mu", "sigma"} <= set(data.files):
            raise ValueError(
                f"{_name(file)} has no 'mu' and 'sigma' arrays (found {sorted(data.files)})"
            )
        mu, sigma = data["mu"], data["sigma"]
    return _check_gaussian(mu, sigma, f" in {_name(file)}")


def save_fid_stats(file: PathOrFile, mu: Any, sigma: Any) -> None:
    """Write a pytorch-fid style ``.npz`` with float64 ``mu`` and ``sigma``."""
    mu, sigma = _check_gaussian(mu, sigma, "")
    np.savez(file, mu=mu, sigma=sigma)
