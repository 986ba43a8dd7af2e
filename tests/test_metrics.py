"""Tests of the metric functions and statistics against independent references."""

import io
import itertools

import mpmath
import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from sklearn.metrics.pairwise import polynomial_kernel
from torch import nn

from harness.metrics import (
    DomainExtractor,
    FeatureStats,
    extract,
    frechet_distance,
    inception_score,
    kid,
    load_fid_stats,
    precision_recall,
    save_fid_stats,
)


def random_gaussian(rng, d, cond=100.0):
    """A mean and an SPD covariance with eigenvalues spread log-uniformly over ``cond``."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigenvalues = np.logspace(0, np.log10(cond), d) * rng.uniform(0.5, 2.0)
    return rng.standard_normal(d), (q * eigenvalues) @ q.T


def mp_fid(mu1, sigma1, mu2, sigma2, trace_sqrt):
    with mpmath.workdps(50):
        a, b = mpmath.matrix(sigma1.tolist()), mpmath.matrix(sigma2.tolist())
        diff = mpmath.matrix((mu1 - mu2).tolist())
        d = len(mu1)
        value = (diff.T * diff)[0] + sum(a[i, i] + b[i, i] for i in range(d)) - 2 * trace_sqrt(a, b)
        return float(value)


def mp_trace_sqrtm(a, b):
    trace = sum(mpmath.sqrtm(a * b)[i, i] for i in range(a.rows))
    assert abs(mpmath.im(trace)) < 1e-30
    return mpmath.re(trace)


def mp_trace_sqrt_eig(a, b):
    """tr √(AB) as Σ √λ over the eigenvalues of AB; also defined when AB is singular."""
    return mpmath.re(sum(mpmath.sqrt(e) for e in mpmath.eig(a * b, left=False, right=False)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("d", [2, 16, 128])
def test_fid_matches_pytorch_fid(d):
    rng = np.random.default_rng(d)
    mu1, sigma1 = random_gaussian(rng, d)
    mu2, sigma2 = random_gaussian(rng, d)
    expected = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("d", [4, 5, 6])
def test_fid_matches_mpmath_sqrtm(d):
    rng = np.random.default_rng(100 + d)
    mu1, sigma1 = random_gaussian(rng, d)
    mu2, sigma2 = random_gaussian(rng, d)
    expected = mp_fid(mu1, sigma1, mu2, sigma2, mp_trace_sqrtm)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_fid_singular_covariances_match_mpmath():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 6)) * rng.uniform(0.5, 3.0, 6)
    y = rng.standard_normal((5, 6)) + 0.5
    s1, s2 = FeatureStats.from_features(x), FeatureStats.from_features(y)
    assert np.linalg.matrix_rank(s1.cov) == 3
    expected = mp_fid(s1.mean, s1.cov, s2.mean, s2.cov, mp_trace_sqrt_eig)
    assert np.isfinite(s1.fid(s2))
    assert s1.fid(s2) == pytest.approx(expected, rel=1e-6)


def test_fid_exactly_singular_integer_case():
    b = np.array([[1, 0, 2], [0, 1, 1], [3, 1, 0], [1, 1, 1], [0, 2, 1], [2, 0, 1]], dtype=float)
    c = np.array([[1, 1], [0, 1], [2, 0], [1, 3], [1, 0], [0, 1]], dtype=float)
    sigma1, sigma2 = b @ b.T, c @ c.T
    mu1, mu2 = np.arange(6.0), np.ones(6)
    expected = mp_fid(mu1, sigma1, mu2, sigma2, mp_trace_sqrt_eig)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [60, 2000])
def test_fid_identical_sets_is_zero(n):
    rng = np.random.default_rng(n)
    stats = FeatureStats.from_features(rng.gamma(2.0, 0.3, size=(n, 512)))
    value = stats.fid(stats)
    assert abs(value) < 1e-6
    assert value > -1e-9 * np.trace(stats.cov)


def test_fid_singular_scaled_covariance_analytic():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 300)) @ rng.standard_normal((300, 300))
    mu1, sigma1 = x.mean(axis=0), np.cov(x, rowvar=False)
    mu2, scale = mu1 + 0.1, 1.7
    expected = 300 * 0.01 + (1 - scale) ** 2 * np.trace(sigma1)
    assert frechet_distance(mu1, sigma1, mu2, scale**2 * sigma1) == pytest.approx(expected, rel=1e-6)


def test_fid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sigma1 shape"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))


def test_feature_stats_match_numpy():
    x = np.random.default_rng(0).gamma(2.0, 0.3, size=(300, 40))
    stats = FeatureStats.from_features(torch.from_numpy(x).float())
    x32 = x.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean, x32.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x32, rowvar=False), rtol=1e-10, atol=1e-13)
    assert stats.n == 300 and stats.dim == 40


@pytest.mark.parametrize("num_shards", [1, 2, 5])
def test_pooled_shards_equal_one_pass(num_shards):
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 0.3, size=(1000, 64))
    reference = FeatureStats.from_features(rng.gamma(2.0, 0.35, size=(800, 64)))
    one_pass = FeatureStats.from_features(x)
    cuts = np.sort(rng.choice(np.arange(1, len(x)), num_shards - 1, replace=False))
    shards = [FeatureStats.from_bytes(FeatureStats.from_features(s).to_bytes()) for s in np.split(x, cuts)]
    pooled = shards[0]
    for shard in shards[1:]:
        pooled = pooled.merge(shard)
    assert pooled.n == one_pass.n
    np.testing.assert_allclose(pooled.mean, one_pass.mean, rtol=1e-10)
    np.testing.assert_allclose(pooled.cov, one_pass.cov, rtol=1e-10, atol=1e-12)
    assert pooled.fid(reference) == pytest.approx(one_pass.fid(reference), rel=1e-10)


def test_merge_does_not_modify_operands_and_checks_dim():
    a = FeatureStats.from_features(np.ones((3, 4)))
    b = FeatureStats.from_features(np.zeros((2, 4)))
    merged = a.merge(b)
    assert (a.n, b.n, merged.n) == (3, 2, 5)
    np.testing.assert_array_equal(merged.mean, np.full(4, 0.6))
    with pytest.raises(ValueError, match="dim 4 and 5"):
        a.merge(FeatureStats(5))
    with pytest.raises(ValueError, match="features have dim 3"):
        a.update(np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = FeatureStats.from_features(np.ones((1, 4))).cov


def test_feature_stats_serialisation_roundtrips_exactly(tmp_path):
    stats = FeatureStats.from_features(np.random.default_rng(2).standard_normal((50, 8)))
    for copy in (
        FeatureStats.from_bytes(stats.to_bytes()),
        FeatureStats.from_dict(stats.to_dict()),
    ):
        assert copy.n == stats.n
        np.testing.assert_array_equal(copy.sum_x, stats.sum_x)
        np.testing.assert_array_equal(copy.sum_xx, stats.sum_xx)
    path = tmp_path / "stats.npz"
    stats.to_npz(path)
    np.testing.assert_array_equal(FeatureStats.from_npz(path).sum_xx, stats.sum_xx)
    mu, sigma = load_fid_stats(path)
    np.testing.assert_array_equal(mu, stats.mean)
    np.testing.assert_array_equal(sigma, stats.cov)


def test_npz_files_interoperate_with_pytorch_fid_and_adm(tmp_path):
    rng = np.random.default_rng(4)
    stats = FeatureStats.from_features(rng.standard_normal((40, 6)))
    ours = tmp_path / "ours.npz"
    stats.to_npz(ours)
    mu, sigma = compute_statistics_of_path(str(ours), None, 1, 6, "cpu")
    np.testing.assert_array_equal(mu, stats.mean)
    np.testing.assert_array_equal(sigma, stats.cov)

    adm = tmp_path / "adm_reference.npz"
    np.savez(
        adm,
        arr_0=np.zeros((2, 4, 4, 3), np.uint8),
        mu=mu.astype(np.float32),
        sigma=sigma,
        mu_s=np.zeros(3),
        sigma_s=np.eye(3),
    )
    loaded_mu, loaded_sigma = load_fid_stats(adm)
    assert loaded_mu.dtype == np.float64
    assert stats.fid((loaded_mu, loaded_sigma)) == pytest.approx(0.0, abs=1e-5)

    written = io.BytesIO()
    save_fid_stats(written, mu, sigma)
    written.seek(0)
    np.testing.assert_array_equal(load_fid_stats(written)[1], sigma)
    with pytest.raises(ValueError, match="holds no FeatureStats"):
        FeatureStats.from_npz(adm)
    np.savez(tmp_path / "bad.npz", mean=mu)
    with pytest.raises(ValueError, match="bad.npz has no 'mu' and 'sigma'"):
        load_fid_stats(tmp_path / "bad.npz")


def test_inception_score_analytic_cases():
    assert inception_score(np.zeros((100, 1008))) == pytest.approx((1.0, 0.0), abs=1e-12)
    confident = 60.0 * np.eye(10)[np.arange(1000) % 10]
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)
    one_class_per_split = 60.0 * np.eye(10)[np.arange(1000) // 100]
    assert inception_score(one_class_per_split) == pytest.approx((1.0, 0.0), abs=1e-9)


def test_inception_score_uneven_splits_and_errors():
    logits = np.random.default_rng(5).standard_normal((23, 7)) * 3
    mean, std = inception_score(logits, splits=4)
    parts = [logits[i * 23 // 4 : (i + 1) * 23 // 4] for i in range(4)]
    singles = [inception_score(part, splits=1)[0] for part in parts]
    assert (mean, std) == pytest.approx((np.mean(singles), np.std(singles)), rel=1e-12)
    with pytest.raises(ValueError, match="splits must be between 1 and the number of samples"):
        inception_score(logits, splits=24)


def unbiased_mmd2_bruteforce(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(a @ b) / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_on_whole_sets_matches_bruteforce():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((30, 5))
    b = rng.standard_normal((30, 5)) * 1.2 + 0.3
    mean, std = kid(a, b, num_subsets=3, subset_size=1000)
    assert mean == pytest.approx(unbiased_mmd2_bruteforce(a, b), rel=1e-10)
    assert std < 1e-12


@pytest.mark.parametrize("block_elements", [1 << 24, 7 * 150, 1])  # one block; blocks of 7 rows; one row each
def test_kid_subsets_match_sklearn_kernel(block_elements: int, monkeypatch: pytest.MonkeyPatch):
    from harness.metrics import scores

    monkeypatch.setattr(scores, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(8)
    a = rng.standard_normal((120, 16))
    b = rng.standard_normal((150, 16)) + 0.2
    draws = np.random.default_rng(11)
    values = []
    for _ in range(5):
        x = a[draws.choice(120, 50, replace=False)]
        y = b[draws.choice(150, 50, replace=False)]
        kxx, kyy, kxy = (
            polynomial_kernel(p, q, degree=3, gamma=1 / 16, coef0=1) for p, q in ((x, x), (y, y), (x, y))
        )
        values.append(
            (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (50 * 49) - 2 * kxy.mean()
        )
    mean, std = kid(a, b, num_subsets=5, subset_size=50, seed=11)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_is_seeded_and_separates_distributions():
    rng = np.random.default_rng(9)
    a, same, shifted = (rng.standard_normal((600, 32)) + shift for shift in (0.0, 0.0, 0.3))
    assert kid(a, shifted, 20, 200, seed=1) == kid(a, shifted, 20, 200, seed=1)
    assert kid(a, shifted, 20, 200, seed=1) != kid(a, shifted, 20, 200, seed=2)
    kid_same, std_same = kid(a, same, 20, 200)
    kid_shifted, _ = kid(a, shifted, 20, 200)
    assert abs(kid_same) < 3 * std_same
    assert kid_shifted > 10 * abs(kid_same)
    with pytest.raises(ValueError, match="different feature dims: 32 and 3"):
        kid(a, a[:, :3])


def precision_recall_bruteforce(real, fake, k):
    real_radii = np.sort(cdist(real, real, "sqeuclidean"), axis=1)[:, k]
    fake_radii = np.sort(cdist(fake, fake, "sqeuclidean"), axis=1)[:, k]
    precision = (cdist(fake, real, "sqeuclidean") <= real_radii[None, :]).any(axis=1).mean()
    recall = (cdist(real, fake, "sqeuclidean") <= fake_radii[None, :]).any(axis=1).mean()
    return precision, recall


@pytest.mark.parametrize("k, batch_rows", list(itertools.product([1, 3, 5], [None, 7])))
def test_precision_recall_matches_bruteforce(k, batch_rows):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((300, 8))
    fake = rng.standard_normal((250, 8)) * 1.2 + 0.6
    expected = precision_recall_bruteforce(real, fake, k)
    assert 0.05 < expected[0] < 0.97 and 0.05 < expected[1] < 0.97
    assert precision_recall(real, fake, k=k, batch_rows=batch_rows) == expected


def test_precision_recall_extremes_and_errors():
    rng = np.random.default_rng(10)
    real = rng.standard_normal((50, 4))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="k=3 with 50 real and 3 fake"):
        precision_recall(real, real[:3])


class TinyDigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 32),
            nn.ReLU(),
        )
        self.head = nn.Linear(32, 10)

    def features(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def digits_uint8():
    images = load_digits().images[:200]
    return torch.from_numpy(np.round(images * 255 / 16).astype(np.uint8))[:, None]


def test_domain_extractor_is_batch_size_independent(digits_uint8):
    torch.manual_seed(0)
    net = TinyDigitsNet().eval()
    extractor = DomainExtractor(net.features, net.head, lambda x: x.float() / 255, name="tiny")
    runs = {bs: extract(digits_uint8, extractor, batch_size=bs) for bs in (1, 7, 64)}
    assert set(runs[64]) == set(DomainExtractor.provides) == {"features", "logits"}
    features, logits = runs[64]["features"], runs[64]["logits"]
    assert features.shape == (200, 32) and logits.shape == (200, 10)
    assert features.dtype == np.float64
    with torch.no_grad():
        direct = net.features(digits_uint8.float() / 255).double().numpy()
    np.testing.assert_allclose(features, direct, rtol=1e-5, atol=1e-6)
    reference = FeatureStats.from_features(features[:100])
    fids = []
    for bs in (1, 7):
        np.testing.assert_allclose(runs[bs]["features"], features, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(runs[bs]["logits"], logits, rtol=1e-5, atol=1e-6)
        fids.append(FeatureStats.from_features(runs[bs]["features"][100:]).fid(reference))
    assert fids == pytest.approx([FeatureStats.from_features(features[100:]).fid(reference)] * 2, rel=1e-5)


def test_extract_rejects_training_mode_and_bad_input(digits_uint8):
    net = TinyDigitsNet()
    extractor = DomainExtractor(net.features, net.head, lambda x: x.float() / 255, name="tiny")
    with pytest.raises(ValueError, match="features_fn is in training mode"):
        extract(digits_uint8, extractor)
    net.eval()
    with pytest.raises(ValueError, match="uint8 torch.Tensor"):
        extract(digits_uint8.float(), extractor)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        extract(digits_uint8, extractor, batch_size=0)
    with pytest.raises(ValueError, match=r"expected \(5, dim\)"):
        extract(digits_uint8[:5], lambda x: {"features": x.float()})
    with pytest.raises(ValueError, match="expected a dict of named outputs"):
        extract(digits_uint8[:5], lambda x: (x.float().flatten(1), x.float().flatten(1)))
    changing = iter([{"features": torch.zeros(2, 3)}, {"logits": torch.zeros(2, 3)}])
    with pytest.raises(ValueError, match=r"expected a dict of named outputs \['features'\] for every batch"):
        extract(digits_uint8[:4], lambda x: next(changing), batch_size=2)
