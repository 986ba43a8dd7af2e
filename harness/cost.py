"""``harness plan``: what a sweep will do and what it costs, before any cluster starts.

From the config alone (no Ray, no data read): the grid's cells, the images to sample, the
bytes the store will hold, the classifier's epochs and steps per cell, and an estimate of
GPU-hours and of the wall time on N GPUs.

* Dataset size: the real data's manifest when it is in the store already, else the known
  size of a standard dataset (``KNOWN_SIZES``), else the ``dataset.size`` hint (a standard
  name, or counts), else, for a folder on this machine, its files counted.
* Bytes: the manifest's bytes per image where there is one, else the raw bytes times
  ``CODEC_RATIO`` (BENCHMARKS.md, shard format).
* Steps follow the stream's rule (:class:`harness.classify.stream.ShardStream`): a worker's
  batch is ``batch_size // workers`` and every worker runs ``(n // workers) // batch`` steps.
* Throughput: training images per second of one GPU, from (first found) the config's
  ``classifier.images_per_second``, a ``bench/bench_train.py`` JSON result, or the built-in
  figure of the accelerator (``REFERENCE_THROUGHPUT``), scaled by the forward FLOPs of the
  recipe's model at its training size against the figure's model and size. Evaluation is
  counted at three times the training rate (a forward pass, no backward). Data-parallel
  workers are assumed to scale linearly, so the estimate is a lower bound on time; the
  sampling and the feature extraction are not in it.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from harness import plan
from harness.classify.recipes import Recipe
from harness.config import ConfigError, SweepConfig
from harness.data.sizes import KNOWN_SIZES, DataFacts, data_facts

#: Stored bytes per raw byte of the default shard codec (zstd-up, level 1): the larger of the
#: two figures measured on 128-px photo-like images (0.59 and 0.69; BENCHMARKS.md, shard format).
CODEC_RATIO = 0.69
#: Evaluation images per second relative to training (a forward pass against forward + backward).
EVAL_SPEEDUP = 3.0


@dataclass(frozen=True)
class Throughput:
    """Training images per second of one GPU for ``model`` at ``size`` px, and where the figure comes from."""

    images_per_second: float
    model: str
    size: int
    source: str


#: Built-in figures per accelerator: ResNet-50 v1.5 at 224 px, one GPU, mixed precision, DALI input,
#: from NVIDIA DeepLearningExamples (PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training
#: performance results", pytorch-21.03 NGC container).
REFERENCE_THROUGHPUT = {
    "a100": Throughput(2470, "resnet50", 224, "NVIDIA DeepLearningExamples ResNet-50 v1.5, 1× A100 80GB, AMP"),
    "v100": Throughput(1200, "resnet50", 224, "NVIDIA DeepLearningExamples ResNet-50 v1.5, 1× V100 16GB, AMP"),
}


@dataclass(frozen=True)
class CellCost:
    """One cell's training: images in its set, steps, and GPU-seconds of training and of testing."""

    label: str
    mode: str
    ratio: float | None
    n_train: int
    steps_per_epoch: int
    epochs: int
    train_gpu_s: float | None
    eval_gpu_s: float | None

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs


@dataclass(frozen=True)
class SweepPlan:
    """Everything ``harness plan`` prints."""

    name: str
    data: DataFacts
    recipe: Recipe
    train_size: int | None
    workers: int
    cells: list[CellCost]
    sample_sets: int
    images_to_sample: int
    store_bytes: dict[str, float | None]
    throughput: Throughput | None
    throughput_note: str
    gpus: int
    trials_at_once: int
    unit: str
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_hours(self) -> float | None:
        costs = [c.train_gpu_s + c.eval_gpu_s for c in self.cells if c.train_gpu_s is not None]
        return sum(costs) / 3600 if len(costs) == len(self.cells) else None

    @property
    def wall_hours(self) -> float | None:
        """The longest queue when ``trials_at_once`` trials run side by side, longest first."""
        if self.gpu_hours is None:
            return None
        durations = sorted(((c.train_gpu_s + c.eval_gpu_s) / self.workers for c in self.cells), reverse=True)
        queues = [0.0] * self.trials_at_once
        for d in durations:
            heapq.heappush(queues, heapq.heappop(queues) + d)
        return max(queues) / 3600


