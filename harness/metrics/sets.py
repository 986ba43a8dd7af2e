"""IS, FID, KID and precision/recall of every sample set of a sweep, pooled across actors.

Feature actors (one per GPU, or CPU actors) each load the extractor once and work shard by
shard. A shard gives back exact float64 sums (:class:`FeatureStats`), the Inception Score's
per-split sums, and the features of its first rows up to ``max_samples`` per set, so the
driver pools a set's shards exactly, never averaging per-shard scores. Each set's pooled
result is cached in the store under a key of the shard set and the extractor, so the
real data's statistics are computed once per store and reused across sweeps.

The extractor is ``inception`` (the standard FID Inception-v3, for numbers comparable with
published tables) or ``domain``: the penultimate layer and logits of the classifier
trained on the real train split in the same sweep (for data such as 8×8 digits, where
ImageNet features mean little).
"""

from __future__ import annotations

import io
from collections.abc import Callable
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
from harness.metrics.features import extract
from harness.metrics.scores import kid, precision_recall
from harness.metrics.stats import FeatureStats
from harness.plan import Cell
from harness.progress import Progress, status
from harness.ray_env import cluster_fits, error_text
from harness.shards import ShardSet
from harness.store import Store
from harness.verify import read_trusted, write_checked

IS_SPLITS = 10


