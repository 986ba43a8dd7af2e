"""The sweep: plan the grid, sample, train one classifier per cell with Ray Tune, aggregate.

The grid is generator × truncation × augmentation ratio × seed. The "real" generator
gives the baseline (the classifier trained on the real train split); every other
generator gives a CAS cell (trained on samples only) and one NAS cell per augmentation
ratio r (real + r·|real| samples). A cell whose result is already in the store is not
trained again, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune import Callback

from harness.classify.recipes import Recipe, resolve_recipe
from harness.classify.train import TrainSource, TrainTask, recipe_record, train_classifier
from harness.config import ClassifierConfig, ConfigError, SweepConfig
from harness.data import RealData, materialize
from harness.metrics.sets import ExtractorSpec, compute_set_features, sample_metrics
from harness.progress import Progress, status
from harness.sample import SampleSet, cluster_fits, plan_sample_set, run_sampling
from harness.shards import ShardSet
from harness.store import Store, spec_key

SHARED_FILESYSTEM_ENV = "CAS_SHARED_FILESYSTEM"
DRIVER_CPUS = 0.01
HEAD_RESOURCE = "node:__internal_head__"


@dataclass(frozen=True)
class Cell:
    """One grid cell: what the classifier trains on, and how the result is labelled."""

    generator: str
    kind: str
    mode: str  # "real", "cas" or "nas"
    truncation: float | None
    augmentation_ratio: float | None
    seed: int
    sample_set: SampleSet | None

    @property
    def label(self) -> str:
        parts = [self.generator]
        if self.truncation is not None:
            parts.append(f"τ={self.truncation:g}")
        if self.mode == "nas":
            parts.append(f"NAS r={self.augmentation_ratio:g}")
        return " ".join(parts + [f"seed {self.seed}"])

    def sources(self, real: RealData) -> tuple[TrainSource, ...]:
        if self.mode == "real":
            return (TrainSource(real.train.folder),)
        assert self.sample_set is not None
        samples = TrainSource(self.sample_set.folder)
        if self.mode == "cas":
            return (samples,)
        return (TrainSource(real.train.folder), TrainSource(self.sample_set.folder, self.augmentation_ratio or 0))


def plan_cells(config: SweepConfig, real: RealData) -> list[Cell]:
    """Every cell of the grid, in the order of the config."""
    cells = []
    for seed in config.seeds:
        for g in config.generators:
            if g.kind == "real":
                cells.append(Cell(g.name, g.kind, "real", None, None, seed, None))
                continue
            for tau in g.truncations or [None]:
                s = plan_sample_set(g, tau, seed, real)
                cells.append(Cell(g.name, g.kind, "cas", tau, None, seed, s))
                cells += [Cell(g.name, g.kind, "nas", tau, r, seed, s) for r in config.augmentation_ratios]
    return cells


def trial_key(cell: Cell, real: RealData, recipe: Recipe) -> str:
    return spec_key({"format": 1, "sources": [dataclasses.asdict(s) for s in cell.sources(real)],
                     "val": real.val.folder, "recipe": recipe_record(recipe), "seed": cell.seed})


def resolve_store(uri: str) -> Store:
    """A store whose local paths are absolute, so every Ray worker finds the same folder."""
    if "://" in uri:
        return Store(uri)
    return Store(str(Path(uri).expanduser().resolve()))


def connect(address: str | None) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray with this machine's CPUs/GPUs."""
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy reporter honours verbose=0: stdout stays ours
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                 log_to_driver=True, configure_logging=True, logging_level="WARNING")


