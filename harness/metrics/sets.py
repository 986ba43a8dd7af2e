"""IS, FD, KID and precision/recall of every sample set of a sweep, in every feature space, pooled across actors.

**Which rows** (:mod:`harness.metrics.rows`): IS and FD on ``metrics.num_samples`` random rows
of each set (IS-50K, FID-50K) against the whole real train split; KID and precision/recall on a
class-stratified random subset of ``metrics.max_samples`` rows.

**One pass.** Feature actors (one per GPU, or CPU actors) each hold every listed extractor and
work shard by shard: a shard is read once and every extractor runs on its chosen rows. A shard
gives back, per extractor, exact float64 sums (:class:`FeatureStats`), the Inception Score's
per-split sums and the KID/P-R subset's features, so the driver pools a set's shards exactly,
never averaging per-shard scores. Each set's pooled result is cached in the store per
extractor, so the real data's statistics are computed once per store and reused across sweeps,
and adding an extractor to a sweep extracts only that one.

**Which metrics.** Each :class:`Metric` declares the outputs it needs; it runs for every
listed extractor that provides them, and its record keys name the extractor (``fd_dinov2``,
``kid_inception_mean``, …). The Inception Score runs once, on the logits of the Inception
network (or of the domain classifier when that is the extractor), as ``is_mean``/``is_std``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from scipy.special import log_softmax, xlogy

from harness import layout
from harness.classify.recipes import Recipe
from harness.config import SweepConfig
from harness.data import RealData
from harness.lease import in_turns
from harness.metrics.extractors import ExtractorSpec, build_extractor
from harness.metrics.features import Extractor, extract
from harness.metrics.rows import IS_SPLITS, ShardRows, plan_rows
from harness.metrics.scores import kid, precision_recall
from harness.metrics.stats import FeatureStats
from harness.plan import Cell
from harness.progress import Progress, status
from harness.ray_env import cluster_fits, error_text
from harness.shards import ShardSet
from harness.store import Store, sha256_bytes
from harness.verify import read_trusted, write_checked


def is_partials(logits: np.ndarray, split: np.ndarray, splits: int = IS_SPLITS) -> dict[str, np.ndarray]:
    """Per-split sums (count, Σ p(y|x), Σ p log p) of rows whose splits are ``split``: they add up across shards."""
    log_p = log_softmax(logits, axis=1)
    p = np.exp(log_p)
    counts = np.bincount(split, minlength=splits).astype(np.float64)
    sum_p = np.zeros((splits, logits.shape[1]))
    np.add.at(sum_p, split, p)
    sum_plogp = np.bincount(split, weights=(p * log_p).sum(1), minlength=splits)
    return {"n": counts, "sum_p": sum_p, "sum_plogp": sum_plogp}


def inception_score_from_partials(partials: dict[str, np.ndarray]) -> tuple[float, float]:
    """IS mean and std (ddof = 0) over splits from pooled per-split sums."""
    n = partials["n"][:, None]
    p_y = partials["sum_p"] / n
    kl = partials["sum_plogp"] / partials["n"] - xlogy(p_y, p_y).sum(1)
    scores = np.exp(kl)
    return float(scores.mean()), float(scores.std())


def shard_summary(images: np.ndarray, labels: np.ndarray, rows: ShardRows, extractors: dict[str, Extractor],
                  batch_size: int, device: torch.device) -> dict[str, dict[str, Any]]:
    """Per extractor kind: the poolable summary of one shard's chosen rows (statistics of the measured
    rows, IS sums where the extractor gives logits, the subset's features)."""
    subset = rows.subset_rows(labels)
    wanted = np.union1d(rows.measured, subset)
    batch = torch.from_numpy(np.ascontiguousarray(images[wanted]))
    at_measured, at_subset = np.searchsorted(wanted, rows.measured), np.searchsorted(wanted, subset)
    out = {}
    for kind, extractor in extractors.items():
        outputs = extract(batch, extractor, batch_size, device)
        features = outputs["features"]
        part = {"stats": FeatureStats.from_features(features[at_measured]).to_dict(),
                "subset": features[at_subset].astype(np.float32)}
        if "logits" in outputs:
            part["is"] = is_partials(outputs["logits"][at_measured], rows.is_split, rows.is_splits)
        out[kind] = part
    return out


