"""The Tune grid: one trial per grid cell, each training and testing one classifier.

A cell whose result is already in the store is not trained again, so an interrupted sweep
resumes where it stopped. Each trial writes its result (and, for cells trained on real
data, the model the domain extractor uses) under the cell's trial key.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune import Callback

from harness import layout
from harness.classify.recipes import Recipe
from harness.classify.train import TrainTask, train_classifier
from harness.config import SweepConfig
from harness.data import RealData
from harness.plan import Cell
from harness.progress import Progress, status
from harness.ray_env import error_text, max_concurrent_trials, trial_resources
from harness.store import Store


def _trial(params: dict[str, Any]) -> None:
    """One Tune trial: train and test one cell's classifier, keep the result in the store."""
    params = params["cell"]
    task: TrainTask = params["task"]
    result = train_classifier(task, params["num_workers"], params["cpus_per_worker"], params["storage_path"],
                              params["resources_per_worker"])
    Store(task.store).write_json(result, params["result_path"], layout.TRIAL_RESULT)
    tune.report({"top1": result["top1"], "top5": result["top5"]})


class TrialProgress(Callback):
    """Prints trials done of total, rate, time left, and each trial's Top-1 as it lands."""

    def __init__(self, total: int) -> None:
        self.progress = Progress("train", total=total, unit="trials", interval=0)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        top1 = trial.last_result.get("top1", float("nan"))
        self.progress.advance(note=f"{trial.config['cell']['task'].label}: top1 {top1:.3f}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.progress.advance(note=f"{trial.config['cell']['task'].label}: FAILED")


def run_trials(cells: list[Cell], real: RealData, store: Store, config: SweepConfig, run_folder: str,
               recipe: Recipe) -> list[dict[str, Any]]:
    """Train every cell not yet in the store, through one Tune grid; results in cell order.

    A result holds ``model``, the store path of the trained classifier, where one was kept.
    """
    cls = config.classifier
    results: dict[int, dict[str, Any]] = {}
    params = []
    for index, cell in enumerate(cells):
        folder = layout.trial(cell.trial_key(real, recipe))
        if store.exists(folder, layout.TRIAL_RESULT):
            results[index] = store.read_json(folder, layout.TRIAL_RESULT)
            continue
        model = f"{folder}/{layout.TRIAL_MODEL}" if cell.mode == "real" else None
        task = TrainTask(label=cell.label, store=store.root, sources=cell.sources(real), val_folder=real.val.folder,
                         num_classes=real.num_classes, image_shape=real.image_shape, recipe=recipe, seed=cell.seed,
                         use_gpu=cls.use_gpu, save_model_to=model, folder=folder)
        params.append({"task": task, "cell_index": index, "num_workers": cls.num_workers,
                       "cpus_per_worker": cls.cpus_per_worker, "resources_per_worker": cls.resources_per_worker,
                       "result_path": folder, "storage_path": store.path(run_folder, "train")})
    status(f"[train] {len(cells)} cells: {len(results)} already trained in the store, {len(params)} to train")
    if not params:
        return [results[i] for i in range(len(cells))]
    tuner = tune.Tuner(
        tune.with_resources(_trial, trial_resources(cls)),
        param_space={"cell": tune.grid_search(params)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent_trials(config), reuse_actors=True),
        run_config=tune.RunConfig(
            name="tune", storage_path=store.path(run_folder), verbose=0,
            callbacks=[TrialProgress(len(params))],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    for r in tuner.fit():
        p = r.config["cell"]
        if r.error:
            results[p["cell_index"]] = {"error": error_text(r.error, last_line=True)}
        else:
            results[p["cell_index"]] = store.read_json(p["result_path"], layout.TRIAL_RESULT)
    return [results[i] for i in range(len(cells))]