def check_store_reach(store: Store) -> None:
    """A local folder is seen by one machine only: on a multi-node cluster the store must be a
    URI, unless ``CAS_SHARED_FILESYSTEM=1`` says the folder is on a volume every node mounts."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if store.is_local and len(nodes) > 1 and os.environ.get(SHARED_FILESYSTEM_ENV) != "1":
        raise ConfigError(f"store {store.root} is a local folder, but the Ray cluster has {len(nodes)} nodes that "
                           f"may not all see it; use an s3:// or gs:// store (store: in the config, or --store), "
                           f"or if every node mounts this path (a shared volume), set {SHARED_FILESYSTEM_ENV}=1")


def _trial(params: dict[str, Any]) -> None:
    """One Tune trial: train and test one cell's classifier, keep the result in the store."""
    params = params["cell"]
    task: TrainTask = params["task"]
    store = Store(task.store)
    result = train_classifier(task, params["num_workers"], params["cpus_per_worker"], params["storage_path"],
                              params["resources_per_worker"])
    store.write_json(result, params["result_path"], "result.json")
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
    """Train every cell not yet in the store, through one Tune grid; results in cell order."""
    cls = config.classifier
    results: dict[int, dict[str, Any]] = {}
    params = []
    for index, cell in enumerate(cells):
        folder = f"trials/{trial_key(cell, real, recipe)}"
        if store.exists(folder, "result.json"):
            results[index] = store.read_json(folder, "result.json")
            continue
        task = TrainTask(label=cell.label, store=store.root, sources=cell.sources(real), val_folder=real.val.folder,
                         num_classes=real.num_classes, image_shape=real.image_shape, recipe=recipe, seed=cell.seed,
                         use_gpu=cls.use_gpu, save_model_to=f"{folder}/model.pt" if cell.mode == "real" else None)
        params.append({"task": task, "cell_index": index, "num_workers": cls.num_workers,
                       "cpus_per_worker": cls.cpus_per_worker, "resources_per_worker": cls.resources_per_worker,
                       "result_path": folder, "storage_path": store.path(run_folder, "train")})
    status(f"[train] {len(cells)} cells: {len(results)} already trained in the store, {len(params)} to train")
    if not params:
        return [results[i] for i in range(len(cells))]
    tuner = tune.Tuner(
        tune.with_resources(_trial, trial_resources(cls)),
        param_space={"cell": tune.grid_search(params)},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent_trials(config)),
        run_config=tune.RunConfig(
            name="tune", storage_path=store.path(run_folder), verbose=0,
            callbacks=[TrialProgress(len(params))],
            failure_config=tune.FailureConfig(max_failures=0)),
    )
    grid = tuner.fit()
    for r in grid:
        p = r.config["cell"]
        if r.error:
            results[p["cell_index"]] = {"error": _first_line(r.error)}
        else:
            results[p["cell_index"]] = store.read_json(p["result_path"], "result.json")
    return [results[i] for i in range(len(cells))]


def _first_line(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[-1] if lines else ''}"


def trial_resources(cls: ClassifierConfig) -> dict[str, float]:
    """What a trial holds through Tune.

    A trial that trains in its own process holds what that process needs. A data-parallel
    trial only drives its Ray Train workers, which hold their own resources: it holds no
    CPU, so that the workers can use them all, unless the head offers none (a head kept
    free of work, as in the Kubernetes manifests); then ``DRIVER_CPUS``, which keeps the
    trial and its Ray Train controller off the head.
    """
    if cls.num_workers == 0:
        return {"cpu": cls.cpus_per_worker, "gpu": 1 if cls.use_gpu else 0, **cls.resources_per_worker}
    head = next(n["Resources"] for n in ray.nodes() if n.get("Alive") and HEAD_RESOURCE in n["Resources"])
    return {"cpu": 0 if head.get("CPU") else DRIVER_CPUS}


def max_concurrent_trials(config: SweepConfig) -> int | None:
    """How many trials run at once: the config's number, else it follows from the resources.

    A trial that trains in its own process (``num_workers = 0``) holds its resources
    through Tune, which starts trials as resources appear and queues the rest: no limit
    is needed, and the queued trials' placement groups are the demand that makes an
    autoscaler add nodes. Data-parallel trials hold (almost) nothing through Tune and
    their workers are placed by Ray Train, so they are limited to the workers the cluster
    holds now (at least one trial, whose workers wait for the autoscaler's nodes).
    """
    if config.max_concurrent_trials:
        return config.max_concurrent_trials
    cls = config.classifier
    if cls.num_workers == 0:
        return None
    worker = {"CPU": cls.cpus_per_worker, "GPU": 1 if cls.use_gpu else 0, **cls.resources_per_worker}
    return max(1, cluster_fits({name: amount * cls.num_workers for name, amount in worker.items()}))


def prepare(config: SweepConfig, address: str | None) -> tuple[Store, RealData]:
    """What every stage starts from: the store (checked to reach every node), Ray, the real data."""
    store = resolve_store(config.store)
    connect(address)
    check_store_reach(store)
    return store, materialize(config.dataset, store, config.sampler.shard_size)


