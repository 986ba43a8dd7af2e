"""Wall time of the quickstart sweep (`make sweep`) from an empty store, after install.

Runs `harness sweep configs/quickstart.yaml` in a fresh process against a temporary store,
then once more against the same store (everything reused), and prints both times, the cold
run's time per stage and when each started (from its run.json; sampling and training
overlap), the share of the wall outside the train stage (process start-up and imports
included), how long each generator took to prepare (the embedded ones are trained there),
each cell's training time with their sum spread over the CPUs, and the CAS table.
Usage: .venv/bin/python bench/bench_quickstart.py [CONFIG]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.report.provenance import stage_wall

ROOT = Path(__file__).resolve().parents[1]


def run(config: Path, store: str) -> tuple[float, Path, str]:
    """Wall seconds, run folder and standard output (the CAS table) of one sweep."""
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "harness"), "sweep", str(config), "--store", store],
                          cwd=ROOT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, Path(proc.stdout.strip().splitlines()[-1]), proc.stdout


def main() -> None:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "configs" / "quickstart.yaml"
    with tempfile.TemporaryDirectory() as store:
        cold, run_dir, table = run(config, store)
        warm, _, _ = run(config, store)
        records = json.loads((run_dir / "results.json").read_text())
        info = json.loads((run_dir / "run.json").read_text())
        stages, prepared = info["stage_seconds"], info["sampling"]["generator_prepare_seconds"]
    starts = info["stage_starts"]
    wall = stage_wall(stages, starts)
    print(f"machine: {os.cpu_count()} CPUs")
    print(f"{config.name}: empty store {cold:.0f} s; everything reused {warm:.0f} s")
    print("empty store, per stage (sample and train overlap: trials start as their data is whole):")
    for name, seconds in sorted(stages.items(), key=lambda item: starts[item[0]]):
        print(f"  {name:<9} from {starts[name]:5.1f} s  {seconds:6.1f} s  {100 * seconds / cold:3.0f}%")
    print(f"  {'start-up':<9} {cold - wall:6.1f} s  (process start, imports and exit; outside the stages)")
    outside = cold - stages["train"]
    print(f"outside training: {outside:.0f} s of {cold:.0f} s, {100 * outside / cold:.0f}%")
    print("  generators' preparation, inside the sample stage (the embedded ones trained): "
          + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in prepared.items()))
    trained = [r["train_seconds"] for r in records if "train_seconds" in r]
    lanes = min(os.cpu_count() or 1, len(trained))
    print(f"training per cell: {', '.join(f'{t:.0f} s' for t in trained)}; {sum(trained):.0f} s in all, "
          f"{sum(trained) / lanes:.0f} s on {lanes} CPUs at once: {100 * sum(trained) / lanes / cold:.0f}% of the wall")
    print("the CAS table of the empty-store run:")
    print(table.rstrip().rsplit("\n", 1)[0])


if __name__ == "__main__":
    main()
