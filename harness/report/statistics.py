"""Uncertainty for the numbers a table cites, and tests for comparing two cells.

Pure functions over arrays: across seeds a t-interval, per class Wilson intervals, between two
cells evaluated on the same test images a paired bootstrap and McNemar's test, and per class
Fisher's exact test with Benjamini–Hochberg control of the false discovery rate.

Correctness arrays are booleans, one per test image (shape ``[N]``), or one row per seed
(shape ``[S, N]``) with the same test images in the same order in every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Below this many discordant images McNemar's test is the exact binomial one.
MCNEMAR_EXACT_BELOW = 25
#: A multinomial draw costs about this many index draws per category (numpy's binomials).
_INDEX_OVER_MULTINOMIAL = 8
#: Index resampling draws this many indices at once (32 MiB per array).
_RESAMPLE_CHUNK = 1 << 22


@dataclass(frozen=True)
class SeedSummary:
    """Mean over ``n`` successful seeds; std (ddof 1) and t-interval are None for one seed."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """Top-1 of cell a minus Top-1 of cell b, with a paired-bootstrap interval and p-value."""

    difference: float
    low: float
    high: float
    pvalue: float
    n_images: int
    n_seeds_a: int
    n_seeds_b: int
    n_boot: int


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on the images exactly one of two classifiers gets right."""

    statistic: float
    pvalue: float
    method: str
    a_only: int
    b_only: int


@dataclass(frozen=True)
class PerClassComparison:
    """Two generators class by class (the CAS paper's Figure 2).

    The shares are over classes with test images; a class is called significantly better
    (``a_better``) or worse (``b_better``) for a when its Benjamini–Hochberg-adjusted Fisher
    p-value is at most ``alpha``.
    """

    accuracy_a: np.ndarray
    accuracy_b: np.ndarray
    share_a_better: float
    share_b_better: float
    share_tied: float
    pvalues: np.ndarray
    adjusted: np.ndarray
    a_better: np.ndarray
    b_better: np.ndarray
    alpha: float


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean, sample std (ddof 1) and the Student-t interval of the mean over seeds."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"seed_summary needs a non-empty list of per-seed values, got shape {x.shape}")
    mean = float(x.mean())
    if len(x) == 1:
        return SeedSummary(mean, None, None, None, 1)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * std / np.sqrt(len(x))
    return SeedSummary(mean, std, mean - half, mean + half, len(x))


def wilson_interval(successes: np.ndarray | Sequence[int] | int, n: np.ndarray | Sequence[int] | int,
                    confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) for each proportion successes/n; NaN where n is 0.

    Unlike the normal approximation it stays inside [0, 1] and keeps its coverage at 0% and
    100%, which per-class accuracy on 50 test images often is.
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or np.any(k > m):
        raise ValueError("wilson_interval needs 0 ≤ successes ≤ n")
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _by_seed(correct: np.ndarray | Sequence, name: str) -> np.ndarray:
    x = np.asarray(correct)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected correctness per test image, shape [N] or [seeds, N]; got {x.shape}")
    if x.dtype != bool and not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name}: correctness must be booleans (or 0/1)")
    return x.astype(bool)