@ray.remote
class FeatureWorker:
    """Holds every extractor of the pass and turns shards into poolable summaries, one read per shard."""

    def __init__(self, store_root: str, specs: list[ExtractorSpec], batch_size: int) -> None:
        self.store = Store(store_root)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.extractors: dict[str, Extractor] = {}
        self.errors: dict[str, str] = {}
        for spec in specs:
            try:
                self.extractors[spec.kind] = build_extractor(spec, self.store, self.device)
            except Exception as err:  # noqa: BLE001 - one extractor that cannot be built leaves the others
                self.errors[spec.kind] = error_text(err, last_line=True)
        self.batch_size = batch_size

    def shard(self, folder: str, rows: ShardRows, kinds: list[str]) -> dict[str, Any]:
        parts: dict[str, Any] = {k: {"error": self.errors[k]} for k in kinds if k in self.errors}
        extractors = {k: self.extractors[k] for k in kinds if k in self.extractors}
        if not extractors:
            return {"folder": folder, "index": rows.index, "parts": parts}
        try:
            images, labels = ShardSet(self.store, folder).read_shard(rows.entry)
            parts.update(shard_summary(images, labels, rows, extractors, self.batch_size, self.device))
        except Exception as err:  # noqa: BLE001 - returned as a value so the set, not the pool, fails
            parts.update({k: {"error": f"{type(err).__name__}: {err}"} for k in kinds if k not in parts})
        return {"folder": folder, "index": rows.index, "parts": parts}


@dataclass
class SetFeatures:
    """A shard set's pooled features under one extractor: statistics of the measured rows, their IS
    sums (None without logits) and the KID/P-R subset's features."""

    stats: FeatureStats
    is_sums: dict[str, np.ndarray] | None
    subset: np.ndarray

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, subset=self.subset, **{f"is_{k}": v for k, v in (self.is_sums or {}).items()},
                 **{f"stats_{k}": v for k, v in self.stats.to_dict().items()})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SetFeatures:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            stats = FeatureStats.from_dict({k: z[f"stats_{k}"] for k in ("n", "sum_x", "sum_xx")})
            is_sums = {k: z[f"is_{k}"] for k in ("n", "sum_p", "sum_plogp")} if "is_n" in z.files else None
            return cls(stats, is_sums, z["subset"])


def pool(parts: list[tuple[int, dict[str, Any]]]) -> SetFeatures | str:
    """One set's shard summaries, given as (shard index, summary), pooled exactly; or the first error."""
    errors = [p["error"] for _, p in parts if "error" in p]
    if errors:
        return errors[0]
    parts = sorted(parts, key=lambda ip: ip[0])
    stats = FeatureStats.from_dict(parts[0][1]["stats"])
    for _, p in parts[1:]:
        stats = stats.merge(FeatureStats.from_dict(p["stats"]))
    is_sums = ({k: np.sum([p["is"][k] for _, p in parts], axis=0) for k in ("n", "sum_p", "sum_plogp")}
               if all("is" in p for _, p in parts) else None)
    return SetFeatures(stats, is_sums, np.concatenate([p["subset"] for _, p in parts]))


def _cache_path(folder: str, spec: ExtractorSpec, num_samples: int | None, max_samples: int, seed: int) -> str:
    return layout.features(layout.content_key({"set": folder, "extractor": spec.identity(),
                                               "num_samples": num_samples, "max_samples": max_samples, "seed": seed}))


def compute_set_features(sets: dict[str, int | None], store: Store, specs: Sequence[ExtractorSpec], max_samples: int,
                         seed: int, batch_size: int, num_gpus: float,
                         num_actors: int) -> dict[str, dict[str, SetFeatures | str]]:
    """Pooled features of each shard set under each extractor (from the store's cache where present), or
    the error that stopped them, by folder and extractor kind.

    ``sets`` maps each folder to its ``num_samples`` for IS and FD (None: every row, for the reference
    statistics); ``max_samples`` bounds the KID/P-R subset; ``seed`` fixes which rows are drawn. Each
    cache file is made under a lease: what a concurrent sweep is extracting is waited for and reused.
    """
    out: dict[str, dict[str, SetFeatures | str]] = {f: {} for f in sets}
    missing: dict[str, tuple[str, ExtractorSpec]] = {}
    for folder, num_samples in sets.items():
        for spec in specs:
            path = _cache_path(folder, spec, num_samples, max_samples, seed)
            data = read_trusted(store, path)
            if data is None:
                missing[path] = (folder, spec)
            else:
                out[folder][spec.kind] = SetFeatures.from_bytes(data)
    cached = sum(len(v) == len(specs) for v in out.values())
    status(f"[features] {len(sets)} sets ({', '.join(s.kind for s in specs)}): {cached} cached in the store, "
           f"{len(sets) - cached} to extract")
    made: dict[str, SetFeatures | str] = {}
    for owned in in_turns(store, list(missing), done=store.exists):
        made.update(_extract({path: missing[path] for path in owned}, sets, store, max_samples, seed, batch_size,
                             num_gpus, num_actors))
    for path, (folder, spec) in missing.items():
        if path not in made:  # made by a concurrent sweep
            data = read_trusted(store, path)
            made[path] = (SetFeatures.from_bytes(data) if data is not None
                          else f"the {spec.kind} features of {folder} are missing from the store")
        out[folder][spec.kind] = made[path]
    return out


