"""Statistics for citing numbers, against scipy and statsmodels, and compact predictions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy import stats

from harness.report.predictions import correct_from_predictions, decode_predictions, encode_predictions
from harness.report.statistics import (
    benjamini_hochberg,
    indistinguishable,
    mcnemar,
    paired_bootstrap,
    per_class_comparison,
    seed_summary,
    wilson_interval,
)


def _pair(n: int, a_only: int, b_only: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of two classifiers on n images with the given agreement counts, shuffled."""
    a = np.zeros(n, dtype=bool)
    b = np.zeros(n, dtype=bool)
    a[:a_only] = True
    b[a_only:a_only + b_only] = True
    a[a_only + b_only:a_only + b_only + both] = b[a_only + b_only:a_only + b_only + both] = True
    order = np.random.default_rng(n).permutation(n)
    return a[order], b[order]


def test_seed_summary_against_scipy_t_interval() -> None:
    values = [0.61, 0.63, 0.62]
    s = seed_summary(values)
    assert (s.mean, s.n) == (pytest.approx(0.62), 3)
    assert s.std == pytest.approx(0.01)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (s.low, s.high) == (pytest.approx(low), pytest.approx(high))
    assert (s.low, s.high) == (pytest.approx(0.5951586228824967), pytest.approx(0.6448413771175033))
    one = seed_summary([0.5])
    assert (one.mean, one.std, one.low, one.high, one.n) == (0.5, None, None, None, 1)
    with pytest.raises(ValueError, match="non-empty"):
        seed_summary([])


def test_wilson_interval_against_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    k, n = np.array([0, 3, 50, 49, 17]), np.array([50, 50, 50, 50, 20])
    low, high = wilson_interval(k, n)
    ref_low, ref_high = proportion_confint(k, n, method="wilson")
    np.testing.assert_allclose(low, ref_low, atol=1e-12)
    np.testing.assert_allclose(high, ref_high, atol=1e-12)
    np.testing.assert_allclose(low[:4], [0.0, 0.02061497, 0.9286524, 0.89504556], atol=1e-7)
    np.testing.assert_allclose(high[:4], [0.0713476, 0.16217092, 1.0, 0.99646074], atol=1e-7)
    low90, high90 = wilson_interval(3, 50, confidence=0.9)
    assert (low90, high90) == pytest.approx(proportion_confint(3, 50, alpha=0.1, method="wilson"))
    empty = wilson_interval([0, 5], [0, 10])
    assert np.isnan(empty[0][0]) and np.isnan(empty[1][0]) and not np.isnan(empty[0][1])
    with pytest.raises(ValueError, match="successes ≤ n"):
        wilson_interval(6, 5)


def test_mcnemar_exact_and_chi_square_against_statsmodels() -> None:
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    a, b = _pair(125, a_only=12, b_only=3, both=10)
    small = mcnemar(a, b)
    ref = sm_mcnemar([[10, 12], [3, 100]], exact=True)
    assert (small.method, small.a_only, small.b_only) == ("exact", 12, 3)
    assert small.pvalue == pytest.approx(ref.pvalue) == pytest.approx(0.03515625)
    assert small.pvalue == pytest.approx(stats.binomtest(3, 15, 0.5).pvalue)

    a, b = _pair(172, a_only=40, b_only=22, both=10)
    large = mcnemar(a, b)
    ref = sm_mcnemar([[10, 40], [22, 100]], exact=False, correction=True)
    assert large.method == "chi-square"
    assert (large.statistic, large.pvalue) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    assert large.pvalue == pytest.approx(0.030849999436874987)

    same = mcnemar(a, a)
    assert (same.pvalue, same.a_only, same.b_only) == (1.0, 0, 0)
    with pytest.raises(ValueError, match="one seed of each cell"):
        mcnemar(np.stack([a, a]), a)


def test_benjamini_hochberg_against_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)])
    rejected, adjusted = benjamini_hochberg(p, 0.05)
    ref_rejected, ref_adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    np.testing.assert_array_equal(rejected, ref_rejected)
    np.testing.assert_allclose(adjusted, ref_adjusted, rtol=1e-12)
    rejected, adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.005, 0.2])
    assert rejected.tolist() == [True, True, True, True, False]
    np.testing.assert_allclose(adjusted, [0.025, 0.05, 0.05, 0.025, 0.2])
    rejected, adjusted = benjamini_hochberg([0.01, np.nan, 0.04])  # NaN: not part of the family
    assert rejected.tolist() == [True, False, True] and np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])


