"""Time harness.metrics.frechet_distance against the scipy.linalg.sqrtm formula at FID size.

The sqrtm variant is pytorch-fid's computation (sqrtm of Σ1Σ2, real part, trace).
Both run on the same float64 covariances in the same process, alternating, and
the best of ``--repeats`` runs of each is compared (the minimum is the run least
disturbed by other load). ``--threads`` caps the BLAS/LAPACK threads of both.

    .venv/bin/python bench/bench_fid.py [--dim 2048] [--samples 4096] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy
import scipy.linalg
from threadpoolctl import threadpool_info, threadpool_limits

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


def timed(fn, *args) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, result); CPU time is less disturbed by other load."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: library default)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mu1, sigma1 = gaussian(rng, args.dim, args.samples)
    mu2, sigma2 = gaussian(rng, args.dim, args.samples)
    inputs = (mu1, sigma1, mu2, sigma2)
    ours, theirs = [], []
    load_before = f"{os.getloadavg()[0]:.2f}"
    with threadpool_limits(limits=args.threads, user_api="blas"):
        threads = sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})
        for _ in range(args.repeats):
            ours.append(timed(frechet_distance, *inputs))
            theirs.append(timed(sqrtm_fid, *inputs))
    t_ours, t_sqrtm = min(t[0] for t in ours), min(t[0] for t in theirs)
    cpu_ours, cpu_sqrtm = min(t[1] for t in ours), min(t[1] for t in theirs)
    fid_ours, fid_sqrtm = ours[0][2], theirs[0][2]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, BLAS threads {threads}; "
        f"numpy {np.__version__}, scipy {scipy.__version__}"
    )
    print(f"d = {args.dim}, covariances from {args.samples} samples, best of {args.repeats}")
    print(f"load average before: {load_before}, after: {os.getloadavg()[0]:.2f}")
    print(f"frechet_distance:        wall {t_ours:7.3f} s  CPU {cpu_ours:7.3f} s   FID {fid_ours:.10f}")
    print(f"scipy.linalg.sqrtm:       wall {t_sqrtm:7.3f} s  CPU {cpu_sqrtm:7.3f} s   FID {fid_sqrtm:.10f}")
    print(
        f"speed-up: wall {t_sqrtm / t_ours:.1f}x, CPU {cpu_sqrtm / cpu_ours:.1f}x; "
        f"relative difference {abs(fid_ours - fid_sqrtm) / fid_sqrtm:.1e}"
    )


if __name__ == "__main__":
    main()
