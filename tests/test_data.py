"""Real data: the embedded digits split, the npz and folder readers, materialisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.config import ConfigError, DatasetConfig
from harness.data import materialize, read_splits
from harness.data.readers import cas_split_name
from harness.store import Store


def test_digits_split_is_fixed_stratified_and_disjoint() -> None:
    a = read_splits(DatasetConfig(kind="digits"))
    b = read_splits(DatasetConfig(kind="digits"))
    idx = np.arange(len(a.train.labels))
    assert np.array_equal(a.train.load(idx), b.train.load(idx))
    assert len(a.train.labels) + len(a.val.labels) == 1797
    assert len(a.val.labels) == 360 and a.image_shape == (1, 8, 8)
    train_share = np.bincount(a.train.labels) / np.bincount(np.concatenate([a.train.labels, a.val.labels]))
    assert np.all(np.abs(train_share - 0.8) < 0.02)
    images = a.train.load(idx)
    assert images.dtype == np.uint8 and images.max() == 255
    other = read_splits(DatasetConfig(kind="digits", split_seed=1))
    assert not np.array_equal(other.val.labels, a.val.labels)


def test_materialize_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    real = materialize(DatasetConfig(kind="digits"), store, shard_size=500)
    assert real.n_train == 1437 and real.num_classes == 10 and real.class_names[3] == "3"
    assert len(real.train.manifest()["shards"]) == 3
    stamp = (tmp_path / real.train.folder / "manifest.json").stat().st_mtime_ns
    again = materialize(DatasetConfig(kind="digits"), store, shard_size=500)
    assert again == real
    assert (tmp_path / real.train.folder / "manifest.json").stat().st_mtime_ns == stamp


def test_folder_dataset(tmp_path: Path) -> None:
    from PIL import Image

    for split, n in (("train", 3), ("val", 2)):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((20, 30, 3), 100 if c == "cat" else 200, np.uint8)).save(
                    tmp_path / split / c / f"{i}.png")
    (tmp_path / "train" / "ant").mkdir()  # created last, sorted first: class folders are sorted by name
    splits = read_splits(DatasetConfig(kind="folder", params={"root": str(tmp_path), "image_size": 8}))
    assert splits.class_names == ["ant", "cat", "dog"] and splits.image_shape == (3, 8, 8)
    assert splits.test_split == "test" and list(splits.test.labels) == [1, 1, 2, 2]
    images = splits.train.load(np.arange(6))
    assert images.shape == (6, 3, 8, 8) and list(splits.train.labels) == [1, 1, 1, 2, 2, 2]
    assert images[0].mean() == pytest.approx(100, abs=1) and images[5].mean() == pytest.approx(200, abs=1)
    with pytest.raises(ConfigError, match="must contain train/ and val/"):
        read_splits(DatasetConfig(kind="folder", params={"root": str(tmp_path / "train")}))


def test_npz_dataset_is_tested_on_its_test_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (50, 6, 6, 3), dtype=np.uint8), rng.integers(0, 256, (20, 6, 6, 3),
                                                                                         dtype=np.uint8)
    np.savez(tmp_path / "train.npz", train_x, np.arange(50) % 5)
    np.savez(tmp_path / "test.npz", test_x, np.arange(20) % 5)
    params = {"train": str(tmp_path / "train.npz"), "test": str(tmp_path / "test.npz")}
    splits = read_splits(DatasetConfig(kind="npz", params=params))
    assert splits.test_split == "test" and splits.image_shape == (3, 6, 6) and splits.monitor is None
    assert np.array_equal(splits.test.load(np.arange(20)), test_x.transpose(0, 3, 1, 2))
    assert np.array_equal(splits.train.load(np.array([3, 1])), train_x[[3, 1]].transpose(0, 3, 1, 2))
    monitored = read_splits(DatasetConfig(kind="npz", params=params, val_fraction=0.2, split_seed=3))
    assert np.array_equal(monitored.test.labels, splits.test.labels)
    assert len(monitored.train.labels) == 40 and np.bincount(monitored.monitor.labels).tolist() == [2] * 5
    kept = {im.tobytes() for im in monitored.train.load(np.arange(40))}
    carved = {im.tobytes() for im in monitored.monitor.load(np.arange(10))}
    assert not kept & carved and len(kept | carved) == 50


def test_the_split_cas_is_measured_on_is_named() -> None:
    assert cas_split_name(DatasetConfig(kind="digits")) == "val"
    official = (("cifar10", {}), ("mnist", {}), ("npz", {"train": "a", "test": "b"}), ("folder", {"root": "r"}))
    for kind, params in official:
        assert cas_split_name(DatasetConfig(kind=kind, params=params)) == "test"
    digits = read_splits(DatasetConfig(kind="digits"))
    assert digits.test_split == "val" and digits.monitor is None


def test_npz_dataset_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", np.zeros((4, 8, 8, 3), np.float32), np.zeros(4, int))
    cfg = DatasetConfig(kind="npz", params={"train": str(tmp_path / "t.npz"), "test": str(tmp_path / "t.npz")})
    with pytest.raises(ConfigError, match=r"dataset.params.train: .*t.npz arr_0 must be uint8 N×H×W×C, got float32"):
        read_splits(cfg)
    with pytest.raises(ValueError, match=r"dataset kind 'npz' needs params \['test'\]"):
        DatasetConfig(kind="npz", params={"train": "x"})
    with pytest.raises(ValueError, match=r"unknown params \['root'\] for dataset kind 'digits'"):
        DatasetConfig(kind="digits", params={"root": "x"})


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-format (IDX) file: magic, big-endian dimensions, then the uint8 data."""
    code = 0x0800 + array.ndim
    header = code.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reader_on_files_the_test_writes(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    train_y, test_y = np.arange(50) % 10, np.arange(20) % 10
    for name, array in (("train-images-idx3-ubyte", train_x), ("train-labels-idx1-ubyte", train_y),
                        ("t10k-images-idx3-ubyte", test_x), ("t10k-labels-idx1-ubyte", test_y)):
        _write_idx(raw / name, array)
    splits = read_splits(DatasetConfig(kind="mnist", params={"root": str(tmp_path), "download": False}))
    assert splits.image_shape == (1, 28, 28) and len(splits.class_names) == 10
    assert np.array_equal(splits.train.load(np.arange(50))[:, 0], train_x)
    assert np.array_equal(splits.test.labels, test_y) and splits.test_split == "test" and splits.monitor is None
    carved = read_splits(DatasetConfig(kind="mnist", val_fraction=0.2,
                                       params={"root": str(tmp_path), "download": False}))
    # val_fraction carves a monitoring split off train; CAS is still measured on the official test split
    assert np.array_equal(carved.test.load(np.arange(20))[:, 0], test_x) and carved.test_split == "test"
    assert len(carved.train.labels) == 40 and len(carved.monitor.labels) == 10
    assert np.bincount(carved.monitor.labels).tolist() == [1] * 10
    train_images = {im.tobytes() for im in carved.train.load(np.arange(40))}
    monitor_images = {im.tobytes() for im in carved.monitor.load(np.arange(10))}
    assert train_images | monitor_images == {im.tobytes() for im in train_x.astype(np.uint8)[:, None]}
    assert not train_images & monitor_images
