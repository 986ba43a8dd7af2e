"""Network weights pinned by SHA-256: downloaded once into the cache, or a local file for offline use."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PinnedWeights:
    """One published weights file: where it comes from, its SHA-256, and the variable naming a local copy."""

    what: str
    url: str
    filename: str
    sha256: str
    env: str


def default_cache_dir() -> Path:
    """Where pinned weights are downloaded: ``$XDG_CACHE_HOME/cas-harness`` or ``~/.cache/cas-harness``."""
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "cas-harness"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(pin: PinnedWeights, path: Path) -> None:
    """Raise ValueError unless ``path`` holds exactly the pinned file."""
    actual = sha256_of(path)
    if actual != pin.sha256:
        raise ValueError(f"{pin.what} weights file {path} has SHA-256 {actual}, expected {pin.sha256} "
                         f"({pin.filename} from {pin.url}); delete or replace the file")


def resolve(pin: PinnedWeights, weights: str | os.PathLike[str] | None = None,
            cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """A checksum-verified local copy of the pinned file.

    ``weights`` is a path to a local copy; None takes ``$<pin.env>`` if set, else downloads the
    file once into ``cache_dir`` (default :func:`default_cache_dir`).
    """
    source = "weights argument"
    if weights is None:
        if not os.environ.get(pin.env):
            return _download(pin, Path(cache_dir) if cache_dir is not None else default_cache_dir())
        weights, source = os.environ[pin.env], f"${pin.env}"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{pin.what} weights file {path} (from the {source}) does not exist; expected "
                                f"{pin.filename} from {pin.url}")
    verify(pin, path)
    return path


def _download(pin: PinnedWeights, cache_dir: Path) -> Path:
    path = cache_dir / pin.filename
    if path.is_file():
        verify(pin, path)
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(pin.url, str(path), progress=True)
    except OSError as e:
        raise OSError(f"could not download the {pin.what} weights from {pin.url} to {path} ({e}); on an offline "
                      f"machine set ${pin.env} to a local copy of {pin.filename}") from e
    try:
        verify(pin, path)
    except ValueError:
        path.unlink()
        raise
    return path


def load_state_dict(pin: PinnedWeights, path: Path) -> dict[str, torch.Tensor]:
    """The tensors in a verified weights file, read with ``weights_only=True`` (no code is unpickled)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{pin.what} weights file {path} is not a loadable PyTorch file: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{pin.what} weights file {path} does not hold a state dict of tensors")
    return state
