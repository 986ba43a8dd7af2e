"""How large a real dataset is, known before any of it is read (for ``harness plan``).

From the real data's manifest when it is in the store already, else the known size of a
standard dataset (``KNOWN_SIZES``), else the config's ``dataset.size`` hint, else, for a
folder or ``.npz`` on this machine, its files counted or read without loading the images.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import layout
from harness.config import ConfigError, DatasetSize, SweepConfig

#: Seconds ``harness plan`` waits for a remote store to answer before it plans without it.
STORE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KnownSize:
    """A standard dataset: split sizes, image shape (C, H, W; None where a folder sets it) and classes."""

    name: str
    train: int
    test: int
    image_shape: tuple[int, int, int] | None
    num_classes: int


KNOWN_SIZES = {
    "digits": KnownSize("scikit-learn digits", 1_797, 0, (1, 8, 8), 10),
    "mnist": KnownSize("MNIST", 60_000, 10_000, (1, 28, 28), 10),
    "fashion-mnist": KnownSize("Fashion-MNIST", 60_000, 10_000, (1, 28, 28), 10),
    "cifar10": KnownSize("CIFAR-10", 50_000, 10_000, (3, 32, 32), 10),
    "cifar100": KnownSize("CIFAR-100", 50_000, 10_000, (3, 32, 32), 100),
    "imagenet": KnownSize("ImageNet (ILSVRC-2012)", 1_281_167, 50_000, None, 1000),
}
#: Default share of a dataset without a test split that becomes its test split (readers.read_digits).
DEFAULT_VAL_FRACTION = {"digits": 0.2}


@dataclass(frozen=True)
class DataFacts:
    """What the plan knows of the real data, and from where."""

    n_train: int
    n_val: int
    image_shape: tuple[int, int, int] | None
    train_counts: tuple[int, ...] | None
    bytes_per_image: float | None
    source: str


def _store_manifests(config: SweepConfig) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The real data's train and val manifests when the store holds them (None if not, or if the store
    does not answer within ``STORE_TIMEOUT_S``)."""
    from harness.data.readers import dataset_spec
    from harness.shards import MANIFEST
    from harness.store import Store

    key = layout.content_key(dataset_spec(config.dataset))

    def read() -> tuple[dict[str, Any], dict[str, Any]] | None:
        store = Store.open(config.store)
        train, val = layout.dataset_split(key, "train"), layout.dataset_split(key, "val")
        if not (store.exists(train, MANIFEST) and store.exists(val, MANIFEST)):
            return None
        return store.read_json(train, MANIFEST), store.read_json(val, MANIFEST)

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(read).result(timeout=STORE_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - an unreachable store only means planning from what else is known
        return None
    finally:
        pool.shutdown(wait=False)


def _split(total: int, val_fraction: float) -> tuple[int, int]:
    """Train and val counts of a stratified split (scikit-learn rounds the test share up)."""
    val = math.ceil(val_fraction * total)
    return total - val, val


def _known(config: SweepConfig, source: str) -> KnownSize | DatasetSize | None:
    d = config.dataset
    if d.kind in KNOWN_SIZES:
        return KNOWN_SIZES[d.kind]
    if isinstance(d.size, str):
        if d.size not in KNOWN_SIZES:
            raise ConfigError(f"{source}: dataset.size: unknown dataset {d.size!r}; give one of "
                              f"{', '.join(KNOWN_SIZES)} or {{train: N, val: N}}")
        return KNOWN_SIZES[d.size]
    return d.size


def _npz_facts(path: Path) -> tuple[int, tuple[int, int, int]]:
    """Image count and C×H×W of an ADM-style ``.npz`` (arr_0 N×H×W×C), from the array's header only."""
    with zipfile.ZipFile(path) as archive, archive.open("arr_0.npy") as f:
        version = np.lib.format.read_magic(f)
        shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                 else np.lib.format.read_array_header_2_0(f))[0]
    return int(shape[0]), (int(shape[3]), int(shape[1]), int(shape[2]))


def _folder_facts(root: Path, image_size: int | None, channels: int) -> tuple[int, int, tuple[int, int, int]]:
    """Image counts of ``root/train`` and ``root/val`` and the images' C×H×W, from the file names."""
    from harness.data.readers import IMAGE_SUFFIXES

    counts, first = [], None
    for split in ("train", "val"):
        n = 0
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            for entry in os.scandir(class_dir):
                if Path(entry.name).suffix in IMAGE_SUFFIXES:
                    n += 1
                    first = first or Path(entry.path)
        counts.append(n)
    if image_size is None and first is not None:
        from PIL import Image

        with Image.open(first) as img:
            return counts[0], counts[1], (channels, img.height, img.width)
    return counts[0], counts[1], (channels, image_size or 0, image_size or 0)


def data_facts(config: SweepConfig, source: str) -> DataFacts:
    """The real data's sizes, shape and stored bytes per image, from the best source at hand."""
    d = config.dataset
    manifests = _store_manifests(config)
    if manifests:
        train, val = manifests
        n_bytes = sum(s["bytes"] for s in train["shards"])
        return DataFacts(train["n"], val["n"], tuple(train["image_shape"]), tuple(train["counts"]),
                         n_bytes / train["n"], f"manifest in the store {config.store}")
    shape = None
    if d.kind == "folder":
        shape = (int(d.params["channels"]), d.params["image_size"], d.params["image_size"])
        shape = shape if shape[1] else None
    known = _known(config, source)
    if isinstance(known, KnownSize):
        n_train, n_val = known.train, known.test
        fraction = d.val_fraction or DEFAULT_VAL_FRACTION.get(d.kind)
        if fraction:
            n_train, n_val = _split(known.train, fraction)
        how = ", named by dataset.size" if d.kind not in KNOWN_SIZES else ""
        return DataFacts(n_train, n_val, known.image_shape or shape, None, None, f"known size of {known.name}{how}")
    if isinstance(known, DatasetSize):
        return DataFacts(known.train, known.val, shape, None, None, "dataset.size")
    try:
        if d.kind == "npz":
            n_train, image_shape = _npz_facts(Path(d.params["train"]))
            return DataFacts(n_train, _npz_facts(Path(d.params["val"]))[0], image_shape, None, None,
                             "the .npz files' headers")
        if d.kind == "folder":
            n_train, n_val, image_shape = _folder_facts(Path(d.params["root"]).expanduser(), d.params["image_size"],
                                                        int(d.params["channels"]))
            return DataFacts(n_train, n_val, image_shape, None, None, f"files counted in {d.params['root']}")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{source}: dataset: cannot size the {d.kind} dataset ({err}); give dataset.size "
                          f"(a standard name such as imagenet, or {{train: N, val: N}})") from None
    raise ConfigError(f"{source}: dataset: no size known for kind {d.kind!r}; give dataset.size")
