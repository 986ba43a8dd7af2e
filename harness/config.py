"""The sweep configuration: a typed schema for the YAML a user writes.

Everything is checked before any work starts. Unknown keys, wrong types and impossible
values raise ``ConfigError`` naming the file, the field, what was given and what is
allowed.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.knobs import TRUNCATION_MODES
from harness.registry import DATASETS, EXTRACTORS, GENERATORS, RECIPES, Registry, resolve_params

#: Seeds feed numpy (non-negative) and torch (below 2**64, multiplied by the trainer) generators.
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: The most synthetic data a cell trains on, in multiples of the real train split (NAS ratios, sample multipliers).
MAX_SYNTHETIC_MULTIPLE = 10


class ConfigError(ValueError):
    """A config file that cannot be run as written."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _registered(registry: Registry, name: str) -> str:
    if name not in registry:
        raise ValueError(f"expected one of {', '.join(registry.names())}")
    return name


class DatasetSize(_Strict):
    """Image counts of a dataset's splits, for ``harness plan`` before the data is in the store."""

    train: int = Field(ge=1)
    val: int = Field(ge=1)


class DatasetConfig(_Strict):
    """The real data: what CAS's samples replace and what every classifier is tested on.

    ``params`` are the kind's (see ``harness.registry.DATASETS``); defaults are filled in.
    ``size`` tells ``harness plan`` the split sizes where it cannot know them (a folder not
    on this machine): a standard dataset's name (``imagenet``, ``cifar10``, …) or counts;
    it is no part of the data's identity.
    """

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    val_fraction: float | None = Field(default=None, gt=0, lt=1)
    split_seed: Seed = 0
    size: str | DatasetSize | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return _registered(DATASETS, value)

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") in DATASETS and isinstance(data.get("params", {}), dict):
            data = {**data, "params": resolve_params(DATASETS, data["kind"], data.get("params", {}))}
        return data


class GeneratorConfig(_Strict):
    """One generator of the comparison: a registered kind or ``package.module:attr``.

    ``sweep`` maps each sampling knob the generator declares to the values to try; the grid
    is their cartesian product. ``truncations`` is shorthand for ``sweep: {truncation: [...]}``.
    ``truncation_mode`` picks how a truncated z is drawn (``scaled``: τ·TN(-2, 2), BigGAN's
    own; ``resample``: N(0, 1) resampled outside [-2τ, 2τ]); left out, the kind's default.
    ``sample_multiplier`` overrides the sweep's for this generator's CAS cells.
    Knobs of built-in kinds are checked here; a plugin's when the sweep is planned.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    truncations: list[float] | None = None
    sweep: dict[str, list[float]] = Field(default_factory=dict)
    truncation_mode: Literal[TRUNCATION_MODES] | None = None  # type: ignore[valid-type]
    sample_multiplier: float | None = Field(default=None, ge=1, le=MAX_SYNTHETIC_MULTIPLE)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if ":" in value:
            return value
        if value not in GENERATORS:
            raise ValueError(f"expected one of {', '.join(GENERATORS.names())} or 'package.module:attr'")
        return value

    @field_validator("sweep")
    @classmethod
    def _nonempty(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        empty = sorted(k for k, v in value.items() if not v)
        if empty:
            raise ValueError(f"knobs {empty} list no values; list at least one, or leave the knob out")
        return value

    @model_validator(mode="before")
    @classmethod
    def _resolved(cls, data: Any) -> Any:
        """Params with the kind's defaults, ``truncations`` folded into ``sweep``, the kind's truncation mode."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        truncations, sweep = data.get("truncations"), data.get("sweep", {})
        if isinstance(truncations, list) and isinstance(sweep, dict):
            if "truncation" in sweep:
                raise ValueError("truncations is shorthand for sweep.truncation: give one of them, not both")
            if not truncations:
                raise ValueError("truncations must list at least one τ, or be left out")
            data["sweep"], data["truncations"] = {**sweep, "truncation": truncations}, None
        kind = data.get("kind")
        if isinstance(kind, str) and kind in GENERATORS:
            if isinstance(data.get("params", {}), dict):
                data["params"] = resolve_params(GENERATORS, kind, data.get("params", {}))
            if data.get("truncation_mode") is None:
                data["truncation_mode"] = GENERATORS.entry(kind).info.get("truncation_mode")
        return data

    @model_validator(mode="after")
    def _declared_knobs(self) -> GeneratorConfig:
        if self.kind == "real" and self.sample_multiplier is not None:
            raise ValueError("sample_multiplier: the real baseline trains on the real train split as it is; "
                             "set it on generators that draw samples")
        if ":" not in self.kind:
            check_knobs(self.name, self.kind, self.sweep, GENERATORS.entry(self.kind).info["knobs"])
        return self

    def knob_grid(self) -> list[dict[str, float]]:
        """Every combination of the swept knob values, in config order ([{}] when nothing is swept)."""
        names = list(self.sweep)
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*self.sweep.values())]


