"""The sweep, start to end: prepare → plan → sample and train → measure → report.

Each stage lives in its own module; this one only puts them in order. Sampling runs in a
thread of its own while the grid trains: each cell's trial starts once its training data is
whole (the Real cells at once, a generator's cells when its sets are drawn). Everything a config
can get wrong is found by :func:`harness.preflight.preflight` before data is read or Ray
starts. A sweep interrupted (Ctrl-C, SIGTERM) or failing part-way still writes results and
a report for what finished, and its ``run.json`` says ``incomplete`` and at which stage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from harness import layout, plan
from harness.config import SweepConfig
from harness.data import RealData, materialize
from harness.data.readers import cas_split_name, dataset_spec
from harness.lease import Lease
from harness.progress import format_seconds, status
from harness.ray_env import check_store_reach, connect, trial_needs
from harness.runs import finish_run, killed_runs, read_state, set_stage, start_run
from harness.shards import MANIFEST, ShardSet
from harness.store import Store
from harness.verify import repair_shard_set

if TYPE_CHECKING:
    from harness.sample import SamplingOutcome, SetsReady


#: How long an interrupted sweep waits for its sampling thread to release its actors.
STOP_WAIT_S = 30.0


class SweepInterrupted(KeyboardInterrupt):
    """SIGTERM, raised in the sweep's main thread as Ctrl-C raises KeyboardInterrupt."""