def split_bounds(n: int, splits: int = IS_SPLITS) -> np.ndarray:
    """Row boundaries of the Inception Score's splits (as :func:`inception_score` cuts them)."""
    return np.array([i * n // splits for i in range(splits + 1)])


def is_partials(logits: np.ndarray, first_row: int, total: int, splits: int = IS_SPLITS) -> dict[str, np.ndarray]:
    """Per-split sums (count, Σ p(y|x), Σ p log p) of rows ``first_row…``: they add up across shards."""
    log_p = log_softmax(logits, axis=1)
    p = np.exp(log_p)
    split = np.searchsorted(split_bounds(total, splits), first_row + np.arange(len(logits)), side="right") - 1
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


@ray.remote
class FeatureWorker:
    """Holds one extractor and turns shards into poolable feature summaries."""

    def __init__(self, store_root: str, spec: ExtractorSpec, batch_size: int) -> None:
        self.store = Store(store_root)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.extractor = build_extractor(spec, self.store, self.device)
        self.batch_size = batch_size

    def shard(self, folder: str, entry: dict[str, Any], first_row: int, total: int, keep: int) -> dict[str, Any]:
        try:
            images, _ = ShardSet(self.store, folder).read_shard(entry)
            features, logits = extract(torch.from_numpy(images), self.extractor, self.batch_size, self.device)
            return {"folder": folder, "stats": FeatureStats.from_features(features).to_dict(),
                    "is": is_partials(logits, first_row, total),
                    "kept": features[:max(0, keep - first_row)].astype(np.float32), "first_row": first_row}
        except Exception as err:  # noqa: BLE001 - returned as a value so the set, not the pool, fails
            return {"folder": folder, "error": f"{type(err).__name__}: {err}"}


@dataclass
class SetFeatures:
    """A shard set's pooled features: exact statistics, IS sums and a feature subset."""

    stats: FeatureStats
    is_sums: dict[str, np.ndarray]
    subset: np.ndarray

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, subset=self.subset, **{f"is_{k}": v for k, v in self.is_sums.items()},
                 **{f"stats_{k}": v for k, v in self.stats.to_dict().items()})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SetFeatures:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            stats = FeatureStats.from_dict({k: z[f"stats_{k}"] for k in ("n", "sum_x", "sum_xx")})
            return cls(stats, {k: z[f"is_{k}"] for k in ("n", "sum_p", "sum_plogp")}, z["subset"])


def _cache_path(folder: str, spec: ExtractorSpec, max_samples: int) -> str:
    return layout.features(layout.content_key({"set": folder, "extractor": spec.name, "max_samples": max_samples}))


def compute_set_features(folders: list[str], store: Store, spec: ExtractorSpec, max_samples: int,
                         batch_size: int, num_gpus: float, num_actors: int) -> dict[str, SetFeatures | str]:
    """Pooled features of each shard set (from the store's cache where present), or its error.

    A cached file that does not match its checksum is removed and made again; a set that a
    concurrent sweep is extracting is waited for and reused (leases on the cache files)."""
    out: dict[str, SetFeatures | str] = {}
    missing: dict[str, str] = {}
    for folder in folders:
        data = read_trusted(store, _cache_path(folder, spec, max_samples))
        if data is None:
            missing[_cache_path(folder, spec, max_samples)] = folder
        else:
            out[folder] = SetFeatures.from_bytes(data)
    status(f"[features] {len(folders)} sets ({spec.name}): {len(out)} cached in the store, "
           f"{len(missing)} to extract")
    for owned in in_turns(store, list(missing), done=store.exists):
        out.update(_extract({path: missing[path] for path in owned}, store, spec, max_samples, batch_size,
                            num_gpus, num_actors))
    for path, folder in missing.items():
        if folder not in out:
            data = read_trusted(store, path)
            out[folder] = SetFeatures.from_bytes(data) if data is not None else f"features of {folder} are missing"
    return out


def _extract(sets: dict[str, str], store: Store, spec: ExtractorSpec, max_samples: int, batch_size: int,
             num_gpus: float, num_actors: int) -> dict[str, SetFeatures | str]:
    """Extract and pool the features of ``sets`` (cache path → shard set folder), caching each."""
    out: dict[str, SetFeatures | str] = {}
    tasks = []
    for folder in sets.values():
        entries = ShardSet(store, folder).manifest()["shards"]
        total, first = sum(e["n"] for e in entries), 0
        for entry in entries:
            tasks.append((folder, entry, first, total, max_samples))
            first += entry["n"]
    status(f"[features] extracting {len(sets)} sets ({len(tasks)} shards)")
    actors = [FeatureWorker.options(num_cpus=1, num_gpus=num_gpus).remote(store.root, spec, batch_size)
              for _ in range(min(num_actors, len(tasks)))]
    pool = ray.util.ActorPool(actors)
    progress = Progress("features", total=len(tasks), unit="shards")
    parts: dict[str, list[dict[str, Any]]] = {}
    for part in pool.map_unordered(lambda a, t: a.shard.remote(*t), tasks):
        parts.setdefault(part["folder"], []).append(part)
        progress.advance()
    for actor in actors:
        ray.kill(actor)
    for path, folder in sets.items():
        results = sorted(parts[folder], key=lambda r: r.get("first_row", -1))  # shard order: the same sums every run
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            out[folder] = errors[0]
            continue
        stats = FeatureStats.from_dict(results[0]["stats"])
        for r in results[1:]:
            stats = stats.merge(FeatureStats.from_dict(r["stats"]))
        is_sums = {k: np.sum([r["is"][k] for r in results], axis=0) for k in ("n", "sum_p", "sum_plogp")}
        subset = np.concatenate([r["kept"] for r in results])
        features = SetFeatures(stats, is_sums, subset)
        write_checked(store, features.to_bytes(), path)
        out[folder] = features
    return out


@dataclass(frozen=True)
class Metric:
    """One metric of a sample set against the real set: the extractor outputs it needs and the
    record keys it writes."""

    name: str
    needs: tuple[str, ...]
    keys: tuple[str, ...]
    compute: Callable[[SetFeatures, SetFeatures, int], tuple[float, ...]]


METRICS = (
    Metric("IS", ("logits",), ("is_mean", "is_std"),
           lambda fake, real, seed: inception_score_from_partials(fake.is_sums)),
    Metric("FID", ("features",), ("fid",), lambda fake, real, seed: (fake.stats.fid(real.stats),)),
    Metric("KID", ("features",), ("kid_mean", "kid_std"),
           lambda fake, real, seed: kid(real.subset, fake.subset, seed=seed)),
    Metric("precision/recall", ("features",), ("precision", "recall"),
           lambda fake, real, seed: precision_recall(real.subset, fake.subset, k=3)),
)
#: Every record key a metric writes, in column order.
METRIC_KEYS = tuple(key for m in METRICS for key in m.keys)


def sample_metrics(fake: SetFeatures, real: SetFeatures, provides: tuple[str, ...] = ("features", "logits"),
                   seed: int = 0) -> dict[str, float]:
    """The record fields of every metric the extractor's outputs allow: IS of the set,
    FID/KID/precision/recall against the real set."""
    out: dict[str, float] = {}
    for metric in METRICS:
        if set(metric.needs) <= set(provides):
            out.update(zip(metric.keys, map(float, metric.compute(fake, real, seed)), strict=True))
    return out


def extractor_kind(config: SweepConfig, real: RealData) -> str:
    """The feature extractor ``auto`` stands for: domain features for small or grey images."""
    kind = config.metrics.feature_extractor
    if kind != "auto":
        return kind
    has_real = any(g.kind == "real" for g in config.generators)
    small = real.image_shape[0] == 1 or min(real.image_shape[1:]) < 32
    return "domain" if small and has_real else "inception"


def measure(config: SweepConfig, real: RealData, store: Store, cells: list[Cell], results: list[dict[str, Any]],
            recipe: Recipe) -> dict[str, dict[str, Any]]:
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
        models = [r["model"] for c, r in zip(cells, results, strict=True) if c.mode == "real" and r.get("model")]
        if not models:
            return {f: {"metrics_error": "no classifier trained on real data for the domain features"}
                    for f in folders}
        spec = ExtractorSpec("domain", model_path=models[0], model_name=recipe.model,
                             image_shape=real.image_shape, num_classes=real.num_classes)
    else:
        spec = ExtractorSpec("inception", inception_weights=m.inception_weights)
    actors = m.num_actors or max(1, cluster_fits({"CPU": 1, "GPU": m.num_gpus}))
    try:
        features = compute_set_features([real.train.folder, *folders], store, spec, m.max_samples, m.batch_size,
                                        m.num_gpus, actors)
    except Exception as err:  # noqa: BLE001 - e.g. weights that cannot be fetched: CAS results are kept
        status(f"[features] failed: {error_text(err, last_line=True)}")
        return {f: {"metrics_error": error_text(err, last_line=True)} for f in folders}
    reference = features[real.train.folder]
    named = {"feature_extractor": spec.name, "preprocessing": spec.preprocessing}
    out = {}
    for f in folders:
        problem = reference if isinstance(reference, str) else features[f] if isinstance(features[f], str) else None
        out[f] = {**named, **({"metrics_error": problem} if problem else
                              sample_metrics(features[f], reference, spec.provides))}
    return out
