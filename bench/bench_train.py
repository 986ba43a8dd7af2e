"""Training throughput from shards (the harness's input path) against the in-memory ceiling.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_train.py --device cpu --model resnet-tiny --size 32 --batch 128``
     ``PYTHONPATH=. python bench/bench_train.py --device cuda --model resnet50 --size 128 --batch 256``

Both paths run the train loop's own epoch (``harness.classify.train.train_epoch``: the
recipe's rate set every step, ``harness.classify.step.TrainStep``, the loss summed on the
device) on the same images and a model built from the same seed:

* harness: a shard set in a store (a temporary folder unless ``--store``) read by
  ``ShardStream`` (background read-ahead, shuffle buffer, pinned batches on CUDA) and
  ``DevicePrefetcher`` (copies one step ahead), as ``train_loop`` reads it;
* ceiling: the same images already on the device as one uint8 tensor, sliced per step:
  no input pipeline at all.

Each path runs a warm-up epoch of ``--warmup`` steps, then a timed epoch of ``--steps`` steps
(from the stream's start to the last step; the device is synchronised only at the ends); the
paths alternate ``--repeats`` times and the median of each counts. ``--input-size`` trains on
random-resized crops of that size (the ImageNet recipe's augmentation). Besides images per
second of wall time, the script gives images per second of this process's CPU time (all its
threads, the reader's included): on a machine shared with other people's processes that
figure is the steadier one, and on a CPU it is what the input path costs. Prints a Markdown
row and one JSON line of the figures (``harness plan --throughput`` reads it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_set  # noqa: E402

from harness.classify.models import build_model  # noqa: E402
from harness.classify.recipes import resolve_recipe  # noqa: E402
from harness.classify.step import TrainStep  # noqa: E402
from harness.classify.stream import DevicePrefetcher, ShardStream, shard_pieces  # noqa: E402
from harness.classify.train import train_epoch  # noqa: E402
from harness.shards import ShardSet  # noqa: E402
from harness.store import Store  # noqa: E402

Epochs = Callable[[int, int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(args: argparse.Namespace, device: torch.device) -> TrainStep:
    torch.manual_seed(0)
    model = build_model(args.model, 3, args.classes).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    return TrainStep(model, optimizer, device, augment=args.augment, pad=args.pad, input_size=args.input_size,
                     seed=0, compile=args.compile)


def timed(step: TrainStep, epochs: Epochs, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Images per second of wall time and of process CPU time over the second of two epochs
    (``epochs(e, steps)`` gives epoch e's batches)."""
    recipe = resolve_recipe("digits-small", {"batch_size": args.batch})
    total = train_epoch(step, epochs(0, args.warmup), recipe, 0, args.warmup)
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    total += train_epoch(step, epochs(1, args.steps), recipe, 1, args.steps)
    synchronize(device)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if not torch.isfinite(total):
        raise RuntimeError("the loss is not finite")
    n = args.steps * args.batch
    return n / elapsed, n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model", default="resnet-tiny", help="resnet-tiny, resnet56 or resnet50")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--augment", default="crop-flip", choices=("crop-flip", "crop", "none"))
    parser.add_argument("--pad", type=int, default=4)
    parser.add_argument("--input-size", type=int, help="train on random-resized crops of this size")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--store", help="store URI to write the shard set to (default: a temporary folder)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    n = max(args.warmup, args.steps) * args.batch
    with tempfile.TemporaryDirectory() as tmp:
        shards = ShardSet(Store(args.store or tmp), f"bench-train-{args.size}-{n}")
        write_synthetic_set(shards, n, 3, args.size, args.classes, args.shard_size)
        images, labels = shards.read()
        on_device = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
        pieces = shard_pieces([(shards, 1.0)], seed=0)

        def in_memory(epoch: int, steps: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
            for s in range(0, steps * args.batch, args.batch):
                yield on_device[0][s:s + args.batch], on_device[1][s:s + args.batch]

        harness, ceiling = [], []
        for repeat in range(args.repeats):
            ceiling.append(timed(make_step(args, device), in_memory, args, device))
            stream = ShardStream(pieces, args.batch, 0, 1, seed=repeat, pin_memory=device.type == "cuda")

            def streamed(epoch: int, steps: int, stream: ShardStream = stream) -> DevicePrefetcher:
                return DevicePrefetcher(itertools.islice(stream.epoch(epoch), steps), device)

            harness.append(timed(make_step(args, device), streamed, args, device))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    wall = {k: statistics.median(r[0] for r in runs) for k, runs in (("harness", harness), ("ceiling", ceiling))}
    cpu = {k: statistics.median(r[1] for r in runs) for k, runs in (("harness", harness), ("ceiling", ceiling))}
    size = args.input_size or args.size
    result = {"model": args.model, "size": size, "data_size": args.size, "batch": args.batch, "device": args.device,
              "device_name": name, "threads": torch.get_num_threads(), "steps": args.steps, "compile": args.compile,
              "harness_img_s": round(wall["harness"], 1), "ceiling_img_s": round(wall["ceiling"], 1),
              "ratio": round(wall["harness"] / wall["ceiling"], 3),
              "cpu_ratio": round(cpu["harness"] / cpu["ceiling"], 3),
              "harness_runs": [[round(v, 1) for v in r] for r in harness],
              "ceiling_runs": [[round(v, 1) for v in r] for r in ceiling]}
    print("| device | model | size | batch | harness img/s | in-memory ceiling img/s | ratio | ratio per CPU-second |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {args.model} | {size} | {args.batch} | {wall['harness']:,.1f} | {wall['ceiling']:,.1f} | "
          f"{result['ratio']:.2f} | {result['cpu_ratio']:.2f} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