@contextlib.contextmanager
def interruptible(caught: list[str]) -> Iterator[None]:
    """SIGTERM stops the sweep the way Ctrl-C does (its name is appended to ``caught``:
    Ray may turn the exception into a bare KeyboardInterrupt), and Tune leaves Ctrl-C to
    the sweep (its own handler would end the grid quietly and let the sweep go on).
    Entered after Ray is connected: ``ray.init`` installs a SIGTERM handler of its own."""
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        caught.append(signal.Signals(signum).name)
        raise SweepInterrupted(f"stopped by {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class InBackground:
    """Sampling in a thread of its own while the block trains: ``result()`` waits for it and returns its
    outcome or raises its error. Leaving the block early (an error, Ctrl-C) asks it to stop and waits up
    to ``STOP_WAIT_S`` for its actors to be released; either way its sets are marked ended."""

    def __init__(self, work: Callable[[], SamplingOutcome], ready: SetsReady) -> None:
        self.work, self.ready = work, ready
        self.outcome: SamplingOutcome | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sampling", daemon=True)

    def _run(self) -> None:
        try:
            self.outcome = self.work()
        except BaseException as err:  # noqa: BLE001 - handed to the sweep's thread by result()
            self.error = err
        finally:
            self.ready.end()  # also when sampling failed: no trial waits for it any longer

    def __enter__(self) -> InBackground:
        self.thread.start()
        return self

    def result(self) -> SamplingOutcome:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> None:
        if err is not None:
            self.ready.stop.set()
            self.thread.join(STOP_WAIT_S)


def real_data(config: SweepConfig, store: Store) -> RealData:
    """The real dataset's splits in the store. A reused split is checked shard by shard and
    made again when broken; one sweep at a time makes them, others wait and reuse."""
    key = layout.content_key(dataset_spec(config.dataset))
    folders = [layout.dataset_split(key, split) for split in ("train", "val")]
    for folder in folders:
        repair_shard_set(ShardSet(store, folder))
    with Lease.acquire_or_wait(store, f"datasets/{key}", done=lambda: all(store.exists(f, MANIFEST) for f in folders)):
        return materialize(config.dataset, store, config.sampler.shard_size)


def prepare(config: SweepConfig, address: str | None) -> tuple[Store, RealData]:
    """What every stage starts from: the store (checked to reach every node), Ray, the real data."""
    store = Store.open(config.store)
    connect(address)
    check_store_reach(store)
    return store, real_data(config, store)


def finished_results(cells: list[plan.Cell], real: RealData, store: Store, recipe: Any,
                     reason: str) -> list[dict[str, Any]]:
    """Each cell's trial result where one is in the store, else an error saying why it is missing."""
    out = []
    for cell in cells:
        folder = layout.trial(cell.trial_key(real, recipe))
        try:
            out.append(store.read_json(folder, layout.TRIAL_RESULT))
        except (FileNotFoundError, ValueError):
            out.append({"error": f"not finished: {reason}"})
    return out


def run_sweep(config: SweepConfig, address: str | None = None, config_text: str | None = None,
              source: str = "config", store_field: str = "store") -> tuple[str, list[dict[str, Any]]]:
    """Run a whole sweep; returns the URI of the run folder holding results and report, and the records.

    ``source`` names the config file and ``store_field`` where its store came from
    (``store`` or ``--store``) in error messages."""
    from harness.classify.grid import run_trials
    from harness.cost import plan_lines
    from harness.metrics.sets import measure
    from harness.preflight import preflight
    from harness.report.provenance import stage_wall
    from harness.report.records import RunContext, make_record
    from harness.report.runs import StageTimer, describe_run, run_info, stage_table, store_keys, write_report
    from harness.sample import SetsReady, run_sampling

    timer = StageTimer()
    with timer.stage("prepare"):
        recipe = preflight(config, source, store_field)
        status("\n".join(plan_lines(config, source)))
    store = Store.open(config.store)
    for run in killed_runs(store):
        status(f"[runs] {run.folder}: its sweep was killed at stage {run.stage}; marked incomplete")
    run_folder, lease = start_run(store, layout.run(config.name))
    if config_text is not None:
        store.write_text(config_text, run_folder, "config.yaml")
    stage, real, cells, results, metrics, sampling = "prepare", None, [], None, {}, None
    sampling_failed: dict[str, str] = {}
    caught: list[str] = []

    def records(reason: str | None) -> list[dict[str, Any]]:
        assert real is not None
        done = results if results is not None else finished_results(cells, real, store, recipe, reason or "")
        context = RunContext(dataset=real.key, recipe_name=config.classifier.recipe, recipe=recipe,
                             test_split=cas_split_name(config.dataset))
        return [make_record(c, {"error": c.sampling_error(sampling_failed)} if c.sampling_error(sampling_failed) else r,
                            metrics.get(c.sample_set.folder if c.sample_set else real.val.folder, {}),
                            context).to_dict() for c, r in zip(cells, done, strict=True)]

    def report(reason: str | None) -> list[dict[str, Any]]:
        done = records(reason)
        info = describe_run(run_info(store, run_folder, config, real), store, done, config, config_text or "",
                            store_keys(real, cells, recipe), timer.seconds, timer.starts)
        with timer.stage("report"):
            write_report(store, run_folder, done, info)
        return done

    def mark(name: str) -> None:
        nonlocal stage
        stage = name
        set_stage(store, run_folder, name)

    def enter(name: str) -> Any:
        mark(name)
        return timer.stage(name)

    try:
        with enter("prepare"):
            connect(address)
        with interruptible(caught):
            with timer.stage("prepare"):
                check_store_reach(store)
                real = real_data(config, store)
                cells = plan.plan_cells(config, real)
            sets, ready = plan.sample_sets(cells), SetsReady()
            # A cell with no samples to wait for (Real) trains while sampling runs: sampling leaves it room.
            untrained = [c for c in cells if not store.exists(layout.trial(c.trial_key(real, recipe)),
                                                              layout.TRIAL_RESULT)]
            reserve = trial_needs(config.classifier) if any(not c.sample_sets for c in untrained) else None

            def sample() -> SamplingOutcome:
                with timer.stage("sample"):
                    outcome = run_sampling(sets, real, store, config.sampler, ready, reserve)
                mark("train")
                return outcome

            mark("sample")
            with timer.stage("train"), InBackground(sample, ready) as background:
                results = run_trials(cells, real, store, config, run_folder, recipe, ready.cell)
                outcome = background.result()
            sampling_failed, sampling = outcome.failed, outcome.times.to_dict(sets)
            with enter("features"):
                metrics = measure(config, real, store, cells, results, recipe)
            stage = "report"
            set_stage(store, run_folder, stage)
            earlier = read_state(store, run_folder)
            done = report(None)
            finish_run(store, run_folder, lease, earlier=earlier, stage_seconds=timer.seconds,
                       stage_starts=timer.starts, sampling=sampling)
            status("\n".join(["", *stage_table(timer.seconds, timer.starts)]))
            status(f"sweep finished in {format_seconds(stage_wall(timer.seconds, timer.starts))}; results, report "
                   f"and config in:")
            return store.path(run_folder), done
    except BaseException as err:
        if caught:
            reason = f"the sweep was stopped by {caught[0]} during {stage}"
        elif isinstance(err, KeyboardInterrupt | SystemExit):
            reason = f"the sweep was interrupted during {stage}"
        else:
            reason = f"the sweep was stopped by an error during {stage} ({type(err).__name__}: {err})"
        status(f"[sweep] {reason}; writing what finished to {store.path(run_folder)}")
        earlier = read_state(store, run_folder)
        try:
            if real is not None and stage != "report":
                report(reason)
        finally:
            finish_run(store, run_folder, lease, stage=stage, reason=reason, earlier=earlier,
                       stage_seconds=timer.seconds, stage_starts=timer.starts, sampling=sampling)
        if caught and not isinstance(err, SweepInterrupted):
            raise SweepInterrupted(reason) from err
        raise
