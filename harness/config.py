"""The sweep configuration: a typed schema for the YAML a user writes.

Everything is checked before any work starts. Unknown keys, wrong types and impossible
values raise ``ConfigError`` naming the file, the field, what was given and what is
allowed.
"""

from __future__ import annotations

import itertools
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.knobs import TRUNCATION_MODES
from harness.registry import DATASETS, EXTRACTORS, GENERATORS, RECIPES, Registry, resolve_params

#: Seeds feed numpy (non-negative) and torch (below 2**64, multiplied by the trainer) generators.
Seed = Annotated[int, Field(ge=0, lt=2**32)]
#: More values than any config needs: a document past it is an alias bomb or refers to itself.
MAX_VALUES = 100_000
#: Integers longer than this many bits cannot be printed as decimals (Python stops at 4300 digits), so not hashed.
MAX_INT_BITS = 4096


class ConfigError(ValueError):
    """A config file that cannot be run as written."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _registered(registry: Registry, name: str) -> str:
    if name not in registry:
        raise ValueError(f"expected one of {', '.join(registry.names())}")
    return name


class DatasetConfig(_Strict):
    """The real data: what CAS's samples replace and what every classifier is tested on.

    ``params`` are the kind's (see ``harness.registry.DATASETS``); defaults are filled in.
    """

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    val_fraction: float | None = Field(default=None, gt=0, lt=1)
    split_seed: Seed = 0

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
    Knobs of built-in kinds are checked here; a plugin's when the sweep is planned.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    truncations: list[float] | None = None
    sweep: dict[str, list[float]] = Field(default_factory=dict)
    truncation_mode: Literal[TRUNCATION_MODES] | None = None  # type: ignore[valid-type]

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
    """

    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    num_workers: int = Field(default=0, ge=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1, gt=0)
    resources_per_worker: dict[str, float] = Field(default_factory=dict)
    trial_timeout_s: float | None = Field(default=None, gt=0)

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
    """A whole sweep: dataset × generators × truncations × augmentation ratios × seeds."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    store: str = "store"
    dataset: DatasetConfig
    generators: list[GeneratorConfig] = Field(min_length=1)
    classifier: ClassifierConfig
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    augmentation_ratios: list[float] = Field(default_factory=list)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    max_concurrent_trials: int | None = Field(default=None, ge=1)

    @field_validator("augmentation_ratios")
    @classmethod
    def _ratios(cls, value: list[float]) -> list[float]:
        bad = [r for r in value if not 0 < r <= 1]
        if bad:
            raise ValueError(f"augmentation ratios r add r·|real| synthetic samples and must lie in (0, 1]; got {bad}")
        return value

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


def _field_path(loc: tuple[Any, ...], data: Any) -> str:
    """``generators[1].truncations[0]`` with generator names where they are known."""
    out, node = "", data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{part}]" + (f" ({name})" if name else "")
        else:
            out += f".{part}" if out else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return out


def _given(value: Any) -> str:
    """The value a user gave, shortened for an error line: a field may hold megabytes."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 4, 200, 200
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = short.maxfrozenset = 10
    return short.repr(value)


def _document_problem(data: Any) -> str | None:
    """What makes a loaded document unusable whatever its fields: more than ``MAX_VALUES``
    values (aliases that refer to themselves never end), or an integer too long to print."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return (f"the document expands to more than {MAX_VALUES} values; "
                    f"a YAML alias that refers to itself, or aliases nested many times?")
        if isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and node.bit_length() > MAX_INT_BITS:
            return f"an integer of {node.bit_length()} bits; integers must fit in {MAX_INT_BITS} bits"
    return None


def parse_config(data: Any, source: str) -> SweepConfig:
    """Validate a loaded YAML document; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    problem = _document_problem(data)
    if problem:
        raise ConfigError(f"{source}: {problem}")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            field = _field_path(e["loc"], data) or "(top level)"
            whole = isinstance(e["input"], dict)  # a check across fields: the message names the values
            given = "" if e["type"] == "missing" or not e["loc"] or whole else f" (given: {_given(e['input'])})"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field"
            lines.append(f"  {field}: {msg}{given}")
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(lines)) from None


def load_config(path: str | Path, store: str | None = None) -> SweepConfig:
    """Read and validate a sweep YAML file; ``store`` overrides the file's store."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as err:
        # PyYAML's constructors raise these for a bad tagged scalar (!!int abc, a 13th month,
        # an integer past 4300 digits) and its parser recurses once per level of nesting
        raise ConfigError(f"{path}: not valid YAML: {type(err).__name__}: {err}") from None
    config = parse_config(data, str(path))
    return config.model_copy(update={"store": store}) if store else config