def paired_bootstrap(correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence, n_boot: int = 10_000,
                     seed: int = 0, groups: np.ndarray | Sequence | None = None,
                     confidence: float = 0.95) -> PairedDifference:
    """Top-1 difference a − b with a percentile paired-bootstrap interval and a two-sided p-value.

    Test images are resampled jointly for both cells: both classifiers are scored on the same
    images, and keeping the pairs cancels the images' shared difficulty. Where a cell has several
    seeds, its seeds are resampled too, independently of the other cell's (seed s of one cell and
    seed s of the other are unrelated training runs), so the interval covers a new test set and
    new training runs; with few seeds that part is coarse, so show the seed counts beside it.
    ``groups`` (e.g. each image's class) stratifies: images are resampled within their group, so
    every resample keeps the test set's class balance.

    The p-value is twice the smaller share of resampled differences on either side of 0, with
    the usual +1 correction.
    """
    a, b = _by_seed(correct_a, "correct_a"), _by_seed(correct_b, "correct_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"correct_a and correct_b must score the same test images; got {a.shape[1]} and "
                         f"{b.shape[1]} images")
    n_images, (s_a, s_b) = a.shape[1], (len(a), len(b))
    group = np.zeros(n_images, dtype=np.int64) if groups is None else np.asarray(groups)
    if group.shape != (n_images,):
        raise ValueError(f"groups: expected one group per test image ({n_images}), got shape {group.shape}")
    _, group_codes = np.unique(group, return_inverse=True)
    rng = np.random.default_rng(seed)
    hits = _resampled_hits(np.column_stack([a.T, b.T]), group_codes.ravel(), n_boot, rng)
    hits_a, hits_b = hits[:, :s_a], hits[:, s_a:]
    seeds_a = rng.multinomial(s_a, np.full(s_a, 1 / s_a), size=n_boot)
    seeds_b = rng.multinomial(s_b, np.full(s_b, 1 / s_b), size=n_boot)
    d = (hits_a * seeds_a).sum(1) / (s_a * n_images) - (hits_b * seeds_b).sum(1) / (s_b * n_images)
    low, high = np.quantile(d, [0.5 - confidence / 2, 0.5 + confidence / 2])
    tail = min((d <= 0).sum(), (d >= 0).sum())
    pvalue = min(1.0, 2 * (int(tail) + 1) / (n_boot + 1))
    return PairedDifference(float(a.mean() - b.mean()), float(low), float(high), pvalue, n_images, s_a, s_b, n_boot)


