"""The store: where every stage reads its inputs and writes its outputs.

A store is a local folder or an fsspec URI (``s3://bucket/prefix``, ``gs://...``). Stage
outputs live under a key that is a hash of the canonical spec that produced them, so a
finished stage is found again and skipped, and two users of one shared store reuse each
other's work. Every write is atomic: a file is written under a temporary name and then
moved into place, and a set of files is complete only once its manifest, written last,
exists.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

#: Set to 1 where a local store folder is a volume that every node of a Ray cluster mounts.
SHARED_FILESYSTEM_ENV = "CAS_SHARED_FILESYSTEM"


def spec_key(spec: Any) -> str:
    """A short, stable content key for a JSON-able spec (sorted keys, no whitespace)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Store:
    """A root URI and the filesystem that serves it."""

    root: str

    @classmethod
    def open(cls, uri: str) -> Store:
        """A store whose local paths are absolute, so every Ray worker finds the same folder."""
        if "://" in uri:
            return cls(uri)
        return cls(str(Path(uri).expanduser().resolve()))

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem, without a listing cache: s3fs and gcsfs would otherwise answer
        ``exists`` and ``ls`` from listings made earlier in this process, and never see what
        another process (a concurrent sweep, a sampler on another node) wrote since."""
        return self._url_to_fs()[0]

    def _url_to_fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return fsspec.core.url_to_fs(self.root, **({} if self.is_local else {"use_listings_cache": False}))

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def path(self, *parts: str) -> str:
        """The full path (URI for remote stores) of ``parts`` under the root."""
        return "/".join([self.root.rstrip("/"), *parts])

    def _fs_path(self, *parts: str) -> str:
        _, root = self._url_to_fs()
        return "/".join([root.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self._fs_path(*parts))

    def size(self, *parts: str) -> int:
        return int(self.fs.size(self._fs_path(*parts)))

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self._fs_path(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write atomically: a temporary sibling, then a move onto the final name."""
        fs = self.fs
        final = self._fs_path(*parts)
        fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, final)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode(), *parts)

    def write_text(self, text: str, *parts: str) -> None:
        self.write_bytes(text.encode(), *parts)

    def list(self, *parts: str) -> list[str]:
        """Names directly under ``parts`` (empty if the folder does not exist). An object store's listing
        may hold the folder's own marker object; it is not a name under it."""
        path = self._fs_path(*parts).rstrip("/")
        if not self.fs.exists(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)
                      if p.rstrip("/") != path)


def encode_arrays(**arrays: np.ndarray) -> bytes:
    """Arrays as uncompressed ``.npz`` bytes (uint8 images compress poorly and load slower)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def decode_arrays(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}
