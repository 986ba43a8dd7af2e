"""The ``harness`` command: run a sweep, or one of its stages, from a config file.

Every command loads and checks its config (and what it points at: the store, the data)
before it imports Ray or torch, so a mistake is reported in about a second, with exit
code 2. An interrupted sweep exits with 130 (Ctrl-C) or 143 (SIGTERM) after writing what
finished.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import ConfigError, SweepConfig
from harness.config_file import load_config
from harness.generators import GeneratorError
from harness.kube import commands as kube_commands

if TYPE_CHECKING:
    from harness.classify.recipes import Recipe
    from harness.store import Store


def _store_field(args: argparse.Namespace) -> str:
    """Where the store came from, as messages name it."""
    return "--store" if args.store else "store"


def _load(args: argparse.Namespace) -> tuple[SweepConfig, Recipe]:
    """The config, checked with everything it points at, and its recipe."""
    from harness.preflight import preflight

    config = load_config(args.config, store=args.store)
    return config, preflight(config, args.config, _store_field(args))


def cmd_sweep(args: argparse.Namespace) -> int:
    """The whole sweep: sample, train, aggregate, report."""
    config, _ = _load(args)
    from harness.sweep import SweepInterrupted, run_sweep

    try:
        run, records = run_sweep(config, address=args.address, config_text=Path(args.config).read_text(),
                                 source=args.config, store_field=_store_field(args))
    except KeyboardInterrupt as err:
        print(f"interrupted ({err or 'Ctrl-C'}); what finished is in the run folder's results and report, "
              f"marked incomplete", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(err, SweepInterrupted) else signal.SIGINT)
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        print(f"{len(failed)} of {len(records)} cells failed; their errors are in results.json", file=sys.stderr)
    print(run, flush=True)
    return 1 if failed else 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Only the sampling stage: every sample set of the grid (or of one generator) into the store."""
    config, _ = _load(args)
    from harness import plan
    from harness.sample import run_sampling
    from harness.sweep import prepare

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
    config, recipe = _load(args)
    knobs = _knob_values(args.knob, args.config)
    import json

    from harness import layout, plan
    from harness.classify.grid import run_trials
    from harness.sample import run_sampling
    from harness.sweep import prepare

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
    if cell.sample_sets:
        outcome = run_sampling(list(cell.sample_sets), real, store, config.sampler)
        if outcome.failed:
            print(f"sampling failed: {cell.sampling_error(outcome.failed)}", file=sys.stderr)
            return 1
    result = run_trials([cell], real, store, config, layout.run(f"{config.name}-train"), recipe)[0]
    summary = {k: v for k, v in result.items() if k != "confusion"}
    print(json.dumps({"cell": cell.label, **summary}, indent=2, ensure_ascii=False))
    return 1 if "error" in result else 0


def cmd_plan(args: argparse.Namespace) -> int:
    """What the sweep will do and cost, without Ray: cells, samples, store bytes, steps, GPU-hours. The data
    need not be on this machine (a cluster's store or its own nodes may hold it)."""
    from harness import cost

    bench = cost.read_bench_result(args.throughput) if args.throughput else None
    config = load_config(args.config, store=args.store)
    result = cost.plan_cost(config, args.config, gpus=args.gpus, accelerator=args.accelerator, bench=bench)
    print("\n".join(cost.summary(result)))
    return 0


def _stored_run_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command on stored runs whose errors (a folder that is not a run, a cell name that matches nothing,
    records of another version) are reported as such, exit code 2."""
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (ValueError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return run


@_stored_run_errors
def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild a stored run's report, CSV files and CAS table from its records; nothing is recomputed."""
    from harness.report.aggregate import table_lines
    from harness.report.runs import build_report, load_run, split_run

    store, folder = split_run(args.run)
    rows = build_report(store, folder)
    records, _ = load_run(store, folder)
    print("\n".join([*table_lines(rows, records), "", store.path(folder, "report.html")]), flush=True)
    return 0


@_stored_run_errors
def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Merge every run of a store into leaderboard.html, .md and .csv at the store's root."""
    from harness.report.runs import LEADERBOARD_FILES, write_leaderboard
    from harness.store import Store

    store = Store.open(args.store)
    board = write_leaderboard(store)
    rows = sum(len(t["rows"]) for t in board["tables"])
    print(f"{rows} rows in {len(board['tables'])} protocol tables; {len(board['incomplete'])} incomplete runs "
          f"listed apart", file=sys.stderr)
    print("\n".join(store.path(name) for name in LEADERBOARD_FILES), flush=True)
    return 0


