"""The input path alone: our ShardStream against Ray Data over the same shards.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_input.py [--n 40000] [--size 64] [--batch 256]``

Both deliver one epoch of shuffled uint8 batches (torch tensors on the CPU, nothing
trains) from one synthetic shard set (``bench/synthetic.py``) in a temporary local store:

* stream: ``ShardStream`` (shards in a seeded order, read ahead on a thread, shuffle
  buffer of two shards), in this process;
* ray-data: the route Ray Train documents (``ray.train.get_dataset_shard`` hands a worker
  this iterator): ``ray.data.from_items`` of the shard names, ``randomize_block_order``,
  ``map_batches`` reading and decoding one shard per call, then ``iter_torch_batches``
  with a local shuffle buffer of two shards. ``ray.init`` is not timed; the first
  epoch's start-up of Ray Data's executor is. Ray's workers run at the driver's niceness
  (``RAY_worker_niceness=0`` unless set; Ray's default of 15 starves them on a shared machine).

Images per second of wall time, best of ``--repeats`` epochs each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_set  # noqa: E402

from harness.classify.stream import ShardStream, shard_pieces  # noqa: E402
from harness.shards import ShardSet  # noqa: E402
from harness.store import Store  # noqa: E402


def stream_epoch(shards: ShardSet, batch: int, epoch: int) -> int:
    stream = ShardStream(shard_pieces([(shards, 1.0)], seed=0), batch, 0, 1, seed=0)
    return sum(len(y) for _, y in stream.epoch(epoch))


def ray_data_epoch(shards: ShardSet, batch: int, shard_size: int, epoch: int) -> int:
    import numpy as np
    import ray

    entries = {e["name"]: e for e in shards.manifest()["shards"]}

    def read(names: dict) -> dict:
        parts = [shards.read_shard(entries[name]) for name in names["name"]]
        return {"image": np.concatenate([p[0] for p in parts]), "label": np.concatenate([p[1] for p in parts])}

    ds = (ray.data.from_items([{"name": name} for name in entries], override_num_blocks=len(entries))
          .randomize_block_order(seed=epoch).map_batches(read, batch_size=1))
    return sum(len(b["label"]) for b in ds.iter_torch_batches(batch_size=batch, drop_last=True,
                                                              local_shuffle_buffer_size=2 * shard_size))


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=2_000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_worker_niceness", "0")

    rates: dict[str, list[float]] = {"stream": [], "ray-data": []}
    with tempfile.TemporaryDirectory() as tmp:
        shards = ShardSet(Store(tmp), "input")
        write_synthetic_set(shards, args.n, 3, args.size, 10, args.shard_size)
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            for epoch in range(args.repeats):
                for name, run in (("stream", lambda e: stream_epoch(shards, args.batch, e)),
                                  ("ray-data", lambda e: ray_data_epoch(shards, args.batch, args.shard_size, e))):
                    started = time.perf_counter()
                    images = run(epoch)
                    rates[name].append(images / (time.perf_counter() - started))
                    print(f"epoch {epoch} {name}: {images:,} images, {rates[name][-1]:,.0f} img/s", file=sys.stderr)
        finally:
            ray.shutdown()
    print(f"| path | img/s ({args.n:,} images of 3×{args.size}², batch {args.batch}) |")
    print("|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {max(values):,.0f} |")
    print(json.dumps({"n": args.n, "size": args.size, "batch": args.batch, "cpus": args.cpus,
                      "img_s": {k: [round(v) for v in vs] for k, vs in rates.items()}}))


if __name__ == "__main__":
    main()
