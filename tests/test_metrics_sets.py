"""The sweep's metrics stage: per-shard summaries pool exactly, and results are cached."""

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
from harness.metrics.sets import (
    SetFeatures,
    compute_set_features,
    inception_score_from_partials,
    is_partials,
    sample_metrics,
)
from harness.store import Store


@pytest.mark.parametrize("cuts", [[0, 1000], [0, 3, 500, 1000], [0, 99, 100, 101, 777, 1000]])
def test_inception_score_pools_over_shards(cuts: list[int]) -> None:
    logits = np.random.default_rng(0).normal(size=(1000, 12)) * 3
    parts = [is_partials(logits[a:b], a, 1000) for a, b in zip(cuts, cuts[1:], strict=False)]
    pooled = {k: np.sum([p[k] for p in parts], axis=0) for k in parts[0]}
    mean, std = inception_score_from_partials(pooled)
    ref_mean, ref_std = inception_score(logits, splits=10)
    assert mean == pytest.approx(ref_mean, rel=1e-10) and std == pytest.approx(ref_std, rel=1e-8)


def test_set_features_round_trip() -> None:
    rng = np.random.default_rng(1)
    f = SetFeatures(FeatureStats.from_features(rng.normal(size=(20, 4))),
                    is_partials(rng.normal(size=(20, 3)), 0, 20), rng.normal(size=(5, 4)).astype(np.float32))
    g = SetFeatures.from_bytes(f.to_bytes())
    assert g.stats.n == 20 and np.array_equal(g.stats.sum_xx, f.stats.sum_xx) and np.array_equal(g.subset, f.subset)
    assert all(np.array_equal(g.is_sums[k], f.is_sums[k]) for k in f.is_sums)


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
    out = compute_set_features([real.train.folder, real.val.folder], store, spec, max_samples=500,
                               batch_size=100, num_gpus=0, num_actors=2)
    train = out[real.train.folder]
    assert isinstance(train, SetFeatures) and train.stats.n == real.n_train and len(train.subset) == 500

    images, _ = real.train.read()
    features, logits = extract(torch.from_numpy(images), build_extractor(spec, store, torch.device("cpu")), 100)
    one_pass = FeatureStats.from_features(features)
    assert np.allclose(train.stats.sum_xx, one_pass.sum_xx, rtol=1e-10, atol=0)
    assert np.allclose(train.subset, features[:500].astype(np.float32))
    assert inception_score_from_partials(train.is_sums) == pytest.approx(inception_score(logits), rel=1e-9)

    metrics = sample_metrics(out[real.val.folder], train)
    assert set(metrics) == {"is_mean", "is_std", "fid", "kid_mean", "kid_std", "precision", "recall"}
    assert metrics["fid"] >= 0 and 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1
    assert metrics["fid"] == pytest.approx(out[real.val.folder].stats.fid(one_pass), rel=1e-9)

    cached = compute_set_features([real.train.folder], store, spec, 500, 100, 0, 2)
    assert np.array_equal(cached[real.train.folder].stats.sum_x, train.stats.sum_x)


@pytest.mark.slow
def test_inception_features_of_a_small_rgb_set(ray_local, tmp_path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8), np.arange(20) % 10)
    store = Store(str(tmp_path / "store"))
    real = materialize(DatasetConfig(kind="npz", params={"train": str(tmp_path / "train.npz"),
                                                         "test": str(tmp_path / "test.npz")}), store)
    spec = ExtractorSpec("inception", inception_weights="random")
    out = compute_set_features([real.train.folder, real.val.folder], store, spec, max_samples=20,
                               batch_size=10, num_gpus=0, num_actors=1)
    assert out[real.train.folder].stats.dim == 2048 and out[real.train.folder].is_sums["sum_p"].shape == (10, 1008)
    metrics = sample_metrics(out[real.val.folder], out[real.train.folder])
    assert np.isfinite(list(metrics.values())).all()