@_stored_run_errors
def cmd_compare(args: argparse.Namespace) -> int:
    """Two cells' Top-1 difference with a paired-bootstrap interval and p-value, McNemar's test for one seed
    each, and the per-class comparison with Benjamini–Hochberg control."""
    from harness.report.compare import (
        cell_label,
        compare,
        comparison_lines,
        correctness,
        parse_cell,
        predictions_of,
        select_cell,
    )
    from harness.report.runs import load_run, shard_labels, split_run

    cells, test_sets = [], []
    default_run = None
    for text in (args.a, args.b):
        run, fields = parse_cell(text)
        run = run or default_run
        if not run:
            raise ValueError(f"{text!r}: name the run folder before '#'")
        default_run = run
        store, folder = split_run(run)
        records, info = load_run(store, folder)
        chosen = select_cell(records, fields, store.path(folder))
        cells.append((store, predictions_of(chosen, store.path(folder)), chosen))
        test_sets.append((info["dataset"], info["test_folder"]))
    if test_sets[0] != test_sets[1]:
        raise ValueError(f"the cells were tested on different test sets ({test_sets[0][1]} and {test_sets[1][1]}): "
                         f"a paired comparison needs the same test images")
    labels = shard_labels(cells[0][0], info["test_folder"])
    correct = [correctness(store, paths, labels) for store, paths, _ in cells]
    result = compare(correct[0], correct[1], labels, len(info["class_names"]), n_boot=args.resamples)
    print("\n".join(comparison_lines(result, cell_label(cells[0][2]), cell_label(cells[1][2]), info["class_names"])))
    return 0


def _open_store(uri: str, what: str) -> Store:
    """A store that exists, for the commands that inspect one."""
    from harness.preflight import check_store
    from harness.store import Store

    if "://" not in uri and not Path(uri).is_dir():
        raise ConfigError(f"{what} {uri!r}: no such folder; give the store of a sweep (its config's store:)")
    check_store(uri, what)
    return Store.open(uri)


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every artefact's checksum in a store; list (or remove) the broken ones."""
    from harness.verify import verify_store

    store = _open_store(args.store, "STORE")
    problems = verify_store(store, remove=args.remove)
    for p in problems:
        print(f"{store.path(p.path)}: {p.reason}")
    if args.remove:
        for artefact in sorted({p.artefact for p in problems}):
            print(f"removed {store.path(artefact)}; the next run that needs it makes it again")
    print(f"{len(problems)} broken file(s) in {store.root}", file=sys.stderr)
    return 1 if problems else 0


def parse_age(text: str) -> float:
    """``90`` (seconds), ``30m``, ``12h``, ``7d`` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected an age such as 90 (seconds), 30m, 12h or 7d, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def cmd_clean(args: argparse.Namespace) -> int:
    """Expire stale leases, mark killed runs incomplete, and (with --runs) remove old incomplete runs."""
    from harness.lease import clean_leases
    from harness.runs import killed_runs, list_runs, remove_run

    store = _open_store(args.store, "STORE")
    for info in clean_leases(store):
        print(f"expired lease {info.describe()}")
    for run in killed_runs(store):
        print(f"marked incomplete: {run.describe()} (its sweep was killed)")
    now = time.time()
    for run in list_runs(store):
        if run.status != "incomplete":
            continue
        old = run.started is None or now - run.started >= args.older_than
        if args.runs and old:
            remove_run(store, run.folder)
            print(f"removed {run.describe(now)}")
        else:
            print(f"incomplete: {run.describe(now)}" + ("" if args.runs else " (--runs removes it)"))
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
    p = sub.add_parser("report", help="rebuild a stored run's report from its records (recomputes nothing)")
    p.add_argument("run", help="run folder (path or URI), <store>/runs/<name>, as `harness sweep` prints it")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("leaderboard", help="merge every run of a store into leaderboard.html/.md/.csv")
    p.add_argument("store", nargs="?", default="store", help="store folder or URI (default: ./store)")
    p.set_defaults(func=cmd_leaderboard)
    p = sub.add_parser("compare", help="compare two cells' Top-1 from their stored predictions")
    for name in ("a", "b"):
        p.add_argument(name, help="RUN#GENERATOR[,KNOB=VALUE][,mode=cas|nas|real][,ratio=R][,seed=S]; "
                       "without a seed every seed is pooled" + ("; '#…' alone means a's run" if name == "b" else ""))
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("verify", help="check the checksums of a store's artefacts; list or remove broken ones")
    p.add_argument("store", nargs="?", default="store", help="store folder or URI (default: ./store)")
    p.add_argument("--remove", action="store_true", help="remove each broken artefact, so the next run remakes it")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("clean", help="expire stale leases, mark killed runs incomplete, remove old incomplete runs")
    p.add_argument("store", nargs="?", default="store", help="store folder or URI (default: ./store)")
    p.add_argument("--runs", action="store_true", help="remove incomplete run folders older than --older-than")
    p.add_argument("--older-than", type=parse_age, default=parse_age("1d"), metavar="AGE",
                   help="with --runs: only runs started at least this long ago, e.g. 12h, 7d (default: 1d)")
    p.set_defaults(func=cmd_clean)
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
