"""Inception Score, Kernel Inception Distance and k-NN precision/recall.

All three take plain (samples, dim) arrays (numpy or torch), so they apply to
Inception features and to domain-classifier features alike, and compute in
float64. KID and precision/recall accept a ``device`` to run their matrix
products on a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import log_softmax, xlogy

from harness.metrics.stats import as_feature_matrix

_BLOCK_ELEMENTS = 1 << 24


def inception_score(logits: Any, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): mean and std (ddof=0) of exp(E[KL(p(y|x) ‖ p(y))]).

    The samples are cut, in the given order, into ``splits`` consecutive parts
    (part i is rows ``i*N//splits`` to ``(i+1)*N//splits``) and p(y) is the
    mean softmax within each part, as in the original code. For the FID
    Inception pass its logits as returned (all 1008 outputs, no fc bias), which
    is what the TF original, ADM's evaluator and torch-fidelity use.
    torch-fidelity shuffles the rows first (seed 2020); with the same order the
    results agree.
    """
    z = as_feature_matrix(logits, "logits")
    n = z.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be between 1 and the number of samples ({n}), got {splits}")
    log_p = log_softmax(z, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_y = p[part].mean(axis=0)
        kl = (p[part] * log_p[part]).sum(axis=1) - xlogy(p[part], p_y).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _as_tensor(x: Any, name: str, device: str | torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(as_feature_matrix(x, name))).to(device)


def _check_same_dim(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have different feature dims: {a.shape[1]} and {b.shape[1]}")


def kid(
    features_a: Any,
    features_b: Any,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): mean and std (ddof=0) over subsets.

    Each of ``num_subsets`` subsets draws ``m = min(subset_size, len(a), len(b))``
    rows of a, then m rows of b, without replacement from
    ``np.random.default_rng(seed)``, and computes the unbiased MMD² with the
    kernel k(x, y) = (xᵀy / d + 1)³ (diagonal terms of k(a, a) and k(b, b)
    excluded). Unbiased, so it can be slightly negative for equal distributions.

    A subset's kernel sum is sᵀKs, s its rows' indicator vector: the kernel between
    the whole sets is computed once, a block of rows at a time, and summed for every
    subset at once, instead of three m × m kernels per subset. Same subsets, same
    estimator; the cost grows with the sets' sizes (at most ``metrics.max_samples``
    rows), not with the number of subsets.
    """
    a = _as_tensor(features_a, "features_a", device)
    b = _as_tensor(features_b, "features_b", device)
    _check_same_dim(a, b, "features_a and features_b")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set and subset_size >= 2, got subset of {m}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    rng = np.random.default_rng(seed)
    pick_a = np.zeros((len(a), num_subsets))
    pick_b = np.zeros((len(b), num_subsets))
    for subset in range(num_subsets):
        pick_a[rng.choice(len(a), m, replace=False), subset] = 1
        pick_b[rng.choice(len(b), m, replace=False), subset] = 1
    in_a, in_b = torch.from_numpy(pick_a).to(device), torch.from_numpy(pick_b).to(device)
    dim = a.shape[1]
    within = (_subset_kernel_sums(a, a, in_a, in_a) - in_a.T @ ((a * a).sum(1) / dim + 1) ** 3
              + _subset_kernel_sums(b, b, in_b, in_b) - in_b.T @ ((b * b).sum(1) / dim + 1) ** 3)
    values = (within / (m * (m - 1)) - 2 * _subset_kernel_sums(a, b, in_a, in_b) / (m * m)).cpu().numpy()
    return float(np.mean(values)), float(np.std(values))


def _subset_kernel_sums(x: torch.Tensor, y: torch.Tensor, in_x: torch.Tensor, in_y: torch.Tensor) -> torch.Tensor:
    """Σ k(x_i, y_j) over the rows i of x and j of y that each subset holds (columns of the indicators ``in_x``,
    ``in_y``), diagonal included; the kernel is made ``_BLOCK_ELEMENTS`` entries at a time, and of x against
    itself only on and above the diagonal (each block off it counts twice)."""
    symmetric = x is y
    sums = torch.zeros(in_x.shape[1], dtype=x.dtype, device=x.device)
    rows = max(1, _BLOCK_ELEMENTS // len(y))
    for start in range(0, len(x), rows):
        end = min(start + rows, len(x))
        first = start if symmetric else 0
        kernel = (x[start:end] @ y[first:].T / x.shape[1] + 1) ** 3
        weight = torch.ones(len(y) - first, dtype=x.dtype, device=x.device)
        if symmetric:
            weight[end - start:] = 2
        sums += ((kernel @ (in_y[first:] * weight[:, None])) * in_x[start:end]).sum(0)
    return sums


def _squared_distances(x: torch.Tensor, y: torch.Tensor, y_sq_norms: torch.Tensor) -> torch.Tensor:
    d = (x * x).sum(dim=1, keepdim=True) + y_sq_norms - 2 * (x @ y.T)
    return d.clamp_min_(0)


def _knn_radii(x: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """Squared distance from each row of x to its k-th nearest other row."""
    sq_norms = (x * x).sum(dim=1)
    return torch.cat(
        [
            _squared_distances(x[i : i + rows], x, sq_norms).kthvalue(k + 1, dim=1).values
            for i in range(0, len(x), rows)
        ]
    )


def _fraction_in_balls(
    queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, rows: int
) -> float:
    sq_norms = (centres * centres).sum(dim=1)
    inside = sum(
        int((_squared_distances(queries[i : i + rows], centres, sq_norms) <= radii).any(dim=1).sum())
        for i in range(0, len(queries), rows)
    )
    return inside / len(queries)


def precision_recall(
    features_real: Any,
    features_fake: Any,
    k: int = 3,
    device: str | torch.device = "cpu",
    batch_rows: int | None = None,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls.

    Each real sample gets a ball reaching its k-th nearest *other* real sample,
    likewise for fake samples. Precision is the fraction of fake samples inside
    at least one real ball (boundary included), recall the fraction of real
    samples inside at least one fake ball. Distances are computed
    ``batch_rows`` query rows at a time (default: blocks of about 2^24
    distances, 128 MiB), so 50k x 50k needs no N² memory.
    """
    real = _as_tensor(features_real, "features_real", device)
    fake = _as_tensor(features_fake, "features_fake", device)
    _check_same_dim(real, fake, "features_real and features_fake")
    if k < 1 or min(len(real), len(fake)) <= k:
        raise ValueError(
            f"k must be >= 1 and below each set's size; got k={k} with {len(real)} real and "
            f"{len(fake)} fake samples"
        )
    if batch_rows is None:
        batch_rows = max(1, _BLOCK_ELEMENTS // max(len(real), len(fake)))
    elif batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    real_radii = _knn_radii(real, k, batch_rows)
    fake_radii = _knn_radii(fake, k, batch_rows)
    precision = _fraction_in_balls(fake, real, real_radii, batch_rows)
    recall = _fraction_in_balls(real, fake, fake_radii, batch_rows)
    return precision, recall
