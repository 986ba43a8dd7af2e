"""Peak resident memory of a training process against the size of its sample set.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_train_memory.py``

Writes two synthetic shard sets of 32×32 RGB images (20,000 and 200,000 by default;
``bench/synthetic.py``, ``--shard-size`` images per shard) into a temporary store, then
trains ``resnet-tiny`` for a fixed ``--steps`` steps on each in a fresh subprocess and
reads that process's peak resident set size (``ru_maxrss``):

* stream: the harness path (``ShardStream`` → ``DevicePrefetcher`` → ``TrainStep``);
* in-memory (with ``--in-memory``): today's path, the whole set read into memory first.

Goal (issue 9): the streamed process's peak grows by at most 25% while the data grows 10×.
Exits with status 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_set  # noqa: E402

from harness.shards import ShardSet  # noqa: E402
from harness.store import Store  # noqa: E402

CLASSES = 10


def child(args: argparse.Namespace) -> None:
    """Train for ``--steps`` steps from the set and print the process's peak RSS as JSON."""
    import torch

    from harness.classify.models import build_model
    from harness.classify.step import TrainStep
    from harness.classify.stream import DevicePrefetcher, ShardStream, shard_pieces

    torch.set_num_threads(1)
    torch.manual_seed(0)
    device = torch.device("cpu")
    shards = ShardSet(Store(args.store), args.folder)
    model = build_model("resnet-tiny", 3, CLASSES).train()
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), device,
                     augment="crop-flip", pad=4)
    if args.mode == "stream":
        stream = ShardStream(shard_pieces([(shards, 1.0)], seed=0), args.batch, 0, 1, seed=0)

        def batches():
            epoch = 0
            while True:
                yield from DevicePrefetcher(stream.epoch(epoch), device)
                epoch += 1
    else:
        images, labels = shards.read()
        images, labels = torch.from_numpy(images), torch.from_numpy(labels)

        def batches():
            while True:
                idx = torch.randint(0, len(labels), (args.batch,))
                yield images[idx], labels[idx]

    total = torch.zeros(())
    started = time.perf_counter()
    for _, (x, y) in zip(range(args.steps), batches(), strict=False):
        total += step(x, y)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - started, "mean_loss": float(total) / args.steps,
                      "images": shards.manifest()["n"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[20_000, 200_000])
    parser.add_argument("--shard-size", type=int, default=5_000)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--in-memory", action="store_true", help="also measure today's whole-set-in-memory path")
    parser.add_argument("--child", choices=("stream", "in-memory"), dest="mode", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        child(args)
        return

    modes = ["stream", "in-memory"] if args.in_memory else ["stream"]
    peaks: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        for n in args.sizes:
            started = time.perf_counter()
            write_synthetic_set(ShardSet(store, f"set-{n}"), n, 3, 32, CLASSES, args.shard_size)
            print(f"wrote {n:,} images in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            for mode in modes:
                out = subprocess.run([sys.executable, __file__, "--child", mode, "--store", tmp, "--folder",
                                      f"set-{n}", "--steps", str(args.steps), "--batch", str(args.batch)],
                                     check=True, capture_output=True, text=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                peaks[mode].append(result["peak_rss_mib"])
                print(f"{mode}: {n:,} images, {args.steps} steps in {result['seconds']:.0f} s, "
                      f"peak RSS {result['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    small, large = args.sizes
    print(f"| path | {small:,} images | {large:,} images | ratio |")
    print("|---|---|---|---|")
    for mode, (low, high) in peaks.items():
        print(f"| {mode} | {low:.0f} MiB | {high:.0f} MiB | {high / low:.2f} |")
    ratio = peaks["stream"][1] / peaks["stream"][0]
    print(json.dumps({"sizes": args.sizes, "shard_size": args.shard_size, "steps": args.steps, "batch": args.batch,
                      "peak_rss_mib": peaks, "stream_ratio": round(ratio, 3)}))
    sys.exit(0 if ratio <= 1.25 else 1)


if __name__ == "__main__":
    main()
