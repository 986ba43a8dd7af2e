"""Time harness.metrics.frechet_distance against the scipy.linalg.sqrtm formula at FID size.

The sqrtm variant is pytorch-fid's computation (sqrtm of Σ1Σ2, real part, trace).
Both run on the same float64 covariances in the same process, alternating, and
the best of ``--repeats`` runs of each is compared.

    .venv/bin/python bench/bench_fid.py [--dim 2048] [--samples 4096] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy
import scipy.linalg

from harness.metrics import frechet_distance


def sqrtm_fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    diff = mu1 - mu2
    trace_sqrt = np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2)).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def gaussian(rng: np.random.Generator, dim: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of non-negative, correlated features (like Inception pool3)."""
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    x = np.maximum(rng.standard_normal((samples, dim)) @ mixing + 0.5, 0.0)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def timed(fn, *args) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mu1, sigma1 = gaussian(rng, args.dim, args.samples)
    mu2, sigma2 = gaussian(rng, args.dim, args.samples)
    inputs = (mu1, sigma1, mu2, sigma2)
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(timed(frechet_distance, *inputs))
        theirs.append(timed(sqrtm_fid, *inputs))
    t_ours, fid_ours = min(ours)
    t_sqrtm, fid_sqrtm = min(theirs)

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs; "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )
    print(f"d = {args.dim}, covariances from {args.samples} samples, best of {args.repeats}")
    print(f"frechet_distance (eigh):  {t_ours:8.3f} s   FID {fid_ours:.10f}")
    print(f"scipy.linalg.sqrtm:       {t_sqrtm:8.3f} s   FID {fid_sqrtm:.10f}")
    print(f"speed-up: {t_sqrtm / t_ours:.1f}x   relative difference {abs(fid_ours - fid_sqrtm) / fid_sqrtm:.1e}")


if __name__ == "__main__":
    main()
