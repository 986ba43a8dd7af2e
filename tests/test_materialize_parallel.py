"""Materialising a folder dataset with Ray workers beside this process gives the same shards as this process alone."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from harness.config import DatasetConfig
from harness.data import materialize
from harness.store import Store

materialize_module = importlib.import_module("harness.data.materialize")  # the package exports a function of that name


def write_folder(root: Path, per_class: dict[str, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, scale in (("train", 1), ("val", 0.2)):
        for name, n in per_class.items():
            (root / split / name).mkdir(parents=True)
            for i in range(int(n * scale)):
                pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")


@pytest.mark.slow
def test_parallel_materialize_matches_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    import ray

    write_folder(tmp_path / "data", {"a": 150, "b": 100, "c": 50})
    cfg = DatasetConfig(kind="folder", params={"root": str(tmp_path / "data"), "image_size": 8})
    monkeypatch.setattr(materialize_module, "MIN_PARALLEL_IMAGES", 300)  # the dataset holds 360 images
    monkeypatch.setattr(materialize_module, "MIN_CHUNK_IMAGES", 20)
    assert materialize_module._ray_workers_wanted(360) == 0  # no Ray: this process alone
    serial = materialize(cfg, Store(str(tmp_path / "serial")), shard_size=70)
    assert "[dataset folder/train] 5/5 shards" in capsys.readouterr().err
    for cpus in (2, 3):
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
        try:
            assert materialize_module._ray_workers_wanted(360) == cpus - 1
            assert materialize_module._ray_workers_wanted(299) == 0  # too small to repay a worker's start
            parallel = materialize(cfg, Store(str(tmp_path / f"parallel-{cpus}")), shard_size=70)
        finally:
            ray.shutdown()
        err = capsys.readouterr().err
        assert "[dataset folder/train] 5/5 shards" in err and "[dataset folder/val] 1/1 shards" in err
        for a, b in ((serial.train, parallel.train), (serial.val, parallel.val)):
            assert a.manifest() == b.manifest()
    manifest = serial.train.manifest()
    assert manifest["counts"] == [150, 100, 50] and [s["n"] for s in manifest["shards"]] == [70, 70, 70, 70, 20]
    assert all(min(s["counts"]) > 0 for s in manifest["shards"])  # shards mix the classes
    images, labels = parallel.train.read()
    assert images.shape == (300, 3, 8, 8) and np.bincount(labels).tolist() == [150, 100, 50]
