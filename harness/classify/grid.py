"""The Tune grid: one trial per grid cell, each training and testing one classifier.

A cell whose result is already in the store (and matches its checksum, as does its model)
is not trained again, so an interrupted sweep resumes where it stopped. Each trial writes
its result (and, for cells trained on real data, the model the domain extractor uses)
under the cell's trial key, with checksums. A sweep takes a lease on each trial it runs,
so a concurrent sweep of the same store waits for it and reuses the result. A trial that
runs past ``classifier.trial_timeout_s`` is stopped and its cell fails. Trials start as their
training data becomes whole (``ready``), so the grid can train while sampling goes on.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ray import tune
from ray.tune import Callback
from ray.tune.search import Searcher

from harness import layout
from harness.classify.recipes import Recipe
from harness.classify.train import TrainTask, train_classifier
from harness.config import SweepConfig
from harness.data import RealData
from harness.lease import in_turns
from harness.plan import Cell
from harness.progress import Progress, format_seconds, status
from harness.ray_env import error_text, max_concurrent_trials, trial_resources
from harness.store import Store
from harness.verify import read_trusted, remove_checked, seal, write_checked

#: How often the grid says which trials are still training.
HEARTBEAT_S = 30.0


class TrialTimeout(RuntimeError):
    """A trial still training after ``classifier.trial_timeout_s``."""


def _within(seconds: float | None, label: str, work: Any) -> Any:
    """``work()``, or TrialTimeout once it has run ``seconds``; the trial's process, stopped
    by Tune when the trial fails, ends the work left behind."""
    if seconds is None:
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as err:  # noqa: BLE001 - handed to the trial's thread below
            outcome["error"] = err

    thread = threading.Thread(target=run, name="trial", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TrialTimeout(f"trial {label!r} was still training after {format_seconds(seconds)} "
                           f"(classifier.trial_timeout_s = {seconds:g}); stopped")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _trial(params: dict[str, Any]) -> None:
    """One Tune trial: train and test one cell's classifier, keep the result in the store."""
    params = params["cell"]
    task: TrainTask = params["task"]
    result = _within(params["timeout_s"], task.label,
                     lambda: train_classifier(task, params["num_workers"], params["cpus_per_worker"],
                                              params["storage_path"], params["resources_per_worker"]))
    store = Store(task.store)
    if result.get("model"):
        seal(store, result["model"])
    write_checked(store, json.dumps(result, indent=2, sort_keys=True).encode(), params["result_path"],
                  layout.TRIAL_RESULT)
    tune.report({"top1": result["top1"], "top5": result["top5"]})