def _extract(owned: dict[str, tuple[str, ExtractorSpec]], sets: dict[str, int | None], store: Store,
             max_samples: int, seed: int, batch_size: int, num_gpus: float,
             num_actors: int) -> dict[str, SetFeatures | str]:
    """The ``owned`` features (cache path → set folder and extractor), pooled, each cached; or their errors."""
    kinds: dict[str, list[str]] = {}
    for folder, spec in owned.values():
        kinds.setdefault(folder, []).append(spec.kind)
    tasks = [(folder, rows, wanted) for folder, wanted in kinds.items()
             for rows in plan_rows(ShardSet(store, folder).manifest()["shards"], sets[folder], max_samples, seed,
                                   folder)]
    status(f"[features] extracting {len(kinds)} sets ({len(tasks)} shards)")
    needed = {spec.kind: spec for _, spec in owned.values()}
    actors = [FeatureWorker.options(num_cpus=1, num_gpus=num_gpus).remote(store.root, list(needed.values()),
                                                                          batch_size)
              for _ in range(min(num_actors, len(tasks)))]
    actor_pool = ray.util.ActorPool(actors)
    progress = Progress("features", total=len(tasks), unit="shards")
    parts: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for result in actor_pool.map_unordered(lambda a, t: a.shard.remote(*t), tasks):
        for kind, part in result["parts"].items():
            parts.setdefault((result["folder"], kind), []).append((result["index"], part))
        progress.advance()
    for actor in actors:
        ray.kill(actor)
    made = {path: pool(parts[folder, spec.kind]) for path, (folder, spec) in owned.items()}
    for path, features in made.items():
        if isinstance(features, SetFeatures):
            write_checked(store, features.to_bytes(), path)
    return made


@dataclass(frozen=True)
class Metric:
    """One metric of a sample set against the real set: the extractor outputs it needs and the record
    keys it writes, where ``{e}`` stands for the extractor kind. A metric whose keys do not name the
    extractor runs for one extractor only (:func:`is_extractor`)."""

    name: str
    needs: tuple[str, ...]
    keys: tuple[str, ...]
    compute: Callable[[SetFeatures, SetFeatures, int], tuple[float, ...]]

    @property
    def per_extractor(self) -> bool:
        return all("{e}" in k for k in self.keys)

    def record_keys(self, kind: str) -> tuple[str, ...]:
        return tuple(k.format(e=kind) for k in self.keys)


METRICS = (
    Metric("IS", ("logits",), ("is_mean", "is_std"),
           lambda fake, real, seed: inception_score_from_partials(fake.is_sums)),
    Metric("FD", ("features",), ("fd_{e}",), lambda fake, real, seed: (fake.stats.fid(real.stats),)),
    Metric("KID", ("features",), ("kid_{e}_mean", "kid_{e}_std"),
           lambda fake, real, seed: kid(real.subset, fake.subset, seed=seed)),
    Metric("precision/recall", ("features",), ("precision_{e}", "recall_{e}"),
           lambda fake, real, seed: precision_recall(real.subset, fake.subset, k=3)),
)
_METRIC_KEY = re.compile("|".join(re.escape(k).replace(re.escape("{e}"), "[a-z0-9-]+")
                                  for m in METRICS for k in m.keys))


def is_metric_key(key: str) -> bool:
    """Whether a record key holds a metric of some extractor (``fd_dinov2``, ``is_mean``, …)."""
    return _METRIC_KEY.fullmatch(key) is not None


def is_extractor(kinds: Sequence[str], provides: dict[str, tuple[str, ...]]) -> str | None:
    """The extractor whose logits give the Inception Score: Inception where listed, else the first with logits."""
    with_logits = [k for k in kinds if "logits" in provides.get(k, ())]
    return "inception" if "inception" in with_logits else next(iter(with_logits), None)


def sample_metrics(fake: dict[str, SetFeatures], real: dict[str, SetFeatures], provides: dict[str, tuple[str, ...]],
                   seed: int = 0) -> dict[str, float]:
    """The record fields of every metric each extractor's outputs allow: IS of the set, FD/KID/precision/recall
    against the real set; ``fake`` and ``real`` map extractor kinds to the sets' features."""
    kinds = list(fake)
    single = is_extractor(kinds, provides)
    out: dict[str, float] = {}
    for metric in METRICS:
        for kind in kinds:
            if set(metric.needs) <= set(provides[kind]) and (metric.per_extractor or kind == single):
                values = metric.compute(fake[kind], real[kind], seed)
                out.update(zip(metric.record_keys(kind), map(float, values), strict=True))
    return out


