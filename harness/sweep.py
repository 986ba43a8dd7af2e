"""The sweep, start to end: prepare → plan → sample → train → measure → report.

Each stage lives in its own module; this one only puts them in order. Everything a config
can get wrong is found by :func:`harness.plan.check` before data is read or Ray starts.
"""

from __future__ import annotations

import time
from typing import Any

from harness import layout, plan
from harness.config import SweepConfig
from harness.cost import plan_lines
from harness.data import RealData, materialize
from harness.progress import status
from harness.ray_env import check_store_reach, connect
from harness.store import Store


def prepare(config: SweepConfig, address: str | None) -> tuple[Store, RealData]:
    """What every stage starts from: the store (checked to reach every node), Ray, the real data."""
    store = Store.open(config.store)
    connect(address)
    check_store_reach(store)
    return store, materialize(config.dataset, store, config.sampler.shard_size)


def run_sweep(config: SweepConfig, address: str | None = None, config_text: str | None = None,
              source: str = "config") -> tuple[str, list[dict[str, Any]]]:
    """Run a whole sweep; returns the URI of the run folder holding results and report, and the records.

    ``source`` names the config file in error messages."""
    from harness.classify.grid import run_trials
    from harness.metrics.sets import measure
    from harness.report import write_report
    from harness.report.records import RunContext, make_record
    from harness.sample import run_sampling

    started = lap = time.monotonic()
    stage_seconds: dict[str, float] = {}

    def stage_done(name: str) -> None:
        nonlocal lap
        stage_seconds[name], lap = time.monotonic() - lap, time.monotonic()

    recipe = plan.check(config, source)
    status("\n".join(plan_lines(config, source)))
    store, real = prepare(config, address)
    run_folder = layout.run(config.name)
    if config_text is not None:
        store.write_text(config_text, run_folder, "config.yaml")
    cells = plan.plan_cells(config, real)
    stage_done("prepare")
    sampling = run_sampling(plan.sample_sets(cells), real, store, config.sampler)
    stage_done("sample")
    trainable = [c for c in cells if c.sample_set is None or c.sample_set.key not in sampling.failed]
    trained = iter(run_trials(trainable, real, store, config, run_folder, recipe))
    results = [next(trained) if c in trainable else {"error": sampling.failed[c.sample_set.key]} for c in cells]
    stage_done("train")
    metrics = measure(config, real, store, cells, results, recipe)
    stage_done("measure")
    context = RunContext(dataset=real.key, recipe_name=config.classifier.recipe, recipe=recipe)
    records = [make_record(c, r, metrics.get(c.sample_set.folder if c.sample_set else real.val.folder, {}),
                           context).to_dict() for c, r in zip(cells, results, strict=True)]
    write_report(store, run_folder, records, real, elapsed=time.monotonic() - started)
    stage_done("report")
    status(stage_table(stage_seconds, records))
    return store.path(run_folder), records


def stage_table(stage_seconds: dict[str, float], records: list[dict[str, Any]]) -> str:
    """Wall seconds per stage, and the trials' own training time (their train loops, summed)."""
    total = sum(stage_seconds.values())
    lines = [f"{'stage':<8} {'seconds':>8} {'share':>6}"]
    lines += [f"{name:<8} {s:>8.1f} {s / total:>6.0%}" for name, s in stage_seconds.items()]
    trained = sum(r.get("train_seconds") or 0 for r in records)
    return "\n".join([*lines, f"{'total':<8} {total:>8.1f}", f"(trials' train loops: {trained:.1f} s summed)"])
