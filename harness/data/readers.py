"""Readers for each real dataset kind, returning a train and a test split.

CAS is measured on the dataset's official held-out split where it has one (the test split
of CIFAR-10/100, MNIST and Fashion-MNIST, an npz ``test`` file, a folder's ``val/`` as
ImageNet's validation set): the generators under test were trained on the train split, so
testing on a part of it would reward memorisation. ``val_fraction`` then carves a
seeded, stratified monitoring split off the train split. The embedded digits have no
official split: ``val_fraction`` (default 0.2) carves their test split, named ``val``.

A split knows all its labels up front and loads images by index, so that a large dataset
(an ImageNet folder, a memory-mapped npz) is turned into shards chunk by chunk, never held
whole in memory.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ConfigError, DatasetConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".JPEG"}
DEFAULT_ROOT = Path.home() / ".cache" / "cas-harness" / "data"
#: What the split CAS is measured on is called: the dataset's official held-out split, or one carved from train.
OFFICIAL, CARVED = "test", "val"


@dataclass
class Split:
    """Labels of a split and a loader of its images (uint8 N×C×H×W) by index."""

    labels: np.ndarray
    load: Callable[[np.ndarray], np.ndarray]


@dataclass
class Splits:
    """A dataset's splits: ``train``, ``test`` (where CAS is measured; ``test_split`` names it,
    see :func:`cas_split_name`) and, when ``val_fraction`` carves one off an official train
    split, ``monitor``."""

    train: Split
    test: Split
    class_names: list[str]
    image_shape: tuple[int, int, int]
    test_split: str
    monitor: Split | None = None

    @property
    def val(self) -> Split:
        """The test split under the name the store's ``datasets/<key>/val`` folder was written from."""
        return self.test


def cas_split_name(cfg: DatasetConfig) -> str:
    """``test`` when the dataset kind has an official held-out split (``DATASETS`` info ``test_split``),
    ``val`` when the split CAS is measured on is carved from the train data."""
    from harness.registry import DATASETS

    return OFFICIAL if DATASETS.entry(cfg.kind).info["test_split"] else CARVED


class _Images:
    """Images held as N×H×W×C (in memory or memory-mapped), loaded by index as N×C×H×W."""

    def __init__(self, nhwc: np.ndarray) -> None:
        self.nhwc = nhwc

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.nhwc[np.asarray(idx)].transpose(0, 3, 1, 2))


def _in_memory(images: np.ndarray, labels: np.ndarray) -> Split:
    return Split(labels=np.asarray(labels, dtype=np.int64), load=lambda idx: images[idx])


def _stratified(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train_idx, val_idx = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=labels)
    return np.sort(train_idx), np.sort(val_idx)


def _subsplit(split: Split, idx: np.ndarray) -> Split:
    """The images of ``split`` at ``idx``, still loaded lazily."""
    return Split(labels=split.labels[idx], load=lambda sub: split.load(idx[np.asarray(sub)]))


def _carve(split: Split, cfg: DatasetConfig, fraction: float) -> tuple[Split, Split]:
    """``split`` cut, stratified and seeded by ``split_seed``, into a kept part and a carved part of ``fraction``."""
    kept, carved = _stratified(split.labels, fraction, cfg.split_seed)
    return _subsplit(split, kept), _subsplit(split, carved)


def _with_official_test(train: Split, test: Split, cfg: DatasetConfig, class_names: list[str],
                        image_shape: tuple[int, int, int]) -> Splits:
    """Splits measured on the official ``test``; ``val_fraction`` carves a monitoring split off ``train``."""
    monitor = None
    if cfg.val_fraction:
        train, monitor = _carve(train, cfg, cfg.val_fraction)
    return Splits(train, test, class_names, image_shape, OFFICIAL, monitor)