def extractor_kinds(config: SweepConfig, real: RealData) -> tuple[str, ...]:
    """The extractors a sweep measures with; ``auto``: domain features for small or grey images when a
    real-data classifier is trained, else Inception; ``none``: no metrics."""
    chosen = config.metrics.extractors
    if chosen == "none":
        return ()
    if chosen != "auto":
        return tuple(chosen)
    has_real = any(g.kind == "real" for g in config.generators)
    small = real.image_shape[0] == 1 or min(real.image_shape[1:]) < 32
    return ("domain",) if small and has_real else ("inception",)


def _specs(config: SweepConfig, real: RealData, store: Store, kinds: tuple[str, ...], cells: list[Cell],
           results: list[dict[str, Any]], recipe: Recipe) -> tuple[list[ExtractorSpec], dict[str, str]]:
    """The spec of each extractor kind, or why it cannot be had."""
    m = config.metrics
    specs, unavailable = [], {}
    for kind in kinds:
        if kind == "domain":
            models = [r["model"] for c, r in zip(cells, results, strict=True) if c.mode == "real" and r.get("model")]
            if not models:
                unavailable[kind] = "no classifier trained on real data for the domain features"
                continue
            specs.append(ExtractorSpec("domain", model_path=models[0], model_name=recipe.model,
                                       model_sha256=sha256_bytes(store.read_bytes(models[0])),
                                       image_shape=real.image_shape, num_classes=real.num_classes))
        elif kind == "dinov2":
            specs.append(ExtractorSpec("dinov2", weights=m.dinov2_weights,
                                       architecture=tuple(sorted(m.dinov2_architecture.items()))))
        else:
            specs.append(ExtractorSpec(kind, weights=m.inception_weights if kind == "inception" else None))
    return specs, unavailable


def measure(config: SweepConfig, real: RealData, store: Store, cells: list[Cell], results: list[dict[str, Any]],
            recipe: Recipe) -> dict[str, dict[str, Any]]:
    """IS, FD, KID and precision/recall in every listed feature space, by shard set folder: every complete
    sample set, and the real validation split (the Real row's figures: held-out real data against the train
    split). Each record says which extractors, weights and preprocessing made its numbers and how many rows
    they used. A failure here leaves the CAS results whole and is recorded as ``metrics_error``."""
    kinds = extractor_kinds(config, real)
    if not kinds:
        return {}
    m = config.metrics
    folders = [real.val.folder, *dict.fromkeys(c.sample_set.folder for c in cells if c.sample_set
                                               and ShardSet(store, c.sample_set.folder).is_complete())]
    specs, unavailable = _specs(config, real, store, kinds, cells, results, recipe)
    actors = m.num_actors or max(1, cluster_fits({"CPU": 1, "GPU": m.num_gpus}))
    try:
        features = compute_set_features({real.train.folder: None, **dict.fromkeys(folders, m.num_samples)}, store,
                                        specs, m.max_samples, m.seed, m.batch_size, m.num_gpus, actors) if specs else {}
    except Exception as err:  # noqa: BLE001 - e.g. a cluster that lost its actors: CAS results are kept
        status(f"[features] failed: {error_text(err, last_line=True)}")
        return {f: {"metrics_error": error_text(err, last_line=True)} for f in folders}
    provides = {s.kind: s.provides for s in specs}
    named = {"feature_extractors": list(kinds), "extractor_names": {s.kind: s.name for s in specs},
             "extractor_weights": {s.kind: s.weights_sha256 for s in specs},
             "preprocessing": {s.kind: s.preprocessing for s in specs}, "is_extractor": is_extractor(kinds, provides),
             "metrics_seed": m.seed, "metrics_num_samples_requested": m.num_samples}
    reference = features.get(real.train.folder, {})
    out = {}
    for f in folders:
        n = ShardSet(store, f).manifest()["n"]
        errors = dict(unavailable)
        usable = {}
        for spec in specs:
            problem = next((x[spec.kind] for x in (reference, features[f]) if isinstance(x[spec.kind], str)), None)
            if problem:
                errors[spec.kind] = problem
            else:
                usable[spec.kind] = features[f][spec.kind]
        record = {**named, "metrics_num_samples": min(n, m.num_samples),
                  "metrics_below_num_samples": n < m.num_samples,
                  "metrics_subset_samples": int(min(n, m.max_samples))}
        if usable:
            record.update(sample_metrics(usable, {k: reference[k] for k in usable}, provides, m.seed))
        if errors:
            record["metrics_error"] = "; ".join(f"{kind}: {text}" for kind, text in errors.items())
        out[f] = record
    return out
