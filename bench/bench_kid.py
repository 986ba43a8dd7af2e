"""KID: the harness's whole-set kernel sums against three m × m kernels per subset.

Run: ``.venv/bin/python bench/bench_kid.py [--rows 1437] [--dim 64] [--device cpu]``

Both estimate the same unbiased MMD² on the same 100 subsets of 1,000 rows (drawn as
``harness.metrics.scores.kid`` draws them) of two random float64 feature sets of
``--rows`` × ``--dim``: the per-subset way (as torch-fidelity and the harness before it
compute KID) builds k(x, x), k(y, y) and k(x, y) for every subset; ``kid`` builds the
kernel between the whole sets once and reads each subset's sums off it. Defaults: the
quickstart's domain features (1,437 rows of 64); ``--rows 10000 --dim 2048`` is
``metrics.max_samples`` of Inception features. Best of ``--repeats``, alternating.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.metrics.scores import kid


def kid_per_subset(a: torch.Tensor, b: torch.Tensor, num_subsets: int = 100, subset_size: int = 1000,
                   seed: int = 0) -> tuple[float, float]:
    m = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    dim = a.shape[1]
    values = []
    for _ in range(num_subsets):
        x = a[torch.from_numpy(rng.choice(len(a), m, replace=False)).to(a.device)]
        y = b[torch.from_numpy(rng.choice(len(b), m, replace=False)).to(b.device)]
        k_xx = (x @ x.T / dim + 1) ** 3
        k_yy = (y @ y.T / dim + 1) ** 3
        k_xy = (x @ y.T / dim + 1) ** 3
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        values.append((within - 2 * k_xy.sum() / (m * m)).item())
    return float(np.mean(values)), float(np.std(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1437)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((args.rows, args.dim))).to(args.device)
    b = torch.from_numpy(rng.random((args.rows, args.dim)) + 0.01).to(args.device)
    times: dict[str, list[float]] = {"per subset": [], "kid": []}
    results = {}
    for _ in range(args.repeats):
        for name, fn in (("per subset", kid_per_subset), ("kid", kid)):
            started = time.perf_counter()
            results[name] = fn(a, b, device=args.device) if fn is kid else fn(a, b)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    gap = abs(results["kid"][0] - results["per subset"][0]) / abs(results["per subset"][0])
    print("| rows × dim | device | torch threads | per subset | kid | speed-up | relative difference of the means |")
    print("|---|---|---|---|---|---|---|")
    slow, fast = min(times["per subset"]), min(times["kid"])
    print(f"| {args.rows:,} × {args.dim} | {args.device} | {torch.get_num_threads()} | {slow:.2f} s | {fast:.2f} s "
          f"| {slow / fast:.1f}× | {gap:.1e} |")


if __name__ == "__main__":
    main()