def forward_flops(model: str, channels: int, size: int, num_classes: int = 1000) -> float:
    """Forward FLOPs of one image through a freshly built ``model`` (counted on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from harness.classify.models import build_model

    with torch.device("meta"):
        net = build_model(model, channels, num_classes)
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, channels, size, size))
    return float(counter.get_total_flops())


def _scaled(ref: Throughput, model: str, channels: int, size: int) -> tuple[float, str]:
    """``ref`` carried over to ``model`` at ``size`` px by forward FLOPs (by pixels for the same model)."""
    if (ref.model, ref.size) == (model, size):
        return ref.images_per_second, ref.source
    if ref.model == model:
        factor = (ref.size / size) ** 2
        caveat = ""
    else:
        factor = forward_flops(ref.model, 3, ref.size) / forward_flops(model, channels, size)
        caveat = "; another model: a smaller one keeps a GPU less busy, so this is optimistic"
    return (ref.images_per_second * factor, f"{ref.source}: {ref.images_per_second:,.0f} img/s for {ref.model} at "
            f"{ref.size} px, scaled by FLOPs{caveat}")


def read_bench_result(path: str) -> Throughput:
    """The throughput in a ``bench/bench_train.py`` result: its JSON line (the last one in the file)."""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip().startswith("{")]
        result = json.loads(lines[-1])
        return Throughput(float(result["harness_img_s"]), str(result["model"]), int(result["size"]),
                          f"bench_train.py result {path} ({result.get('device_name', 'device not named')})")
    except (OSError, IndexError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"--throughput {path}: expected bench/bench_train.py's output or its JSON line "
                          f"(with harness_img_s, model, size): {type(err).__name__}: {err}") from None


def plan_cost(config: SweepConfig, source: str = "config", gpus: int | None = None, accelerator: str = "a100",
              bench: Throughput | None = None) -> SweepPlan:
    """The plan of ``config``: cells, samples, bytes, steps and the time estimate on ``gpus`` GPUs."""
    recipe = plan.check(config, source)
    data = data_facts(config, source)
    cls = config.classifier
    workers = max(1, cls.num_workers)
    gpus = gpus or workers
    train_size = recipe.input_size or (data.image_shape[1] if data.image_shape else None)
    channels = data.image_shape[0] if data.image_shape else 3

    notes = []
    throughput, note = None, ""
    if cls.images_per_second:
        throughput = Throughput(cls.images_per_second, recipe.model, train_size or 0, "classifier.images_per_second")
    elif bench or (cls.use_gpu and accelerator in REFERENCE_THROUGHPUT):
        ref = bench or REFERENCE_THROUGHPUT[accelerator]
        if train_size:
            rate, how = _scaled(ref, recipe.model, channels, train_size)
            throughput = Throughput(rate, recipe.model, train_size, how)
    if throughput is None:
        device = accelerator if cls.use_gpu else "CPU workers"
        note = (f"no throughput figure for {recipe.model} at {train_size or '?'} px on {device} (built in: "
                f"{', '.join(REFERENCE_THROUGHPUT)} GPUs); set classifier.images_per_second or pass "
                f"--throughput with a bench/bench_train.py result")

    cells, sets = [], set()
    ratios = config.augmentation_ratios
    for seed in config.seeds:
        for g in config.generators:
            if g.kind == "real":
                cells.append(_cell_cost("real", "real", None, data.n_train, recipe, workers, data, throughput))
                continue
            for knobs in plan.knob_settings(g):
                sets.add(json.dumps([g.kind, g.params, knobs, g.truncation_mode, seed], sort_keys=True, default=str))
                label = " ".join([g.name, *plan.knob_labels(dict(knobs))])
                cells.append(_cell_cost(label, "cas", None, data.n_train, recipe, workers, data, throughput))
                for r in ratios:
                    n = data.n_train + _nas_extra(data, r)
                    cells.append(_cell_cost(f"{label} NAS r={r:g}", "nas", r, n, recipe, workers, data, throughput))
    if data.train_counts is None and ratios:
        notes.append("NAS set sizes round r·|real| as a whole; per class (as the sweep does) they may differ by "
                     "up to half an image per class")
    per_image = data.bytes_per_image
    if per_image is None and data.image_shape:
        per_image = CODEC_RATIO * math.prod(data.image_shape)
    params = _parameters(recipe.model, channels, _num_classes(config, data))
    trials = len(cells) * (2 * 4 * params if recipe.checkpoint_every else 0)  # model + momentum, float32
    trials += sum(c.mode == "real" for c in cells) * 4 * params + len(cells) * 10 * data.n_val  # models, predictions
    store_bytes = {"real data": per_image * (data.n_train + data.n_val) if per_image else None,
                   "sample sets": per_image * data.n_train * len(sets) if per_image else None,
                   "trials (checkpoints, models, predictions)": float(trials)}
    trials_at_once = max(1, gpus // workers)
    if config.max_concurrent_trials:
        trials_at_once = min(trials_at_once, config.max_concurrent_trials)
    return SweepPlan(config.name, data, recipe, train_size, workers, cells, len(sets), len(sets) * data.n_train,
                     store_bytes, throughput, note, gpus, trials_at_once, "GPU" if cls.use_gpu else "worker", notes)


def _nas_extra(data: DataFacts, ratio: float) -> int:
    if data.train_counts is not None:
        return sum(round(ratio * c) for c in data.train_counts)
    return round(ratio * data.n_train)


def _num_classes(config: SweepConfig, data: DataFacts) -> int:
    """Classes of the data where known, else ImageNet's 1,000 (only the classifier's last layer depends on it)."""
    if data.train_counts is not None:
        return len(data.train_counts)
    size = config.dataset.size
    known = KNOWN_SIZES.get(config.dataset.kind) or (KNOWN_SIZES.get(size) if isinstance(size, str) else None)
    return known.num_classes if known else 1000


def _parameters(model: str, channels: int, num_classes: int) -> int:
    import torch

    from harness.classify.models import build_model

    with torch.device("meta"):
        return sum(p.numel() for p in build_model(model, channels, num_classes).state_dict().values())


def steps_per_epoch(n: int, batch_size: int, workers: int) -> tuple[int, int]:
    """Steps per epoch and each worker's batch, by the stream's rule."""
    quota = n // workers
    batch = min(max(1, batch_size // workers), quota)
    return quota // batch, batch


def _cell_cost(label: str, mode: str, ratio: float | None, n: int, recipe: Recipe, workers: int, data: DataFacts,
               throughput: Throughput | None) -> CellCost:
    steps, batch = steps_per_epoch(n, recipe.batch_size, workers)
    if throughput is None:
        return CellCost(label, mode, ratio, n, steps, recipe.epochs, None, None)
    trained = recipe.epochs * steps * batch * workers
    return CellCost(label, mode, ratio, n, steps, recipe.epochs, trained / throughput.images_per_second,
                    data.n_val / (EVAL_SPEEDUP * throughput.images_per_second))


def _bytes(n: float | None) -> str:
    if n is None:
        return "unknown (image size not known)"
    unit = next((u for u, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)) if n >= f), "B")
    return f"{n / {'GB': 1e9, 'MB': 1e6, 'kB': 1e3, 'B': 1}[unit]:,.1f} {unit}"


def _hours(h: float) -> str:
    return f"{h:,.1f} h" if h >= 1 else f"{h * 60:,.1f} min"


def summary(p: SweepPlan) -> list[str]:
    """The plan as lines of text."""
    d, r = p.data, p.recipe
    shape = "×".join(map(str, d.image_shape)) if d.image_shape else "size unknown"
    modes = {m: sum(c.mode == m for c in p.cells) for m in ("real", "cas", "nas")}
    lines = [f"plan of {p.name}",
             f"  data        {d.n_train:,} train / {d.n_val:,} test images, {shape} ({d.source})",
             f"  grid        {len(p.cells)} cells: {modes['real']} real, {modes['cas']} CAS, {modes['nas']} NAS",
             f"  sampling    {p.sample_sets} sample sets, {p.images_to_sample:,} images to sample"]
    total = sum(v for v in p.store_bytes.values() if v is not None)
    parts = ", ".join(f"{k} {_bytes(v)}" for k, v in p.store_bytes.items())
    per_image = "from the manifest" if d.bytes_per_image else f"{CODEC_RATIO} of the raw bytes (zstd-up)"
    lines.append(f"  store       {_bytes(total)}: {parts}; images at {per_image}")
    size = f"{p.train_size} px" if p.train_size else "the data's size"
    lines.append(f"  classifier  {r.model} at {size}, {r.epochs} epochs, batch {r.batch_size} over {p.workers} "
                 f"worker{'s' * (p.workers > 1)}")
    kinds: dict[tuple[str, float | None, int], list[CellCost]] = {}
    for c in p.cells:
        kinds.setdefault((c.mode, c.ratio, c.n_train), []).append(c)
    for (mode, ratio, n), same in kinds.items():
        what = f"NAS r={ratio:g}" if mode == "nas" else {"real": "real", "cas": "CAS"}[mode]
        lines.append(f"              {len(same):>3} × {what:<10} {n:>12,} images · {same[0].steps_per_epoch:,} "
                     f"steps/epoch · {same[0].steps:,} steps")
    lines.append(f"              {sum(c.steps for c in p.cells):,} steps in all")
    if p.throughput is None:
        lines.append(f"  estimate    none: {p.throughput_note}")
    else:
        lines.append(f"  throughput  {p.throughput.images_per_second:,.0f} training img/s per {p.unit} "
                     f"({p.throughput.source})")
        lines.append(f"  estimate    {p.gpu_hours:,.1f} {p.unit}-hours of training and testing; on {p.gpus} {p.unit}"
                     f"{'s' * (p.gpus > 1)} ({p.trials_at_once} trial{'s' * (p.trials_at_once > 1)} at once) "
                     f"about {_hours(p.wall_hours)} of wall time; sampling and features not included")
    return lines + [f"  note        {n}" for n in p.notes]


def plan_lines(config: SweepConfig, source: str) -> list[str]:
    """The summary ``harness sweep`` prints before it starts, or one line saying why there is none."""
    try:
        return summary(plan_cost(config, source))
    except ConfigError as err:
        return [f"plan of {config.name}: not estimated ({err})"]
