"""Readers for each real dataset kind, returning a train and a validation split.

A split knows all its labels up front and loads images by index, so that a large dataset
(an ImageNet folder) is turned into shards chunk by chunk, never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ConfigError, DatasetConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".JPEG"}
DEFAULT_ROOT = Path.home() / ".cache" / "cas-harness" / "data"


@dataclass
class Split:
    """Labels of a split and a loader of its images (uint8 N×C×H×W) by index."""

    labels: np.ndarray
    load: Callable[[np.ndarray], np.ndarray]


@dataclass
class Splits:
    train: Split
    val: Split
    class_names: list[str]
    image_shape: tuple[int, int, int]


def _in_memory(images: np.ndarray, labels: np.ndarray) -> Split:
    return Split(labels=np.asarray(labels, dtype=np.int64), load=lambda idx: images[idx])


def _stratified(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train_idx, val_idx = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=labels)
    return np.sort(train_idx), np.sort(val_idx)


def _split_arrays(images: np.ndarray, labels: np.ndarray, cfg: DatasetConfig,
                  default_fraction: float) -> tuple[Split, Split]:
    train_idx, val_idx = _stratified(labels, cfg.val_fraction or default_fraction, cfg.split_seed)
    return _in_memory(images[train_idx], labels[train_idx]), _in_memory(images[val_idx], labels[val_idx])


def read_digits(cfg: DatasetConfig) -> Splits:
    """scikit-learn's 1,797 8×8 digits (ships with scikit-learn: no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    train, val = _split_arrays(images, digits.target.astype(np.int64), cfg, default_fraction=0.2)
    return Splits(train, val, [str(i) for i in range(10)], (1, 8, 8))


_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def read_torchvision(cfg: DatasetConfig) -> Splits:
    """MNIST, Fashion-MNIST, CIFAR-10/100 via torchvision (downloaded once to ``root``).

    With ``val_fraction`` the validation split is carved, stratified, from the official
    train split (the paper's CIFAR-10 protocol: 45k/5k); without it, the official test
    split is the validation split.
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[cfg.kind])
    root = Path(cfg.params["root"] or DEFAULT_ROOT).expanduser()
    download = bool(cfg.params["download"])

    def arrays(train: bool) -> tuple[np.ndarray, np.ndarray]:
        ds = cls(root=str(root), train=train, download=download)
        data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
        images = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(images, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64)

    train_images, train_labels = arrays(train=True)
    if cfg.val_fraction:
        train, val = _split_arrays(train_images, train_labels, cfg, cfg.val_fraction)
    else:
        train, val = _in_memory(train_images, train_labels), _in_memory(*arrays(train=False))
    ds = cls(root=str(root), train=False, download=False)
    return Splits(train, val, [str(c) for c in ds.classes], tuple(train_images.shape[1:]))


def read_npz(cfg: DatasetConfig) -> Splits:
    """``.npz`` files with arr_0 = uint8 N×H×W×C images and arr_1 = labels (ADM's format)."""
    train_images, train_labels = read_npz_batch(Path(cfg.params["train"]), "dataset.params.train")
    val_images, val_labels = read_npz_batch(Path(cfg.params["val"]), "dataset.params.val")
    if train_images.shape[1:] != val_images.shape[1:]:
        raise ConfigError(f"dataset: train images are {train_images.shape[1:]} but val images are "
                          f"{val_images.shape[1:]}; both splits must share one shape")
    num_classes = int(max(train_labels.max(), val_labels.max())) + 1
    return Splits(_in_memory(train_images, train_labels), _in_memory(val_images, val_labels),
                  [str(i) for i in range(num_classes)], tuple(train_images.shape[1:]))


def read_npz_batch(path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (as N×C×H×W) and labels from an ADM-style sample batch, checked."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{field}: cannot read {path} as .npz ({err})") from None
    with npz:
        missing = {"arr_0", "arr_1"} - set(npz.files)
        if missing:
            raise ConfigError(f"{field}: {path} lacks {sorted(missing)}; expected arr_0 = uint8 N×H×W×C "
                              f"images and arr_1 = integer labels (found {npz.files})")
        images, labels = npz["arr_0"], npz["arr_1"]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError(f"{field}: {path} arr_0 must be uint8 N×H×W×C, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ConfigError(f"{field}: {path} arr_1 must hold {len(images)} non-negative integer labels, "
                          f"got {labels.dtype} {labels.shape}")
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels.astype(np.int64)


def read_folder(cfg: DatasetConfig) -> Splits:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*`` (ImageNet's folder layout).

    Images are center-cropped to a square and resized to ``image_size`` (required when
    sizes differ), RGB unless ``channels: 1``.
    """
    root = Path(cfg.params["root"]).expanduser()
    image_size = cfg.params["image_size"]
    channels = int(cfg.params["channels"])
    if channels not in (1, 3):
        raise ConfigError(f"dataset.params.channels: must be 1 or 3, got {channels}")
    train_dir, val_dir = root / "train", root / "val"
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise ConfigError(f"dataset.params.root: {root} must contain train/ and val/ folders of "
                              f"per-class subfolders; {d} is missing")
    class_names = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not class_names:
        raise ConfigError(f"dataset.params.root: {train_dir} holds no class folders")
    train, first = _folder_split(train_dir, class_names, image_size, channels)
    val, _ = _folder_split(val_dir, class_names, image_size, channels)
    return Splits(train, val, class_names, first)


def list_class_folders(root: Path, class_names: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image files under ``root/<class>/`` and their labels, in a stable order."""
    files, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = root / name
        found = sorted(p for p in class_dir.iterdir() if p.suffix in IMAGE_SUFFIXES) if class_dir.is_dir() else []
        files += found
        labels += [label] * len(found)
    if not files:
        raise ConfigError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in any class folder")
    return files, np.asarray(labels, dtype=np.int64)


def load_image(path: Path, image_size: int | None, channels: int) -> np.ndarray:
    """One image file as uint8 C×H×W, center-cropped and resized when ``image_size`` is set."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("L" if channels == 1 else "RGB")
        if image_size:
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.BICUBIC)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _folder_split(root: Path, class_names: list[str], image_size: int | None,
                  channels: int) -> tuple[Split, tuple[int, int, int]]:
    files, labels = list_class_folders(root, class_names)
    first = load_image(files[0], image_size, channels).shape

    def load(idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *first), dtype=np.uint8)
        for i, j in enumerate(idx):
            img = load_image(files[j], image_size, channels)
            if img.shape != first:
                raise ConfigError(f"{files[j]}: image is {img.shape[1]}×{img.shape[2]} but {files[0]} is "
                                  f"{first[1]}×{first[2]}; set dataset.params.image_size to resize all")
            out[i] = img
        return out

    return Split(labels, load), first


def read_splits(cfg: DatasetConfig) -> Splits:
    """The train and validation splits of the configured dataset."""
    from harness.registry import DATASETS

    return DATASETS.load(cfg.kind)(cfg)


def dataset_spec(cfg: DatasetConfig) -> dict[str, Any]:
    """What identifies a dataset's content in the store (``size``, a planning hint, does not)."""
    return {"dataset": cfg.model_dump(exclude={"size"})}