def _resampled_hits(values: np.ndarray, groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Column sums of ``values`` [N, S] over ``n_boot`` resamples of its rows within groups: [n_boot, S].

    Rows that share a group and a value pattern are interchangeable, so where such cells are
    few (one seed a side: at most four per group) a resample is multinomial counts over the
    cells; otherwise rows are resampled by index. Both are the same distribution.
    """
    cells, counts = np.unique(np.column_stack([groups, values]).astype(np.int64), axis=0, return_counts=True)
    if len(cells) * _INDEX_OVER_MULTINOMIAL <= len(values):
        hits = np.zeros((n_boot, values.shape[1]))
        for g in np.unique(cells[:, 0]):
            idx = np.flatnonzero(cells[:, 0] == g)
            total = counts[idx].sum()
            hits += rng.multinomial(total, counts[idx] / total, size=n_boot) @ cells[idx, 1:]
        return hits
    order = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups)
    start, size = (np.cumsum(sizes) - sizes)[groups[order]], sizes[groups[order]]
    ordered = values[order].astype(np.float64)
    n = len(values)
    chunk = max(1, _RESAMPLE_CHUNK // n)
    out = []
    for first in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - first)
        idx = start + np.floor(rng.random((rows, n)) * size).astype(np.int64)
        counts_per_row = np.bincount((idx + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        out.append(counts_per_row.reshape(rows, n) @ ordered)
    return np.concatenate(out)


def mcnemar(correct_a: np.ndarray | Sequence, correct_b: np.ndarray | Sequence,
            exact_below: int = MCNEMAR_EXACT_BELOW) -> McNemar:
    """McNemar's test of equal Top-1 for two classifiers on the same test images (one seed each).

    With fewer than ``exact_below`` discordant images the p-value is the exact two-sided binomial
    one (``method="exact"``); otherwise the chi-square statistic (|b − c| − 1)² / (b + c) with
    Edwards' continuity correction, on one degree of freedom (``method="chi-square"``).
    """
    a, b = _by_seed(correct_a, "correct_a"), _by_seed(correct_b, "correct_b")
    if len(a) != 1 or len(b) != 1 or a.shape != b.shape:
        raise ValueError(f"mcnemar compares one seed of each cell on the same test images; got shapes "
                         f"{a.shape} and {b.shape} (use paired_bootstrap for several seeds)")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = a_only + b_only
    if discordant == 0:
        return McNemar(0.0, 1.0, "exact", 0, 0)
    if discordant < exact_below:
        pvalue = min(1.0, 2 * stats.binom.cdf(min(a_only, b_only), discordant, 0.5))
        return McNemar(float(min(a_only, b_only)), float(pvalue), "exact", a_only, b_only)
    statistic = (abs(a_only - b_only) - 1) ** 2 / discordant
    return McNemar(float(statistic), float(stats.chi2.sf(statistic, 1)), "chi-square", a_only, b_only)


def benjamini_hochberg(pvalues: np.ndarray | Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(rejected, adjusted p-values) under Benjamini–Hochberg false-discovery-rate control at ``alpha``.

    NaN p-values (e.g. a class without test images) are left out of the family: not rejected,
    adjusted NaN.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if len(tested):
        order = tested[np.argsort(p[tested], kind="stable")]
        scaled = p[order] * len(order) / np.arange(1, len(order) + 1)
        adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    rejected = np.zeros(p.shape, dtype=bool)
    rejected[tested] = adjusted[tested] <= alpha
    return rejected, adjusted


def _counts(x: np.ndarray | Sequence[int], name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or not np.array_equal(a, np.round(a)) or np.any(a < 0):
        raise ValueError(f"{name}: expected one non-negative integer count per class, got {a!r:.200}")
    return a.astype(np.int64)


def per_class_comparison(per_class_correct_a: np.ndarray | Sequence[int],
                         per_class_correct_b: np.ndarray | Sequence[int],
                         per_class_total: np.ndarray | Sequence[int], alpha: float = 0.05) -> PerClassComparison:
    """Class by class, how often generator a's classifier beats b's, and where significantly.

    Inputs are counts of correctly classified test images per class, from one seed of each cell
    (a sum over seeds would count each test image several times). Each class is tested with
    Fisher's exact test on its 2 × 2 table (a/b × right/wrong), two-sided, then the family of
    classes with Benjamini–Hochberg. Fisher's test treats the two as independent samples though
    they share the test images; as both classifiers tend to fail on the same hard images, that
    makes it conservative, never liberal.
    """
    ca = _counts(per_class_correct_a, "per_class_correct_a")
    cb = _counts(per_class_correct_b, "per_class_correct_b")
    n = _counts(per_class_total, "per_class_total")
    if not (ca.shape == cb.shape == n.shape) or np.any(ca > n) or np.any(cb > n):
        raise ValueError(f"per-class counts must have one entry per class ({n.shape[0]}) and not exceed "
                         f"per_class_total")
    has = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_a, acc_b = np.where(has, ca / n, np.nan), np.where(has, cb / n, np.nan)
    pvalues = np.full(n.shape, np.nan)
    tables, which = np.unique(np.column_stack([ca, cb, n])[has], axis=0, return_inverse=True)
    table_p = [stats.fisher_exact([[x, m - x], [y, m - y]]).pvalue for x, y, m in tables]
    pvalues[has] = np.asarray(table_p)[which.ravel()]
    rejected, adjusted = benjamini_hochberg(pvalues, alpha)
    classes = max(int(has.sum()), 1)
    return PerClassComparison(
        accuracy_a=acc_a, accuracy_b=acc_b,
        share_a_better=float((ca > cb)[has].sum() / classes), share_b_better=float((ca < cb)[has].sum() / classes),
        share_tied=float((ca == cb)[has].sum() / classes), pvalues=pvalues, adjusted=adjusted,
        a_better=np.flatnonzero(rejected & (ca > cb)), b_better=np.flatnonzero(rejected & (ca < cb)), alpha=alpha)


def indistinguishable(a: np.ndarray | Sequence, b: np.ndarray | Sequence, n_boot: int = 10_000, seed: int = 0,
                      groups: np.ndarray | Sequence | None = None, confidence: float = 0.95) -> bool:
    """Whether two cells cannot be told apart: the paired-bootstrap interval of their Top-1
    difference (see :func:`paired_bootstrap`) contains 0."""
    diff = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, groups=groups, confidence=confidence)
    return diff.low <= 0 <= diff.high