def run_sweep(config: SweepConfig, address: str | None = None,
              config_text: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Run a whole sweep; returns the URI of the run folder holding results and report, and the records."""
    from harness.report import write_report

    started = time.monotonic()
    store, real = prepare(config, address)
    run_folder = f"runs/{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if config_text is not None:
        store.write_text(config_text, run_folder, "config.yaml")
    recipe = resolve_recipe(config.classifier.recipe, config.classifier.overrides)
    cells = plan_cells(config, real)
    sets = list({c.sample_set.key: c.sample_set for c in cells if c.sample_set}.values())
    sampling = run_sampling(sets, real, store, config.sampler)
    trainable = [c for c in cells if c.sample_set is None or c.sample_set.key not in sampling.failed]
    trained = iter(run_trials(trainable, real, store, config, run_folder, recipe))
    results = [next(trained) if c in trainable else {"error": sampling.failed[c.sample_set.key]} for c in cells]
    metrics = sweep_metrics(config, real, store, cells, results, recipe)
    records = [_record(c, r, metrics.get(c.sample_set.folder if c.sample_set else real.val.folder, {}),
                       real, recipe, config) for c, r in zip(cells, results, strict=True)]
    write_report(store, run_folder, records, real, elapsed=time.monotonic() - started)
    return store.path(run_folder), records


def extractor_kind(config: SweepConfig, real: RealData) -> str:
    """The feature extractor ``auto`` stands for: domain features for small or grey images."""
    kind = config.metrics.feature_extractor
    if kind != "auto":
        return kind
    has_real = any(g.kind == "real" for g in config.generators)
    small = real.image_shape[0] == 1 or min(real.image_shape[1:]) < 32
    return "domain" if small and has_real else "inception"


def sweep_metrics(config: SweepConfig, real: RealData, store: Store, cells: list[Cell],
                  results: list[dict[str, Any]], recipe: Recipe) -> dict[str, dict[str, Any]]:
    """IS, FID, KID and precision/recall by shard set folder: every complete sample set, and
    the real validation split (the Real row's figures: held-out real data against the train
    split). A failure here leaves the CAS results whole and is recorded as ``metrics_error``."""
    kind = extractor_kind(config, real)
    if kind == "none":
        return {}
    folders = [real.val.folder, *dict.fromkeys(c.sample_set.folder for c in cells if c.sample_set
                                               and ShardSet(store, c.sample_set.folder).is_complete())]
    m = config.metrics
    if kind == "domain":
        trained_real = [c for c, r in zip(cells, results, strict=True) if c.mode == "real" and "error" not in r]
        if not trained_real:
            return {f: {"metrics_error": "no classifier trained on real data for the domain features"}
                    for f in folders}
        spec = ExtractorSpec("domain", model_path=f"trials/{trial_key(trained_real[0], real, recipe)}/model.pt",
                             model_name=recipe.model, image_shape=real.image_shape, num_classes=real.num_classes)
    else:
        spec = ExtractorSpec("inception", inception_weights=m.inception_weights)
    actors = m.num_actors or max(1, cluster_fits({"CPU": 1, "GPU": m.num_gpus}))
    try:
        features = compute_set_features([real.train.folder, *folders], store, spec, m.max_samples, m.batch_size,
                                        m.num_gpus, actors)
    except Exception as err:  # noqa: BLE001 - e.g. weights that cannot be fetched: CAS results are kept
        status(f"[features] failed: {_first_line(err)}")
        return {f: {"metrics_error": _first_line(err)} for f in folders}
    reference = features[real.train.folder]
    named = {"feature_extractor": spec.name, "preprocessing": spec.preprocessing}
    out = {}
    for f in folders:
        problem = reference if isinstance(reference, str) else features[f] if isinstance(features[f], str) else None
        out[f] = {**named, **({"metrics_error": problem} if problem else sample_metrics(features[f], reference))}
    return out


def _record(cell: Cell, result: dict[str, Any], metrics: dict[str, Any], real: RealData, recipe: Recipe,
            config: SweepConfig) -> dict[str, Any]:
    record = {"generator": cell.generator, "kind": cell.kind, "mode": cell.mode, "truncation": cell.truncation,
              "augmentation_ratio": cell.augmentation_ratio, "seed": cell.seed,
              "recipe": config.classifier.recipe, "recipe_settings": recipe_record(recipe),
              "sample_set": cell.sample_set.folder if cell.sample_set else None, "dataset": real.key}
    if "error" in result:
        return {**record, **metrics, "status": "failed", "error": result["error"]}
    return {**record, **metrics, "status": "ok", **result}
