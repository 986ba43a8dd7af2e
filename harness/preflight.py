"""Everything a sweep needs from the world outside its config, checked before any work.

:func:`harness.plan.check` finds what the config itself gets wrong; :func:`preflight` adds
what it points at: the store (reachable, and writable by this user), the dataset's files
and folders, the ``npz`` and ``folder`` generators' samples, and their class counts where
they are known without reading the data. Each problem is one ``ConfigError`` naming the
config file, the field, what was given and what is allowed, raised before Ray starts, so
that a typo costs seconds, not a Real baseline's training.
"""

from __future__ import annotations

import errno
import uuid
import zipfile
from pathlib import Path

import numpy as np

from harness import plan
from harness.classify.recipes import Recipe
from harness.config import ConfigError, DatasetConfig, GeneratorConfig, SweepConfig
from harness.store import Store

#: Class counts of datasets whose classes are known without reading them.
KNOWN_CLASS_COUNTS = {"digits": 10, "mnist": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100}
NPZ_FORMAT = "an .npz file with arr_0 = uint8 N×H×W×C images and arr_1 = integer labels"


def preflight(config: SweepConfig, source: str, store_field: str = "store") -> Recipe:
    """All checks before work (the config's own, its inputs, the store); returns the recipe.

    ``store_field`` names where the store came from in messages: ``store`` (the config's
    field) or ``--store`` (the command line).
    """
    recipe = plan.check(config, source)
    classes = dataset_classes(config.dataset, source)
    for index, g in enumerate(config.generators):
        check_pool(g, f"{source}: generators[{index}] ({g.name})", classes)
    check_store(config.store, f"{source}: {store_field}")
    return recipe


def check_store(uri: str, where: str) -> None:
    """The store can be reached and written: a local folder is created if missing; an
    object store's root is listed. Either way a probe file is written and removed."""
    store = Store.open(uri)
    if store.is_local:
        path = Path(store.root)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{where}: {uri!r} is a file, not a folder; give a folder (made if missing) "
                              f"or an s3:// or gs:// URI")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"{where}: cannot make the folder {uri!r} ({_reason(err)}); give a folder this "
                              f"user can write, or an s3:// or gs:// URI") from None
    probe = f".probe-{uuid.uuid4().hex[:12]}"
    try:
        store.fs.pipe_file(store._fs_path(probe), b"")
        store.fs.rm(store._fs_path(probe))
    except Exception as err:  # noqa: BLE001 - any failure to write means the store cannot be used
        raise ConfigError(f"{where}: cannot write to {uri!r} ({_reason(err)}); give a store this user can "
                          f"write (a folder, or an s3:// or gs:// URI with credentials in the environment)") from None


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno in errno.errorcode:
        return f"{errno.errorcode[err.errno]}: {err.strerror}"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def dataset_classes(cfg: DatasetConfig, source: str) -> list[str] | int | None:
    """The dataset's class names, or only their count, where knowable without reading the
    images; its files and folders are checked on the way."""
    field = f"{source}: dataset.params"
    if cfg.kind == "folder":
        root = Path(cfg.params["root"]).expanduser()
        _need_dir(root, f"{field}.root", "a folder with train/ and val/, each of per-class subfolders")
        for split in ("train", "val"):
            _need_dir(root / split, f"{field}.root", "a folder with train/ and val/, each of per-class "
                      "subfolders", given=root)
        names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        if not names:
            raise ConfigError(f"{field}.root: {root / 'train'} holds no class folders; expected one subfolder "
                              f"of images per class")
        return names
    if cfg.kind == "npz":
        tops = [int(npz_labels(Path(cfg.params[s]), f"{field}.{s}").max(initial=-1)) for s in ("train", "test")]
        return [str(i) for i in range(max(tops) + 1)]
    root = cfg.params.get("root")
    if root is not None and not cfg.params.get("download", True):
        _need_dir(Path(root).expanduser(), f"{field}.root", f"the folder holding {cfg.kind} (or download: true)")
    if cfg.kind == "digits":
        return [str(i) for i in range(10)]
    return KNOWN_CLASS_COUNTS.get(cfg.kind)


def check_pool(g: GeneratorConfig, field: str, classes: list[str] | int | None) -> None:
    """An ``npz`` or ``folder`` generator's samples exist and hold every class of the dataset."""
    count = len(classes) if isinstance(classes, list) else classes
    if g.kind == "npz":
        labels = npz_labels(Path(g.params["path"]), f"{field}.params.path")
        present = set(np.unique(labels).tolist())
        if count is not None:
            outside = sorted(c for c in present if not 0 <= c < count)
            missing = sorted(set(range(count)) - present)
            if outside or missing:
                problem = f"labels {outside[:5]} outside 0..{count - 1}" if outside else \
                    f"no samples of classes {missing[:10]}{' …' if len(missing) > 10 else ''}"
                raise ConfigError(f"{field}.params.path: {g.params['path']} has {problem}; the dataset has "
                                  f"{count} classes and each needs samples")
    elif g.kind == "folder":
        root = Path(g.params["root"]).expanduser()
        _need_dir(root, f"{field}.params.root", "a folder with one subfolder of images per class")
        if isinstance(classes, list):
            found = {p.name for p in root.iterdir() if p.is_dir()}
            missing = [c for c in classes if c not in found]
            if missing:
                raise ConfigError(f"{field}.params.root: {root} has no folders for classes {missing[:10]}"
                                  f"{' …' if len(missing) > 10 else ''}; expected one per dataset class "
                                  f"({len(classes)}: {', '.join(classes[:5])}{' …' if len(classes) > 5 else ''})")


def npz_labels(path: Path, field: str) -> np.ndarray:
    """The labels (``arr_1``) of an ADM-style ``.npz``, read without its images."""
    path = path.expanduser()
    if not path.is_file():
        given = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"{field}: {str(path)!r} {given}; expected {NPZ_FORMAT}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not {"arr_0", "arr_1"} <= set(npz.files):
                raise ConfigError(f"{field}: {path} holds {npz.files}; expected {NPZ_FORMAT}")
            labels = npz["arr_1"]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{field}: cannot read {path} ({type(err).__name__}: {err}); expected {NPZ_FORMAT}") \
            from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"{field}: {path} arr_1 is {labels.dtype} {labels.shape}; expected {NPZ_FORMAT}")
    return labels


def _need_dir(path: Path, field: str, expected: str, given: Path | None = None) -> None:
    if path.is_dir():
        return
    what = "is not a folder" if path.exists() else "does not exist"
    lead = f"{str(given)!r}: {path} {what}" if given else f"{str(path)!r} {what}"
    raise ConfigError(f"{field}: {lead}; expected {expected}")

