"""Checksums of the store's artefacts, and ``verify_store``: what is broken, and removing it.

Every artefact is content-addressed, so a broken one is repaired by removing it: the next
run that needs it makes it again from its spec.

* A shard set (``datasets/<key>/<split>``, ``samples/<key>``) is checked against its
  manifest, which lists each shard's size and SHA-256.
* Any other file written with ``write_checked`` has a sidecar ``<name>.sha256`` in the
  format of ``sha256sum`` (so ``sha256sum -c model.pt.sha256`` checks it by hand), written
  before the file itself: a sidecar without its file is an interrupted write.
* A file without a sidecar (written before this convention) is checked by its format:
  ``.npz`` and ``.pt`` are zip archives whose members carry CRC-32s, ``.json`` must parse.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from harness.progress import status
from harness.shards import MANIFEST, ShardSet
from harness.store import Store, sha256_bytes

SIDECAR = ".sha256"
#: Top-level store folders whose contents are made from a spec, and so may be removed.
SHARD_SET_ROOTS = ("datasets", "samples")
FILE_ROOTS = ("features", "trials", "generators")
_CHUNK = 1 << 22
VERIFY_THREADS = 8


class CorruptArtefact(RuntimeError):
    """An artefact in the store that does not match its checksum or cannot be read."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri}: {reason}; remove it (harness verify --remove) and the next run makes it again")
        self.uri, self.reason = uri, reason


@dataclass(frozen=True)
class Problem:
    """A broken file, and the artefact (folder or file, relative to the store's root) that
    is removed so that it is made again."""

    artefact: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def sidecar_text(data: bytes, name: str) -> str:
    return f"{sha256_bytes(data)}  {name}\n"


def write_checked(store: Store, data: bytes, *parts: str) -> str:
    """Write ``data`` atomically with its ``.sha256`` sidecar (written first); its SHA-256."""
    *folder, name = "/".join(parts).split("/")
    text = sidecar_text(data, name)
    store.write_text(text, *folder, name + SIDECAR)
    store.write_bytes(data, *folder, name)
    return text.split()[0]


def seal(store: Store, *parts: str) -> str:
    """Write the sidecar of a file already in the store (written by code that does not use
    ``write_checked``, such as a Ray Train worker); its SHA-256."""
    *folder, name = "/".join(parts).split("/")
    text = sidecar_text(store.read_bytes(*parts), name)
    store.write_text(text, *folder, name + SIDECAR)
    return text.split()[0]


def remove_checked(store: Store, *parts: str) -> None:
    """Remove a file and its sidecar (either may be missing)."""
    *folder, name = "/".join(parts).split("/")
    for path in (store._fs_path(*parts), store._fs_path(*folder, name + SIDECAR)):
        try:
            store.fs.rm(path)
        except FileNotFoundError:
            pass


def read_trusted(store: Store, *parts: str) -> bytes | None:
    """A file's bytes when it is present and matches its checksum; None when it is absent,
    or when it is broken: then it is removed with one warning line, to be made again."""
    try:
        return read_checked(store, *parts)
    except FileNotFoundError:
        return None
    except CorruptArtefact as err:
        remove_checked(store, *parts)
        status(f"[repair] {err.uri}: {err.reason}; removed, it is made again")
        return None


def _expected_sha256(store: Store, *parts: str) -> str | None:
    """The sidecar's checksum; None when there is no sidecar; '' when it is unreadable."""
    *folder, name = "/".join(parts).split("/")
    try:
        text = store.read_bytes(*folder, name + SIDECAR)
    except FileNotFoundError:
        return None
    fields = text.split()
    digest = fields[0].decode("ascii", "replace").lower() if fields else ""
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else ""


def _sha256_of(f: IO[bytes]) -> str:
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def file_problem(f: IO[bytes], name: str, expected: str | None) -> str | None:
    """Why a file (open, seekable, at its start) is broken, or None when it reads whole.

    ``expected`` is its sidecar's SHA-256, '' for an unreadable sidecar, None for none.
    """
    if expected == "":
        return f"its checksum file {name}{SIDECAR} is unreadable"
    if expected is not None:
        actual = _sha256_of(f)
        if actual != expected:
            size = f.tell()
            return f"SHA-256 {actual[:12]}… ({size} bytes) differs from {expected[:12]}… in {name}{SIDECAR}"
        return None
    if name.endswith((".npz", ".pt")):
        try:
            with zipfile.ZipFile(f) as archive:
                bad = archive.testzip()
        except Exception as err:  # noqa: BLE001 - any failure to read the archive means it is broken
            return f"not a readable zip archive ({type(err).__name__}: {err})"
        return f"member {bad} fails its CRC-32" if bad else None
    if name.endswith(".json"):
        try:
            json.loads(f.read())
        except ValueError as err:
            return f"not valid JSON ({err})"
    return None