def read_digits(cfg: DatasetConfig) -> Splits:
    """scikit-learn's 1,797 8×8 digits (ships with scikit-learn: no download); the test split is carved."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    train, test = _carve(_in_memory(images, digits.target.astype(np.int64)), cfg, cfg.val_fraction or 0.2)
    return Splits(train, test, [str(i) for i in range(10)], (1, 8, 8), CARVED)


_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def read_torchvision(cfg: DatasetConfig) -> Splits:
    """MNIST, Fashion-MNIST, CIFAR-10/100 via torchvision (downloaded once to ``root``).

    CAS is measured on the official test split; ``val_fraction`` carves a monitoring split
    off the official train split (the paper's CIFAR-10 protocol: 45k train, 5k validation,
    the 10k test images for CAS).
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, _TORCHVISION[cfg.kind])
    root = Path(cfg.params["root"] or DEFAULT_ROOT).expanduser()
    download = bool(cfg.params["download"])

    def split(train: bool) -> tuple[Split, list[str]]:
        ds = cls(root=str(root), train=train, download=download)
        data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
        images = np.ascontiguousarray(data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2), dtype=np.uint8)
        return _in_memory(images, np.asarray(ds.targets, dtype=np.int64)), [str(c) for c in ds.classes]

    (train, class_names), (test, _) = split(train=True), split(train=False)
    image_shape = train.load(np.arange(1)).shape[1:]
    return _with_official_test(train, test, cfg, class_names, image_shape)


def read_npz(cfg: DatasetConfig) -> Splits:
    """``.npz`` files with arr_0 = uint8 N×H×W×C images and arr_1 = labels (ADM's format), memory-mapped
    where stored uncompressed: ``train``, and ``test`` where CAS is measured."""
    train_images, train_labels = open_npz_batch(Path(cfg.params["train"]), "dataset.params.train")
    test_images, test_labels = open_npz_batch(Path(cfg.params["test"]), "dataset.params.test")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ConfigError(f"dataset: train images are {train_images.shape[1:]} (H×W×C) but test images are "
                          f"{test_images.shape[1:]}; both splits must share one shape")
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    h, w, c = train_images.shape[1:]
    return _with_official_test(Split(train_labels, _Images(train_images)), Split(test_labels, _Images(test_images)),
                               cfg, [str(i) for i in range(num_classes)], (c, h, w))


def _npz_member_map(path: Path, member: str) -> np.ndarray | None:
    """A memory map of an array stored uncompressed in an ``.npz`` (``np.savez``), or None when it cannot be mapped."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{member}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        if header[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if fortran_order or dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def open_npz_batch(path: Path, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W×C, memory-mapped when stored uncompressed) and labels of an ADM-style sample batch, checked."""
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{field}: cannot read {path} as .npz ({err})") from None
    with npz:
        missing = {"arr_0", "arr_1"} - set(npz.files)
        if missing:
            raise ConfigError(f"{field}: {path} lacks {sorted(missing)}; expected arr_0 = uint8 N×H×W×C "
                              f"images and arr_1 = integer labels (found {npz.files})")
        labels = npz["arr_1"]
        images = _npz_member_map(path, "arr_0")
        if images is None:
            images = npz["arr_0"]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError(f"{field}: {path} arr_0 must be uint8 N×H×W×C, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ConfigError(f"{field}: {path} arr_1 must hold {len(images)} non-negative integer labels, "
                          f"got {labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64)


def read_folder(cfg: DatasetConfig) -> Splits:
    """``root/train/<class>/*.png`` and ``root/val/<class>/*`` (ImageNet's folder layout), CAS measured on ``val/``.

    Class folders are sorted by name (for ImageNet: the standard sorted-wnid order, the
    one BigGAN's class indices follow). Images are center-cropped to a square and resized
    to ``image_size`` (required when sizes differ), RGB unless ``channels: 1``.
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
    test, _ = _folder_split(val_dir, class_names, image_size, channels)
    return _with_official_test(train, test, cfg, class_names, first)


def list_class_folders(root: Path, class_names: list[str]) -> tuple[list[str], np.ndarray]:
    """Image files under ``root/<class>/`` and their labels, in a stable order.

    Paths as strings: a loader that holds them is sent to every Ray worker, and 20,000
    ``Path`` objects take 0.2 s to unpickle where strings take a hundredth of that.
    """
    files: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        class_dir = root / name
        found = sorted(p for p in class_dir.iterdir() if p.suffix in IMAGE_SUFFIXES) if class_dir.is_dir() else []
        files += map(str, found)
        labels += [label] * len(found)
    if not files:
        raise ConfigError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in any class folder")
    return files, np.asarray(labels, dtype=np.int64)


def load_image(path: str | Path, image_size: int | None, channels: int) -> np.ndarray:
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
    """The train and test splits (and a monitoring split where asked for) of the configured dataset."""
    from harness.registry import DATASETS

    return DATASETS.load(cfg.kind)(cfg)


def dataset_spec(cfg: DatasetConfig) -> dict[str, Any]:
    """What identifies a dataset's content in the store (``size``, a planning hint, does not)."""
    return {"dataset": cfg.model_dump(exclude={"size"})}
