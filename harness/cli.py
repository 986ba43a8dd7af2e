"""The ``harness`` command: run a sweep, or one of its stages, from a config file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness import layout, plan
from harness.config import ConfigError, SweepConfig, load_config
from harness.generators import GeneratorError
from harness.kube import commands as kube_commands


def _load(args: argparse.Namespace) -> SweepConfig:
    return load_config(args.config, store=args.store)


def cmd_sweep(args: argparse.Namespace) -> int:
    """The whole sweep: sample, train, aggregate, report."""
    from harness.sweep import run_sweep

    config = _load(args)
    run, records = run_sweep(config, address=args.address, config_text=Path(args.config).read_text(),
                             source=args.config)
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        print(f"{len(failed)} of {len(records)} cells failed; their errors are in results.json", file=sys.stderr)
    print(run, flush=True)
    return 1 if failed else 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Only the sampling stage: every sample set of the grid (or of one generator) into the store."""
    from harness.sample import run_sampling
    from harness.sweep import prepare

    config = _load(args)
    plan.check(config, args.config)
    store, real = prepare(config, args.address)
    cells = [c for c in plan.plan_cells(config, real) if c.sample_set and args.generator in (None, c.generator)]
    if args.generator and not cells:
        raise ConfigError(f"{args.config}: no generator named {args.generator!r} with samples to draw")
    sets = plan.sample_sets(cells)
    outcome = run_sampling(sets, real, store, config.sampler)
    for s in sets:
        status = f"FAILED: {outcome.failed[s.key]}" if s.key in outcome.failed else "complete"
        print(f"{s.label}: {store.path(s.folder)} ({status})")
    return 1 if outcome.failed else 0


def _knob_values(pairs: list[str], config_path: str) -> dict[str, float]:
    knobs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            knobs[name] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"{config_path}: --knob expects NAME=NUMBER, got {pair!r}")
    return knobs


def cmd_train(args: argparse.Namespace) -> int:
    """One cell: sample if needed, train and test its classifier, print the result."""
    import json

    from harness.classify.grid import run_trials
    from harness.sample import run_sampling
    from harness.sweep import prepare

    config = _load(args)
    recipe = plan.check(config, args.config)
    knobs = _knob_values(args.knob, args.config)
    store, real = prepare(config, args.address)
    ratio = args.ratio or None
    cells = [c for c in plan.plan_cells(config, real)
             if c.generator == args.generator and c.seed == args.seed and c.augmentation_ratio == ratio
             and all(c.knobs.get(name) == value for name, value in knobs.items())]
    if not cells:
        raise ConfigError(f"{args.config}: no grid cell for generator {args.generator!r}, knobs {knobs or '-'}, "
                          f"seed {args.seed}, ratio {args.ratio}; see the config's generators, seeds and "
                          f"augmentation_ratios")
    cell = cells[0]
    if cell.sample_set:
        outcome = run_sampling([cell.sample_set], real, store, config.sampler)
        if outcome.failed:
            print(f"sampling failed: {outcome.failed[cell.sample_set.key]}", file=sys.stderr)
            return 1
    result = run_trials([cell], real, store, config, layout.run(f"{config.name}-train"), recipe)[0]
    summary = {k: v for k, v in result.items() if k != "confusion"}
    print(json.dumps({"cell": cell.label, **summary}, indent=2, ensure_ascii=False))
    return 1 if "error" in result else 0


def cmd_plan(args: argparse.Namespace) -> int:
    """What the sweep will do and cost, without Ray: cells, samples, store bytes, steps, GPU-hours."""
    from harness import cost

    bench = cost.read_bench_result(args.throughput) if args.throughput else None
    result = cost.plan_cost(_load(args), args.config, gpus=args.gpus, accelerator=args.accelerator, bench=bench)
    print("\n".join(cost.summary(result)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Classification Accuracy Score harness "
                                     "(Ravuri & Vinyals 2019) for class-conditional generators.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="sweep YAML file (see configs/)")
        p.add_argument("--store", help="store folder or URI (s3://, gs://); overrides the config's store")
        p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")

    p = sub.add_parser("sweep", help="run the whole sweep: sample, train, report")
    common(p)
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("plan", help="what the sweep will do and cost (no Ray): cells, samples, bytes, GPU-hours")
    p.add_argument("config", help="sweep YAML file (see configs/)")
    p.add_argument("--store", help="store folder or URI whose manifests give the data's size, if it holds them")
    p.add_argument("--gpus", type=int, help="GPUs to estimate the wall time on (default: one trial's workers)")
    p.add_argument("--accelerator", default="a100", help="GPU of the built-in throughput figures: a100 or v100")
    p.add_argument("--throughput", metavar="FILE", help="a bench/bench_train.py result to take the throughput from")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("sample", help="draw the sample sets into the store")
    common(p)
    p.add_argument("--generator", help="only this generator (by name)")
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("train", help="train and test the classifier of one grid cell")
    common(p)
    p.add_argument("--generator", required=True, help="generator name")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="a knob value of the cell, e.g. truncation=0.5 (default: the generator's first setting)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ratio", type=float, default=0.0, help="NAS augmentation ratio (default: CAS)")
    p.set_defaults(func=cmd_train)
    kube_commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, GeneratorError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
