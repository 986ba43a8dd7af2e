"""The sweep's metrics stage: which rows are measured, per-shard summaries pool exactly, every extractor in one
pass, and results are cached."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from harness.classify.models import build_model
from harness.config import DatasetConfig
from harness.data import materialize
from harness.metrics import FeatureStats, inception_score
from harness.metrics.extractors import ExtractorSpec, build_extractor
from harness.metrics.features import extract
from harness.metrics.rows import IS_SPLITS, class_allocation, plan_rows
from harness.metrics.sets import (
    SetFeatures,
    compute_set_features,
    inception_score_from_partials,
    is_metric_key,
    is_partials,
    pool,
    sample_metrics,
    shard_summary,
)
from harness.shards import ShardSet
from harness.store import Store

CLASSES = 100


class ClassRevealing:
    """Features: the one-hot class written in every pixel; logits: 30 × that, so p(y|x) is the class."""

    provides = ("features", "logits")
    name = "class-revealing"

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        one_hot = torch.nn.functional.one_hot(images[:, 0, 0, 0].long(), CLASSES).float()
        return {"features": one_hot, "logits": 30 * one_hot}


@pytest.fixture(scope="module")
def sorted_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[ShardSet, np.ndarray]:
    """A 100-class set of 3,000 rows written class-sorted (class c: 10 + c % 41 rows) in shards of 700."""
    store = Store(str(tmp_path_factory.mktemp("store")))
    labels = np.repeat(np.arange(CLASSES), 10 + np.arange(CLASSES) % 41)[:3000]
    labels = np.concatenate([labels, np.full(3000 - len(labels), CLASSES - 1)])
    images = np.broadcast_to(labels[:, None, None, None], (3000, 1, 4, 4)).astype(np.uint8)
    shards = ShardSet(store, "samples/sorted")
    entries = [shards.write_shard(i, images[a:a + 700], labels[a:a + 700], CLASSES)
               for i, a in enumerate(range(0, 3000, 700))]
    shards.write_manifest({}, entries, CLASSES, (1, 4, 4))
    return shards, labels


def summaries(shards: ShardSet, num_samples: int | None, max_samples: int, seed: int = 0) -> SetFeatures:
    """The pooled features of a shard set, shard by shard as the feature actors make them, without Ray."""
    parts = []
    for rows in plan_rows(shards.manifest()["shards"], num_samples, max_samples, seed, shards.folder):
        images, labels = shards.read_shard(rows.entry)
        part = shard_summary(images, labels, rows, {"x": ClassRevealing()}, 64, torch.device("cpu"))
        parts.append((rows.index, part["x"]))
    return pool(parts)


def test_kid_subset_covers_every_class_and_is_splits_mix_classes(sorted_set) -> None:
    shards, labels = sorted_set
    features = summaries(shards, num_samples=1000, max_samples=200)
    subset_classes = features.subset.argmax(1)
    assert len(subset_classes) == 200 and set(subset_classes) == set(range(CLASSES))
    expected = class_allocation(np.bincount(labels, minlength=CLASSES), 200)
    assert np.array_equal(np.bincount(subset_classes, minlength=CLASSES), expected)

    assert features.stats.n == 1000 and features.is_sums["n"].tolist() == [100] * IS_SPLITS
    per_split = np.round(features.is_sums["sum_p"]).astype(int)  # the class histogram of each IS split
    assert (per_split.sum(1) == 100).all()
    assert min(np.count_nonzero(h) for h in per_split) > 40  # class-sorted splits would hold about 10 classes each
    measured = np.round(features.stats.sum_x).astype(int)  # the class histogram of the 1,000 measured rows
    assert np.count_nonzero(measured) > 90 and measured[:30].sum() < 500  # not the first rows (classes 0-29)


def test_the_reference_measures_every_row(sorted_set) -> None:
    shards, labels = sorted_set
    features = summaries(shards, num_samples=None, max_samples=10_000)
    assert features.stats.n == 3000 and np.array_equal(features.stats.sum_x, np.bincount(labels, minlength=CLASSES))
    assert len(features.subset) == 3000 and features.is_sums["n"].sum() == 3000


def test_rows_are_fixed_by_the_seed_and_the_set(sorted_set) -> None:
    shards, _ = sorted_set
    entries = shards.manifest()["shards"]

    def picked(seed: int, folder: str) -> list:
        return [(r.index, r.measured.tolist(), r.is_split.tolist(), {c: v.tolist() for c, v in r.subset.items()})
                for r in plan_rows(entries, 500, 150, seed, folder)]

    assert picked(0, "a") == picked(0, "a")
    assert picked(0, "a") != picked(1, "a") and picked(0, "a") != picked(0, "b")
    for rows in plan_rows(entries, 500, 150, 0, "a"):
        assert (np.diff(rows.measured) > 0).all() and rows.measured.max() < rows.entry["n"]
    assert sum(len(r.measured) for r in plan_rows(entries, 10**6, 150, 0, "a")) == 3000  # a set smaller than N


@pytest.mark.parametrize(("counts", "total"), [
    ([5, 1, 1, 1], 4), ([100, 1, 1, 1], 4), ([100, 1, 1, 1], 3), ([3, 0, 7, 2], 12), ([3, 0, 7, 2], 50),
    ([1000] * 7 + [1], 10), (list(range(1, 101)), 1000)])
def test_class_allocation(counts: list[int], total: int) -> None:
    alloc = class_allocation(counts, total)
    counts_ = np.array(counts)
    assert alloc.sum() == min(total, counts_.sum()) and (alloc <= counts_).all() and (alloc >= 0).all()
    if total >= np.count_nonzero(counts_):
        assert (alloc[counts_ > 0] >= 1).all()
    quota = counts_ * min(total, counts_.sum()) / counts_.sum()
    assert (np.abs(alloc - quota)[alloc > 1] < 1 + np.count_nonzero(counts_)).all()
    if total >= counts_.sum():
        assert np.array_equal(alloc, counts_)


def test_allocation_is_proportional_without_small_classes() -> None:
    assert class_allocation([100, 200, 300, 400], 10).tolist() == [1, 2, 3, 4]
    assert class_allocation([1, 1, 1], 2).tolist() == [1, 1, 0]


@pytest.mark.parametrize("cuts", [[0, 1000], [0, 3, 500, 1000], [0, 99, 100, 101, 777, 1000]])
def test_inception_score_pools_over_shards(cuts: list[int]) -> None:
    logits = np.random.default_rng(0).normal(size=(1000, 12)) * 3
    split = np.arange(1000) * IS_SPLITS // 1000
    parts = [is_partials(logits[a:b], split[a:b]) for a, b in zip(cuts, cuts[1:], strict=False)]
    pooled = {k: np.sum([p[k] for p in parts], axis=0) for k in parts[0]}
    mean, std = inception_score_from_partials(pooled)
    ref_mean, ref_std = inception_score(logits, splits=10)
    assert mean == pytest.approx(ref_mean, rel=1e-10) and std == pytest.approx(ref_std, rel=1e-8)


@pytest.mark.parametrize("with_logits", [True, False])
def test_set_features_round_trip(with_logits: bool) -> None:
    rng = np.random.default_rng(1)
    is_sums = is_partials(rng.normal(size=(20, 3)), np.arange(20) % 10) if with_logits else None
    f = SetFeatures(FeatureStats.from_features(rng.normal(size=(20, 4))), is_sums,
                    rng.normal(size=(5, 4)).astype(np.float32))
    g = SetFeatures.from_bytes(f.to_bytes())
    assert g.stats.n == 20 and np.array_equal(g.stats.sum_xx, f.stats.sum_xx) and np.array_equal(g.subset, f.subset)
    assert (g.is_sums is None) == (not with_logits)
    assert all(np.array_equal(g.is_sums[k], f.is_sums[k]) for k in f.is_sums or {})


def test_metrics_per_extractor_and_is_from_inception() -> None:
    rng = np.random.default_rng(2)

    def features(shift: float) -> SetFeatures:
        x = rng.normal(size=(60, 5)) + shift
        return SetFeatures(FeatureStats.from_features(x), is_partials(rng.normal(size=(60, 4)), np.arange(60) % 10),
                           x.astype(np.float32))

    fake = {"dinov2": features(1.0), "inception": features(0.5), "domain": features(0.0)}
    real = {k: features(0.0) for k in fake}
    provides = {"dinov2": ("features",), "inception": ("features", "logits"), "domain": ("features", "logits")}
    metrics = sample_metrics(fake, real, provides)
    assert set(metrics) == {"is_mean", "is_std"} | {f"{m}_{e}" for e in fake for m in ("fd", "precision", "recall")} \
        | {f"kid_{e}_{s}" for e in fake for s in ("mean", "std")}
    assert metrics["is_mean"] == inception_score_from_partials(fake["inception"].is_sums)[0]
    assert metrics["fd_dinov2"] == pytest.approx(fake["dinov2"].stats.fid(real["dinov2"].stats))
    assert metrics["fd_dinov2"] > metrics["fd_inception"] > metrics["fd_domain"] >= 0
    only_domain = sample_metrics({"domain": fake["domain"]}, {"domain": real["domain"]}, provides)
    assert only_domain["is_mean"] == inception_score_from_partials(fake["domain"].is_sums)[0]
    assert "is_mean" not in sample_metrics({"dinov2": fake["dinov2"]}, {"dinov2": real["dinov2"]}, provides)
    assert all(is_metric_key(k) for k in metrics)
    assert not any(map(is_metric_key, ("fid", "kid_mean", "top1", "is_extractor", "fd_")))


@pytest.mark.slow
def test_domain_features_pool_exactly_across_actors(ray_local, tmp_path) -> None:
    store = Store(str(tmp_path))
    real = materialize(DatasetConfig(kind="digits"), store, shard_size=400)
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.save(build_model("resnet-tiny", 1, 10).state_dict(), buf)
    store.write_bytes(buf.getvalue(), "trials/x/model.pt")
    spec = ExtractorSpec("domain", model_path="trials/x/model.pt", model_name="resnet-tiny",
                         image_shape=real.image_shape, num_classes=10)
    sets = {real.train.folder: None, real.val.folder: 300}
    out = compute_set_features(sets, store, [spec], max_samples=500, seed=0, batch_size=100, num_gpus=0, num_actors=2)
    train, val = out[real.train.folder]["domain"], out[real.val.folder]["domain"]
    assert isinstance(train, SetFeatures) and train.stats.n == real.n_train and len(train.subset) == 500
    assert val.stats.n == 300 and len(val.subset) == 360 == real.val.manifest()["n"]

    extractor = build_extractor(spec, store, torch.device("cpu"))
    assert extractor.weights_sha256 is not None
    images, labels = real.train.read()
    outputs = extract(torch.from_numpy(images), extractor, 100)
    one_pass = FeatureStats.from_features(outputs["features"])
    assert np.allclose(train.stats.sum_xx, one_pass.sum_xx, rtol=1e-10, atol=0)
    rows = []  # the subset's rows, as the plan chose them, in set order
    for shard_rows, entry_start in zip(plan_rows(real.train.manifest()["shards"], None, 500, 0, real.train.folder),
                                       (0, 400, 800, 1200), strict=True):
        rows += (entry_start + shard_rows.subset_rows(labels[entry_start:entry_start + 400])).tolist()
    assert np.allclose(train.subset, outputs["features"][rows].astype(np.float32))
    assert set(labels[rows]) == set(range(10))

    val_images, _ = real.val.read()
    val_outputs = extract(torch.from_numpy(val_images), extractor, 100)
    [val_rows] = plan_rows(real.val.manifest()["shards"], 300, 500, 0, real.val.folder)
    assert np.allclose(val.stats.sum_x, val_outputs["features"][val_rows.measured].sum(0), rtol=1e-10)
    metrics = sample_metrics({"domain": val}, {"domain": train}, {"domain": spec.provides})
    assert metrics["fd_domain"] == pytest.approx(
        FeatureStats.from_features(val_outputs["features"][val_rows.measured]).fid(one_pass), rel=1e-9)
    assert 0 <= metrics["precision_domain"] <= 1 and metrics["is_mean"] >= 1

    cached = compute_set_features({real.train.folder: None}, store, [spec], 500, 0, 100, 0, 2)
    assert np.array_equal(cached[real.train.folder]["domain"].stats.sum_x, train.stats.sum_x)


@pytest.mark.slow
def test_inception_and_dinov2_in_one_pass_on_a_small_rgb_set(ray_local, tmp_path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8), np.arange(20) % 10)
    store = Store(str(tmp_path / "store"))
    real = materialize(DatasetConfig(kind="npz", params={"train": str(tmp_path / "train.npz"),
                                                         "test": str(tmp_path / "test.npz")}), store)
    tiny = (("depth", 1), ("embed_dim", 32), ("num_heads", 2))
    specs = [ExtractorSpec("inception", weights="random"), ExtractorSpec("dinov2", weights="random", architecture=tiny)]
    sets = {real.train.folder: None, real.val.folder: 10}
    out = compute_set_features(sets, store, specs, max_samples=20, seed=0, batch_size=10, num_gpus=0, num_actors=1)
    inception, dinov2 = out[real.train.folder]["inception"], out[real.train.folder]["dinov2"]
    assert inception.stats.dim == 2048 and inception.is_sums["sum_p"].shape == (10, 1008)
    assert dinov2.stats.dim == 32 and dinov2.is_sums is None and dinov2.stats.n == 20
    assert out[real.val.folder]["dinov2"].stats.n == 10
    fake, reference = out[real.val.folder], out[real.train.folder]
    metrics = sample_metrics(fake, reference, {s.kind: s.provides for s in specs})
    assert {"is_mean", "fd_inception", "fd_dinov2", "kid_dinov2_mean", "recall_inception"} <= set(metrics)
    assert np.isfinite(list(metrics.values())).all()

    again = compute_set_features(sets, store, specs[1:], 20, 0, 10, 0, 1)  # cached: no actor starts
    assert np.array_equal(again[real.val.folder]["dinov2"].stats.sum_x, fake["dinov2"].stats.sum_x)

    missing = ExtractorSpec("inception", weights=str(tmp_path / "absent.pth"))  # pinned weights, not at hand
    partial = compute_set_features(sets, store, [missing, specs[1]], 20, 0, 10, 0, 1)
    assert "absent.pth" in partial[real.val.folder]["inception"] and "does not exist" in partial[real.val.folder][
        "inception"]
    assert isinstance(partial[real.val.folder]["dinov2"], SetFeatures)  # the other extractor is unaffected