class TrialProgress(Callback):
    """Prints trials done of total, rate, time left, and each trial's Top-1 as it lands;
    every ``HEARTBEAT_S`` seconds without news, which trials are training and for how long."""

    def __init__(self, total: int) -> None:
        self.progress = Progress("train", total=total, unit="trials", interval=0)
        self.last = time.monotonic()
        self.started: dict[str, float] = {}

    def left_out(self, label: str) -> None:
        """A cell that will not train (its sample set was not made): one trial fewer to wait for."""
        self.progress.total -= 1
        status(f"[train] {label}: left out, its sample set was not made")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_S:
            return
        self.last = now
        running = [f"{t.config['cell']['task'].label} ({format_seconds(now - self.started[t.trial_id])})"
                   for t in trials if t.trial_id in self.started and t.status == "RUNNING"]
        status(self.progress.line(note="training " + ", ".join(running) if running else "waiting for resources"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.last = time.monotonic()
        top1 = trial.last_result.get("top1", float("nan"))
        self.progress.advance(note=f"{trial.config['cell']['task'].label}: top1 {top1:.3f}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.last = time.monotonic()
        self.progress.advance(note=f"{trial.config['cell']['task'].label}: FAILED")


class CellsAsReady(Searcher):
    """Tune's source of trials: each cell's trial in grid order once ``ready(cell)`` says its training data
    is whole (True); a cell whose data never will be (False) is left out. While none is ready, Tune asks
    again a moment later; once every cell is handed out or left out, the grid is complete."""

    def __init__(self, cells: list[tuple[Cell, dict[str, Any]]], ready: Callable[[Cell], bool | None],
                 progress: TrialProgress) -> None:
        super().__init__()
        self.waiting, self.ready, self.progress = list(cells), ready, progress

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        chosen = None
        for cell, params in list(self.waiting):
            state = self.ready(cell)
            if state is False:
                self.waiting.remove((cell, params))
                self.progress.left_out(cell.label)
            elif state and chosen is None:
                self.waiting.remove((cell, params))
                chosen = {"cell": params}
        if chosen is None and not self.waiting:
            return Searcher.FINISHED
        return chosen

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Nothing to learn from a result: the grid is fixed."""

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: an interrupted sweep resumes from the store, not from Tune's experiment state."""

    def __getstate__(self) -> dict[str, Any]:
        """What Tune writes to its experiment file: the sweep's live view of sampling (threads' events)
        does not pickle, and a sweep does not restore from that file."""
        return {**self.__dict__, "ready": None}


def stored_result(store: Store, folder: str) -> dict[str, Any] | None:
    """A trial's result when it and its model (if it kept one) are whole; a broken one is
    removed, with a warning line, so the trial runs again."""
    data = read_trusted(store, folder, layout.TRIAL_RESULT)
    if data is None:
        return None
    result = json.loads(data)
    if result.get("model") and read_trusted(store, result["model"]) is None:
        status(f"[repair] {store.path(folder)}: its model is missing or broken; the trial runs again")
        remove_checked(store, folder, layout.TRIAL_RESULT)
        return None
    return result


def run_trials(cells: list[Cell], real: RealData, store: Store, config: SweepConfig, run_folder: str,
               recipe: Recipe, ready: Callable[[Cell], bool | None] = lambda cell: True) -> list[dict[str, Any]]:
    """Train every cell not yet in the store, through Tune grids; results in cell order.

    A cell's trial starts once ``ready(cell)`` is True; a cell for which it turns False is not trained
    (its result says so). A result holds ``model``, the store path of the trained classifier, where one
    was kept.
    """
    results: dict[int, dict[str, Any]] = {}
    pending: dict[str, list[int]] = {}
    for index, cell in enumerate(cells):
        folder = layout.trial(cell.trial_key(real, recipe))
        result = stored_result(store, folder) if folder not in pending else None
        if result is None:
            pending.setdefault(folder, []).append(index)
        else:
            results[index] = result
    status(f"[train] {len(cells)} cells: {len(results)} already trained in the store, "
           f"{sum(map(len, pending.values()))} to train")
    fits = 0
    for owned in in_turns(store, list(pending), done=lambda folder: store.exists(folder, layout.TRIAL_RESULT)):
        fitted = _fit({folder: cells[pending[folder][0]] for folder in owned}, real, store, config, run_folder,
                      recipe, fits, ready)
        fits += 1
        for folder, result in fitted.items():
            results.update({index: result for index in pending[folder]})
    for folder, indices in pending.items():
        if indices[0] not in results:
            result = stored_result(store, folder)
            if result is not None:
                status(f"[train] {cells[indices[0]].label}: trained by another sweep of this store meanwhile; reused")
            results.update({i: result or {"error": "the trial's result is missing"} for i in indices})
    return [results[i] for i in range(len(cells))]


def _fit(cells: dict[str, Cell], real: RealData, store: Store, config: SweepConfig, run_folder: str,
         recipe: Recipe, fits: int, ready: Callable[[Cell], bool | None]) -> dict[str, dict[str, Any]]:
    """One Tune grid over ``cells`` (trial folder → cell), each trial started once its cell is ready: each
    folder's result or error."""
    cls = config.classifier
    params = []
    for folder, cell in cells.items():
        model = f"{folder}/{layout.TRIAL_MODEL}" if cell.mode == "real" else None
        task = TrainTask(label=cell.label, store=store.root, sources=cell.sources(real), val_folder=real.val.folder,
                         num_classes=real.num_classes, image_shape=real.image_shape, recipe=cell.train_recipe(recipe),
                         seed=cell.seed, use_gpu=cls.use_gpu, save_model_to=model, folder=folder)
        params.append({"task": task, "num_workers": cls.num_workers, "timeout_s": cls.trial_timeout_s,
                       "cpus_per_worker": cls.cpus_per_worker, "resources_per_worker": cls.resources_per_worker,
                       "result_path": folder, "storage_path": store.path(run_folder, "train")})
    progress = TrialProgress(len(params))
    # Every ready trial queues for resources at once, as a grid search's would (an autoscaler's demand);
    # Tune allows a custom searcher one pending trial unless told otherwise.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max(1, len(params)))
    tuner = tune.Tuner(
        tune.with_resources(_trial, trial_resources(cls)),
        tune_config=tune.TuneConfig(search_alg=CellsAsReady(list(zip(cells.values(), params, strict=True)), ready,
                                                            progress),
                                    num_samples=len(params), max_concurrent_trials=max_concurrent_trials(config),
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name="tune" if fits == 0 else f"tune-{fits + 1}", storage_path=store.path(run_folder), verbose=0,
            callbacks=[progress], failure_config=tune.FailureConfig(max_failures=0)),
    )
    out = {folder: {"error": "not trained: its sample set was not made"} for folder in cells}
    for r in tuner.fit():
        folder = r.config["cell"]["result_path"]
        data = None if r.error else read_trusted(store, folder, layout.TRIAL_RESULT)
        if r.error:
            out[folder] = {"error": error_text(r.error, last_line=True)}
        elif data is None:
            out[folder] = {"error": f"the trial ended, but its result in {store.path(folder)} is missing or broken"}
        else:
            out[folder] = json.loads(data)
    return out
