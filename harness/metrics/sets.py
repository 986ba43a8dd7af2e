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
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from scipy.special import log_softmax, xlogy

from harness.metrics.features import DomainExtractor, InceptionExtractor, extract
from harness.metrics.inception import FEATURE_EXTRACTOR, PREPROCESSING
from harness.metrics.scores import kid, precision_recall
from harness.metrics.stats import FeatureStats
from harness.progress import Progress, status
from harness.shards import ShardSet
from harness.store import Store, spec_key

DOMAIN_PREPROCESSING = "uint8 -> float32 -> x / 127.5 - 1 at native resolution (the classifier's own input)"
IS_SPLITS = 10


@dataclass(frozen=True)
class ExtractorSpec:
    """Which network gives features: ``inception`` or ``domain`` (a classifier in the store)."""

    kind: str
    inception_weights: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    image_shape: tuple[int, int, int] = (3, 0, 0)
    num_classes: int = 0

    @property
    def name(self) -> str:
        if self.kind == "inception":
            return FEATURE_EXTRACTOR
        return f"domain-{self.model_name}-{spec_key(self.model_path)}"

    @property
    def preprocessing(self) -> str:
        return PREPROCESSING if self.kind == "inception" else DOMAIN_PREPROCESSING


def build_extractor(spec: ExtractorSpec, store: Store, device: torch.device) -> Any:
    """The extractor callable on ``device``: uint8 batch -> (features, logits)."""
    if spec.kind == "inception":
        net = InceptionExtractor(spec.inception_weights).to(device)
        return lambda x: net(x.expand(-1, 3, -1, -1))
    from harness.classify.models import build_model

    model = build_model(spec.model_name, spec.image_shape[0], spec.num_classes)
    state = torch.load(io.BytesIO(store.read_bytes(spec.model_path)), weights_only=True, map_location="cpu")
    model.load_state_dict(state)
    model = model.to(device).eval()
    return DomainExtractor(model.body, model.head, lambda x: x.float() / 127.5 - 1, spec.name, DOMAIN_PREPROCESSING)


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
    return f"features/{spec_key({'set': folder, 'extractor': spec.name, 'max_samples': max_samples})}.npz"


def compute_set_features(folders: list[str], store: Store, spec: ExtractorSpec, max_samples: int,
                         batch_size: int, num_gpus: float, num_actors: int) -> dict[str, SetFeatures | str]:
    """Pooled features of each shard set (from the store's cache where present), or its error."""
    out: dict[str, SetFeatures | str] = {}
    tasks = []
    for folder in folders:
        if store.exists(_cache_path(folder, spec, max_samples)):
            out[folder] = SetFeatures.from_bytes(store.read_bytes(_cache_path(folder, spec, max_samples)))
            continue
        entries = ShardSet(store, folder).manifest()["shards"]
        total, first = sum(e["n"] for e in entries), 0
        for entry in entries:
            tasks.append((folder, entry, first, total, max_samples))
            first += entry["n"]
    status(f"[features] {len(folders)} sets ({spec.name}): {len(out)} cached in the store, "
          f"{len(folders) - len(out)} to extract ({len(tasks)} shards)")
    if not tasks:
        return out
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
    for folder, results in parts.items():
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            out[folder] = errors[0]
            continue
        stats = FeatureStats.from_dict(results[0]["stats"])
        for r in results[1:]:
            stats = stats.merge(FeatureStats.from_dict(r["stats"]))
        is_sums = {k: np.sum([r["is"][k] for r in results], axis=0) for k in ("n", "sum_p", "sum_plogp")}
        subset = np.concatenate([r["kept"] for r in sorted(results, key=lambda r: r["first_row"])])
        out[folder] = SetFeatures(stats, is_sums, subset)
        store.write_bytes(out[folder].to_bytes(), _cache_path(folder, spec, max_samples))
    return out


def sample_metrics(fake: SetFeatures, real: SetFeatures, seed: int = 0) -> dict[str, float]:
    """The record fields: IS of the set, FID/KID/precision/recall against the real set."""
    is_mean, is_std = inception_score_from_partials(fake.is_sums)
    kid_mean, kid_std = kid(real.subset, fake.subset, seed=seed)
    precision, recall = precision_recall(real.subset, fake.subset, k=3)
    return {"is_mean": is_mean, "is_std": is_std, "fid": fake.stats.fid(real.stats),
            "kid_mean": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall}