def check_knobs(name: str, kind: str, sweep: dict[str, list[float]], knobs: tuple) -> None:
    """Each swept knob is declared by the generator and every value lies in its range."""
    declared = {k.name: k for k in knobs}
    for knob, values in sweep.items():
        if knob not in declared:
            allowed = ", ".join(k.describe() for k in knobs) or "no knobs"
            raise ValueError(f"generator {name!r} ({kind}) has no knob {knob!r}; it takes {allowed}")
        for value in values:
            problem = declared[knob].check(value)
            if problem:
                raise ValueError(f"generator {name!r} knob {knob}: {problem}; allowed: {declared[knob].describe()}")



def _custom_resources(value: dict[str, float], own_fields: str) -> dict[str, float]:
    """Custom Ray resources only: CPUs, GPUs and memory have fields of their own."""
    builtin = sorted(k for k in value if k.lower() in ("cpu", "gpu", "memory", "object_store_memory"))
    if builtin:
        raise ValueError(f"{builtin} are not custom Ray resources; set them with {own_fields}")
    bad = {k: v for k, v in value.items() if not v > 0}
    if bad:
        raise ValueError(f"resource amounts must be > 0; got {bad}")
    return value


class ClassifierConfig(_Strict):
    """The classifier trained on each sample set, and how it is spread over workers.

    With ``num_workers = 0`` a trial trains in its own Tune trial process; with
    ``num_workers ≥ 1`` it trains data-parallel over that many Ray Train workers. Either
    way each worker (or the trial process) holds ``cpus_per_worker`` CPUs, one GPU if
    ``use_gpu``, and the custom Ray resources in ``resources_per_worker`` (such as
    ``{"a100": 1}``, which a node declares with ``ray start --resources``), so trials run
    only on nodes that offer all of them. A trial still training ``trial_timeout_s``
    seconds after it started is stopped and its cell fails (left out: no limit).
    ``images_per_second``: the training throughput of one worker measured for this recipe
    (``bench/bench_train.py``), for ``harness plan``.
    """

    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    num_workers: int = Field(default=0, ge=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1, gt=0)
    resources_per_worker: dict[str, float] = Field(default_factory=dict)
    trial_timeout_s: float | None = Field(default=None, gt=0)
    images_per_second: float | None = Field(default=None, gt=0)

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, value: str) -> str:
        return _registered(RECIPES, value)

    @field_validator("resources_per_worker")
    @classmethod
    def _custom(cls, value: dict[str, float]) -> dict[str, float]:
        return _custom_resources(value, "cpus_per_worker and use_gpu")