def read_checked(store: Store, *parts: str) -> bytes:
    """A file's bytes, checked against its sidecar (or its format, without one); raises
    ``CorruptArtefact`` naming the file when they do not match, FileNotFoundError when absent."""
    data = store.read_bytes(*parts)
    name = "/".join(parts).rsplit("/", 1)[-1]
    problem = file_problem(io.BytesIO(data), name, _expected_sha256(store, *parts))
    if problem:
        raise CorruptArtefact(store.path(*parts), problem)
    return data


def verify_shard_set(shards: ShardSet) -> list[Problem]:
    """Every problem of a shard set: its manifest, and each shard's presence, size and SHA-256
    (``ShardSet.is_complete`` checks sizes only, so it misses bytes overwritten in place)."""
    store, folder = shards.store, shards.folder

    def problem(name: str, reason: str) -> Problem:
        return Problem(folder, f"{folder}/{name}", reason)

    try:
        raw = store.read_bytes(folder, MANIFEST)
    except FileNotFoundError:
        return [problem(MANIFEST, "missing: the set was never completed")]
    reason = file_problem(io.BytesIO(raw), MANIFEST, _expected_sha256(store, folder, MANIFEST))
    if reason:
        return [problem(MANIFEST, reason)]
    try:
        entries = json.loads(raw)["shards"]
        listed = [(str(e["name"]), int(e["bytes"]), str(e["sha256"])) for e in entries]
    except (KeyError, TypeError, ValueError) as err:
        return [problem(MANIFEST, f"does not list shards as name, bytes and sha256 ({type(err).__name__}: {err})")]
    fs = store.fs

    def check(name: str, size: int, expected: str) -> Problem | None:
        path = store._fs_path(folder, name)
        try:
            actual_size = int(fs.size(path))
        except FileNotFoundError:
            return problem(name, "missing")
        if actual_size != size:
            return problem(name, f"{actual_size} bytes, the manifest says {size} (truncated or replaced)")
        with fs.open(path, "rb") as f:
            actual = _sha256_of(f)
        if actual != expected:
            return problem(name, f"SHA-256 {actual[:12]}… differs from {expected[:12]}… in the manifest "
                                 f"(bytes changed in place, size kept)")
        return None

    with ThreadPoolExecutor(VERIFY_THREADS) as pool:  # hashing and reads release the GIL
        return [p for p in pool.map(lambda e: check(*e), listed) if p is not None]


def repair_shard_set(shards: ShardSet) -> bool:
    """True when the set is complete and every shard matches its manifest. A broken set
    gets one warning line per broken file, which is removed together with the manifest,
    so the set is made again (samplers redo only the removed shards); False then, and
    False for a set without a manifest (never finished)."""
    store = shards.store
    if not store.exists(shards.folder, MANIFEST):
        return False
    problems = verify_shard_set(shards)
    for p in problems:
        status(f"[repair] {store.path(p.path)}: {p.reason}; it is made again")
        remove_checked(store, p.path)
    if problems:
        remove_checked(store, shards.folder, MANIFEST)
    return not problems


def _artefact(rel: str) -> str:
    """What to remove for a broken file: a file directly under its root (features/x.npz),
    else the folder of its key (trials/<key>)."""
    parts = rel.split("/")
    return rel if len(parts) == 2 else "/".join(parts[:2])


def verify_store(store: Store, remove: bool = False) -> list[Problem]:
    """Every broken artefact in the store (shard sets, feature files, trial results and
    checkpoints, generator weights); with ``remove``, each broken one is deleted so that
    the next run makes it again. Shard sets without a manifest are unfinished, not broken:
    a run resumes them. Runs and leases are not content-addressed and are left alone."""
    fs = store.fs
    fs.invalidate_cache()
    root = store._fs_path().rstrip("/")
    problems: list[Problem] = []
    for top in SHARD_SET_ROOTS:
        base = f"{root}/{top}"
        if not fs.exists(base):
            continue
        for path in sorted(fs.find(base)):
            if path.endswith(f"/{MANIFEST}"):
                problems += verify_shard_set(ShardSet(store, path[len(root) + 1:-len(MANIFEST) - 1]))
    for top in FILE_ROOTS:
        base = f"{root}/{top}"
        if not fs.exists(base):
            continue
        files = {p[len(root) + 1:] for p in fs.find(base) if ".tmp-" not in p}
        for rel in sorted(files):
            if rel.endswith(SIDECAR):
                if (written := rel.removesuffix(SIDECAR)) not in files:
                    problems.append(Problem(_artefact(written), written,
                                            f"missing, though its {SIDECAR} exists (an interrupted write)"))
                continue
            with fs.open(store._fs_path(rel), "rb") as f:
                reason = file_problem(f, rel.rsplit("/", 1)[-1], _expected_sha256(store, rel))
            if reason:
                problems.append(Problem(_artefact(rel), rel, reason))
    if remove:
        for artefact in sorted({p.artefact for p in problems}):
            for path in (artefact, artefact + SIDECAR):
                if fs.exists(store._fs_path(path)):
                    fs.rm(store._fs_path(path), recursive=True)
    return problems