def _naive_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, rng: np.random.Generator,
                     groups: np.ndarray | None = None) -> np.ndarray:
    """Resampling image indices (within groups) and seeds one by one: the definition."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    n = a.shape[1]
    groups = np.zeros(n, dtype=int) if groups is None else groups
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = np.empty(n_boot)
    for i in range(n_boot):
        idx = np.concatenate([rng.choice(m, len(m)) for m in members])
        sa, sb = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
        out[i] = a[sa][:, idx].mean() - b[sb][:, idx].mean()
    return out


def test_paired_bootstrap_matches_the_definition_and_the_normal_approximation() -> None:
    n, a_only, b_only = 2000, 120, 80
    a, b = _pair(n, a_only, b_only, both=1000)
    diff = paired_bootstrap(a, b, n_boot=20_000)
    assert diff.difference == pytest.approx(0.02)
    assert (diff.n_images, diff.n_seeds_a, diff.n_seeds_b, diff.n_boot) == (2000, 1, 1, 20_000)
    se = np.sqrt(a_only + b_only - (a_only - b_only) ** 2 / n) / n
    assert diff.low == pytest.approx(0.02 - 1.96 * se, abs=0.0015)
    assert diff.high == pytest.approx(0.02 + 1.96 * se, abs=0.0015)
    assert diff.pvalue == pytest.approx(2 * stats.norm.sf(0.02 / se), rel=0.3)
    naive = _naive_bootstrap(a, b, 2000, np.random.default_rng(1))
    assert np.quantile(naive, [0.025, 0.975]) == pytest.approx([diff.low, diff.high], abs=0.002)
    assert paired_bootstrap(a, b, n_boot=500, seed=3) == paired_bootstrap(a, b, n_boot=500, seed=3)
    assert paired_bootstrap(a, a, n_boot=500).pvalue == 1.0


def test_paired_bootstrap_pairs_images_so_shared_difficulty_cancels() -> None:
    # Two classifiers that agree on all but 10 of 1000 images: the paired interval is narrow,
    # far narrower than treating the two Top-1s as independent would give.
    a, b = _pair(1000, a_only=8, b_only=2, both=600)
    diff = paired_bootstrap(a, b, n_boot=5000)
    independent_se = np.sqrt(0.608 * 0.392 / 1000 + 0.602 * 0.398 / 1000)
    assert diff.high - diff.low < independent_se


def test_paired_bootstrap_with_seeds_and_groups_matches_the_definition() -> None:
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(20), 30)
    difficulty = rng.uniform(0, 1, 600)
    a = rng.uniform(0, 1, (3, 600)) < 0.3 + 0.6 * difficulty + rng.normal(0, 0.05, (3, 1))
    b = rng.uniform(0, 1, (2, 600)) < 0.25 + 0.6 * difficulty + rng.normal(0, 0.05, (2, 1))
    diff = paired_bootstrap(a, b, n_boot=10_000, groups=labels)
    assert diff.difference == pytest.approx(a.mean() - b.mean())
    assert (diff.n_seeds_a, diff.n_seeds_b) == (3, 2)
    naive = _naive_bootstrap(a, b, 2000, np.random.default_rng(2), groups=labels)
    naive_low, naive_high = np.quantile(naive, [0.025, 0.975])
    assert (naive_low, naive_high) == pytest.approx([diff.low, diff.high], abs=0.006)
    assert naive_high - naive_low == pytest.approx(diff.high - diff.low, rel=0.1)
    single = paired_bootstrap(a[:1], b[:1], n_boot=10_000, groups=labels)
    assert diff.high - diff.low > single.high - single.low  # seeds add their own spread
    with pytest.raises(ValueError, match="same test images; got 600 and 599"):
        paired_bootstrap(a, b[:, 1:])
    with pytest.raises(ValueError, match=r"groups: expected one group per test image \(600\)"):
        paired_bootstrap(a, b, groups=labels[1:])


def test_paired_bootstrap_draws_the_same_by_counts_and_by_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.report import statistics

    a, b = _pair(3000, a_only=150, b_only=100, both=1500)
    labels = np.random.default_rng(0).integers(0, 30, 3000)
    by = {}
    for name, factor in (("counts", 0), ("index", 10**9)):
        monkeypatch.setattr(statistics, "_INDEX_OVER_MULTINOMIAL", factor)
        by[name] = paired_bootstrap(a, b, n_boot=10_000, groups=labels)
    assert by["counts"].difference == by["index"].difference
    assert (by["counts"].low, by["counts"].high) == pytest.approx((by["index"].low, by["index"].high), abs=0.0015)


def test_indistinguishable() -> None:
    a, b = _pair(2000, a_only=120, b_only=80, both=1000)
    assert not indistinguishable(a, b)
    a, b = _pair(2000, a_only=50, b_only=45, both=1000)
    assert indistinguishable(a, b)


def test_per_class_comparison_against_fisher_and_bh() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    total = np.full(100, 50)
    total[7] = 0  # a class without test images takes no part
    acc_a = rng.uniform(0.3, 0.9, 100)
    acc_b = acc_a - np.where(np.arange(100) < 10, 0.5, 0.0)  # a is far better on the first 10 classes
    correct_a = rng.binomial(total, acc_a)
    correct_b = rng.binomial(total, np.clip(acc_b, 0, 1))
    correct_b[99] = correct_a[99]
    result = per_class_comparison(correct_a, correct_b, total)
    has = total > 0
    assert result.share_a_better == pytest.approx((correct_a > correct_b)[has].mean())
    assert result.share_b_better == pytest.approx((correct_a < correct_b)[has].mean())
    assert result.share_a_better + result.share_b_better + result.share_tied == pytest.approx(1.0)
    assert np.isnan(result.pvalues[7]) and np.isnan(result.accuracy_a[7])
    for k in (0, 50, 99):
        table = [[correct_a[k], 50 - correct_a[k]], [correct_b[k], 50 - correct_b[k]]]
        assert result.pvalues[k] == pytest.approx(stats.fisher_exact(table).pvalue)
    ref_rejected, ref_adjusted, _, _ = multipletests(result.pvalues[has], method="fdr_bh")
    np.testing.assert_allclose(result.adjusted[has], ref_adjusted)
    called = np.union1d(result.a_better, result.b_better)
    np.testing.assert_array_equal(called, np.flatnonzero(has)[ref_rejected])
    assert set(result.a_better) <= set(range(10)) and len(result.a_better) >= 8 and len(result.b_better) == 0

    # The paper's figure: 87.6% of 1000 classes better for one generator.
    counts_a = np.where(np.arange(1000) < 876, 30, 20)
    paper = per_class_comparison(counts_a, np.full(1000, 25), np.full(1000, 50))
    assert paper.share_a_better == pytest.approx(0.876)
    with pytest.raises(ValueError, match="not exceed per_class_total"):
        per_class_comparison([51], [3], [50])
    with pytest.raises(ValueError, match="per_class_correct_a: expected one non-negative integer count"):
        per_class_comparison([2.5], [3], [50])


def test_predictions_round_trip_compactly() -> None:
    rng = np.random.default_rng(0)
    top5 = rng.integers(0, 1000, (50_000, 5))
    data = encode_predictions(top5)
    assert len(data) < 500_000
    back = decode_predictions(data)
    assert back.dtype == np.int64 and np.array_equal(back, top5)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert npz["top_k"].dtype == np.uint16
    wide = np.array([[70_000, 1], [2, 3]])
    assert np.array_equal(decode_predictions(encode_predictions(wide)), wide)
    with pytest.raises(ValueError, match=r"integer array \[N, k\]"):
        encode_predictions(np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="negative class index"):
        encode_predictions(np.array([[-1, 2]]))


def test_correct_from_predictions() -> None:
    pred = np.array([[3, 1, 2, 0, 4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])
    labels = np.array([3, 2, 0])
    assert correct_from_predictions(pred, labels, 1).tolist() == [True, False, False]
    assert correct_from_predictions(pred, labels, 3).tolist() == [True, True, False]
    assert correct_from_predictions(pred, labels, 5).tolist() == [True, True, True]
    with pytest.raises(ValueError, match="k must be between 1 and the 5 predictions"):
        correct_from_predictions(pred, labels, 6)
    with pytest.raises(ValueError, match=r"labels: expected one per predicted image \(3\)"):
        correct_from_predictions(pred, labels[:2], 1)