class SamplerConfig(_Strict):
    """The Ray actors that turn generators into shards.

    Each actor holds ``num_cpus`` CPUs, ``num_gpus`` GPUs and the custom Ray resources in
    ``resources`` (such as ``{"a100": 1}``), so it runs only on nodes that offer all of
    them; the default of one CPU keeps actors off a head node started with ``num-cpus: 0``.
    ``num_actors`` fixes how many actors there are; left out, it is as many as the
    cluster holds now, or one per shard while the cluster has none of what an actor needs
    (an autoscaling cluster at zero), which is the demand that makes it add nodes.
    A generator whose ``sample()`` call takes longer than ``batch_timeout_s`` seconds for
    one batch is taken to hang: its sample sets fail, naming it, and the sweep goes on.
    """

    num_actors: int | None = Field(default=None, ge=1)
    num_cpus: float = Field(default=1, ge=0)
    num_gpus: float = Field(default=0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    batch_size: int = Field(default=256, ge=1)
    shard_size: int = Field(default=10_000, ge=1)
    batch_timeout_s: float = Field(default=900, gt=0)

    @field_validator("resources")
    @classmethod
    def _custom(cls, value: dict[str, float]) -> dict[str, float]:
        return _custom_resources(value, "num_cpus and num_gpus")

    @model_validator(mode="after")
    def _asks_for_something(self) -> SamplerConfig:
        if not (self.num_cpus or self.num_gpus or self.resources):
            raise ValueError("num_cpus and num_gpus are 0 and no resources are listed: an actor must ask for "
                             "some resource, which decides where samplers run and how many")
        return self


#: What ``metrics.dinov2_architecture`` may override (timm ViT settings), with random weights only.
DINOV2_ARCHITECTURE = ("depth", "embed_dim", "num_heads")


class MetricsConfig(_Strict):
    """IS, FD, KID and precision/recall of every sample set, in one or more feature spaces.

    ``extractors``: registered extractors (``harness.registry.EXTRACTORS``: ``inception``,
    ``dinov2``, ``domain``, the classifier trained on the real data), computed in one pass over
    each shard; ``auto`` (domain for images smaller than 32×32 or grey when a real-data
    classifier is trained, else inception) or ``none``. Pinned weights are downloaded once and
    checked, or read from ``*_weights`` (or ``CAS_INCEPTION_WEIGHTS``/``CAS_DINOV2_WEIGHTS``);
    ``random`` is for tests, and then ``dinov2_architecture`` may shrink the ViT. IS and FD use
    ``num_samples`` random rows of each set (IS-50K/FID-50K) against the whole real train split,
    KID and precision/recall a class-stratified random subset of ``max_samples``; ``seed`` fixes them.
    """

    extractors: Literal["auto", "none"] | list[str] = "auto"
    inception_weights: str | None = None
    dinov2_weights: str | None = None
    dinov2_architecture: dict[str, int] = Field(default_factory=dict)
    num_samples: int = Field(default=50_000, ge=10)
    max_samples: int = Field(default=10_000, ge=10)
    seed: Seed = 0
    batch_size: int = Field(default=200, ge=1)
    num_gpus: float = Field(default=0, ge=0)
    num_actors: int | None = Field(default=None, ge=1)

    @field_validator("extractors", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) and value not in ("auto", "none") else value

    @field_validator("extractors")
    @classmethod
    def _known_extractors(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("list at least one extractor, or write 'none' for no metrics")
            for name in value:
                _registered(EXTRACTORS, name)
            if len(set(value)) != len(value):
                raise ValueError(f"extractors must be unique; got {value}")
        return value

    @model_validator(mode="after")
    def _architecture(self) -> MetricsConfig:
        unknown = sorted(set(self.dinov2_architecture) - set(DINOV2_ARCHITECTURE))
        bad = {k: v for k, v in self.dinov2_architecture.items() if not 1 <= v <= 4096}
        if unknown or bad:
            raise ValueError(f"dinov2_architecture: settings {list(DINOV2_ARCHITECTURE)} in [1, 4096] only; got "
                             f"{self.dinov2_architecture}")
        if self.dinov2_architecture and self.dinov2_weights != "random":
            raise ValueError("dinov2_architecture changes the network's size, so it needs dinov2_weights: random; "
                             "the pinned checkpoint is ViT-L/14")
        return self


class SweepConfig(_Strict):
    """A whole sweep: dataset × generators × truncations × augmentation ratios × seeds.

    ``sample_multiplier`` k: CAS cells train on k× as many samples as there are real train
    images (of each class), 1 in the paper. ``augmentation_ratios`` r: NAS cells train on
    the real split plus r·|real| samples. Both go up to ``MAX_SYNTHETIC_MULTIPLE``.
    ``nas_step_matched_real`` adds, per ratio, a Real cell trained for as many optimiser
    steps as the NAS cell (epochs, warm-up and milestones × (1 + r)).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    store: str = "store"
    dataset: DatasetConfig
    generators: list[GeneratorConfig] = Field(min_length=1)
    classifier: ClassifierConfig
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    augmentation_ratios: list[float] = Field(default_factory=list)
    sample_multiplier: float = Field(default=1, ge=1, le=MAX_SYNTHETIC_MULTIPLE)
    nas_step_matched_real: bool = False
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    max_concurrent_trials: int | None = Field(default=None, ge=1)

    @field_validator("augmentation_ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        bad = [r for r in value if not 0 < r <= MAX_SYNTHETIC_MULTIPLE]
        if bad:
            raise ValueError(f"augmentation ratios r add r·|real| synthetic samples and must lie in "
                             f"(0, {MAX_SYNTHETIC_MULTIPLE}]; got {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"augmentation ratios must be unique; got {value}")
        return value

    @model_validator(mode="after")
    def _step_matched(self) -> SweepConfig:
        if self.nas_step_matched_real and not (self.augmentation_ratios and any(g.kind == "real"
                                                                                 for g in self.generators)):
            raise ValueError("nas_step_matched_real adds a Real cell per augmentation ratio, trained as many steps "
                             "as that NAS cell: list augmentation_ratios and a generator of kind 'real'")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        names = [g.name for g in self.generators]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"generator names must be unique; repeated: {dupes}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be unique; got {self.seeds}")
        domain = isinstance(self.metrics.extractors, list) and "domain" in self.metrics.extractors
        if domain and not any(g.kind == "real" for g in self.generators):
            raise ValueError("metrics.extractors: 'domain' uses the classifier trained on real data: "
                             "add a generator of kind 'real', or choose 'inception'")
        return self
