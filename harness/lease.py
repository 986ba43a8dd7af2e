"""Leases: which process is making which piece of work in a shared store.

Two sweeps that need the same sample set, trial or feature set should not both make it:
the first takes a lease on it and does the work, the second waits and reuses the result.
A lease lives in the store, beside the work, as ``leases/<key>/<generation>.json``: the
owner (host, pid, a random token), when it was created and its last heartbeat. The owner's
heartbeat thread rewrites it every third of its TTL; a lease whose heartbeat is older than
its TTL, whose owner is a dead process on this host (same host name and pid namespace), or
whose file cannot be read, is stale and may be taken over.

Taking a lease is one exclusive create, which exactly one of any number of racing takers
wins: ``os.link`` of a written temporary file on a local folder, ``If-None-Match: *`` on
S3 (s3fs's ``pipe_file(mode="create")``), ``ifGenerationMatch=0`` on GCS (gcsfs, the same
call). The current lease is the highest generation. Generation 0 is created when there is
none; a released or stale generation g is taken over by creating g + 1, so two takers of
one stale lease race for the same name and one wins. The highest generation is never
deleted (only the ones below it), so a generation number is never created twice, and a
taker whose listing was out of date and who created a generation below the highest backs
off. An owner that finds a higher generation at its heartbeat has lost its lease (it
stalled longer than the TTL) and says so in ``lost``; the work it then finishes is harmless
to the new owner's, since every output is content-addressed and written atomically.

Staleness compares the owner's clock with the reader's: hosts sharing a store need clocks
that agree to well within the TTL (NTP does).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from harness.progress import format_seconds, status
from harness.store import Store

LEASES = "leases"
DEFAULT_TTL = 120.0
_GENERATION = re.compile(r"^(\d{8})\.json$")
#: Filesystems whose ``pipe_file(mode="create")`` is one exclusive create on the server.
_EXCLUSIVE_CREATE = {"s3", "s3a", "gs", "gcs", "memory"}

log = logging.getLogger(__name__)


class LeaseError(RuntimeError):
    """A lease that cannot be taken on this store, or a wait that ran past its limit."""


@dataclass(frozen=True)
class LeaseInfo:
    """One lease file as read back: ``state`` is "held", "released" or "corrupt"."""

    key: str
    generation: int
    state: str
    owner: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    heartbeat: float = 0.0
    ttl: float = 0.0
    note: str = ""

    def is_stale(self, now: float | None = None) -> bool:
        """Held, but its heartbeat is older than its TTL or its owner is a dead process here."""
        if self.state == "corrupt":
            return True
        if self.state != "held":
            return False
        now = time.time() if now is None else now
        return now - self.heartbeat > self.ttl or _dead_here(self.owner)

    def is_free(self, now: float | None = None) -> bool:
        """A new generation may be created over this one."""
        return self.state == "released" or self.is_stale(now)

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if self.state == "corrupt":
            return f"{self.key}: lease generation {self.generation} is unreadable ({self.note})"
        who = f"{self.owner.get('host')} pid {self.owner.get('pid')}"
        if self.state == "released":
            return f"{self.key}: released by {who}" + (f" ({self.note})" if self.note else "")
        age = f"held by {who} for {format_seconds(now - self.created)}, " \
              f"last heartbeat {format_seconds(now - self.heartbeat)} ago"
        return f"{self.key}: {age}" + (" (stale)" if self.is_stale(now) else "")


def _pid_namespace() -> str | None:
    """Which process ids this process sees: containers of one pod share a host name, not pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": _pid_namespace(),
            "token": uuid.uuid4().hex}


def _dead_here(owner: dict[str, Any]) -> bool:
    """True when the owner ran on this host, among the processes this one sees, and its
    process no longer exists."""
    here = owner.get("host") == socket.gethostname() and owner.get("pid_namespace") == _pid_namespace()
    if not here or not isinstance(owner.get("pid"), int):
        return False
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        pass
    return False


def _folder(key: str) -> str:
    return f"{LEASES}/{key.strip('/')}"


def _name(generation: int) -> str:
    return f"{generation:08d}.json"


def _generations(store: Store, key: str) -> list[int]:
    """The generations in the store now: s3fs and gcsfs cache listings, which would hide
    other processes' leases, so the folder's cache entry is dropped first."""
    store.fs.invalidate_cache(store._fs_path(_folder(key)))
    return sorted(int(m.group(1)) for n in store.list(_folder(key)) if (m := _GENERATION.match(n)))


def read_lease(store: Store, key: str, generation: int) -> LeaseInfo | None:
    """One generation's lease, ``state="corrupt"`` when unreadable, None when it is gone."""
    try:
        data = store.read_bytes(_folder(key), _name(generation))
    except FileNotFoundError:
        return None
    try:
        rec = json.loads(data)
        if rec["state"] not in ("held", "released"):
            raise ValueError(f"state {rec['state']!r} is neither 'held' nor 'released'")
        return LeaseInfo(key=key, generation=generation, state=rec["state"], owner=dict(rec["owner"]),
                         created=float(rec["created"]), heartbeat=float(rec["heartbeat"]),
                         ttl=float(rec["ttl"]), note=str(rec.get("note", "")))
    except (ValueError, KeyError, TypeError) as err:
        return LeaseInfo(key=key, generation=generation, state="corrupt", note=f"{type(err).__name__}: {err}")


def current_lease(store: Store, key: str) -> LeaseInfo | None:
    """The highest generation's lease of ``key``, or None when the work was never leased."""
    generations = _generations(store, key)
    return read_lease(store, key, generations[-1]) if generations else None


def _create_exclusive(store: Store, data: bytes, *parts: str) -> bool:
    """Create a file only if it does not exist, as one atomic step; False when it exists."""
    fs = store.fs
    path = store._fs_path(*parts)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if not protocols & _EXCLUSIVE_CREATE:
        raise LeaseError(f"store {store.root}: leases need an exclusive create, which this code knows only for "
                         f"local folders, s3:// and gs://; {sorted(protocols)} is not one of them")
    try:
        fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    except OSError as err:
        if "ConditionalRequestConflict" in str(err):  # S3 (409): another create of this name is in flight
            return False
        raise
    return True


class Lease:
    """A lease on one piece of work: ``owned`` when this process is to do it, else the work
    was finished by another while this one waited and is to be reused.

    Use as a context manager: leaving the block releases the lease (noting the error, if
    the block raised), so a waiter takes over at once instead of after the TTL.
    """

    def __init__(self, store: Store, key: str, owned: bool, generation: int = -1, record: dict | None = None) -> None:
        self.store, self.key, self.owned, self.generation = store, key, owned, generation
        self._record = record or {}
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._released = False
        self._thread: threading.Thread | None = None

    @property
    def lost(self) -> bool:
        """True once a heartbeat found that another process took this lease over."""
        return self._lost.is_set()

    @classmethod
    def try_acquire(cls, store: Store, key: str, ttl: float = DEFAULT_TTL) -> Lease | None:
        """Take the lease on ``key`` if it is free (none, released or stale), in one attempt."""
        generations = _generations(store, key)
        if generations:
            current = read_lease(store, key, generations[-1])
            if current is not None and not current.is_free():
                return None
        generation = generations[-1] + 1 if generations else 0
        now = time.time()
        record = {"key": key, "generation": generation, "state": "held", "ttl": ttl, "created": now,
                  "heartbeat": now, "owner": _owner()}
        if not _create_exclusive(store, json.dumps(record).encode(), _folder(key), _name(generation)):
            return None
        after = _generations(store, key)
        if after[-1] > generation:  # a listing out of date let us create below the current lease
            _remove_quietly(store, _folder(key), _name(generation))
            return None
        for old in after[:-1]:
            _remove_quietly(store, _folder(key), _name(old))
        lease = cls(store, key, True, generation, record)
        lease._start_heartbeat()
        return lease

    @classmethod
    def acquire_or_wait(cls, store: Store, key: str, *, ttl: float = DEFAULT_TTL, poll: float = 2.0,
                        done: Callable[[], bool] | None = None, timeout: float | None = None,
                        report_every: float = 30.0) -> Lease:
        """The lease on ``key`` (``owned``), or, once ``done()`` is true, a lease that says the
        work was finished by another process (not ``owned``).

        While another process holds the lease this polls every ``poll`` seconds and prints who
        holds it every ``report_every`` seconds; past ``timeout`` seconds it raises
        ``LeaseError`` naming the holder. ``done`` is checked again after taking the lease,
        since the holder may have finished just before, and always after dropping the store's
        listing cache (s3fs's would otherwise keep answering that the result does not exist).
        """
        started = time.monotonic()
        reported = float("-inf")

        def finished() -> bool:
            store.fs.invalidate_cache()  # ``done`` must see what other processes wrote since
            return done is not None and done()

        while True:
            if finished():
                return cls(store, key, owned=False)
            lease = cls.try_acquire(store, key, ttl)
            if lease is not None:
                if finished():
                    lease.release(note="finished by another process")
                    return cls(store, key, owned=False)
                return lease
            waited = time.monotonic() - started
            holder = current_lease(store, key)
            if timeout is not None and waited > timeout:
                raise LeaseError(f"gave up after {format_seconds(waited)} waiting for "
                                 f"{holder.describe() if holder else key}")
            if holder is not None and waited - reported >= report_every:
                reported = waited
                status(f"[lease] waiting {format_seconds(waited)} for {holder.describe()}")
            time.sleep(poll)

    def _write(self, **changes: Any) -> None:
        """Rewrite this generation's file: one PUT on an object store (it replaces an object
        whole), a temporary file and a rename on a local folder."""
        self._record.update(changes)
        data = json.dumps(self._record).encode()
        if self.store.is_local:
            self.store.write_bytes(data, _folder(self.key), _name(self.generation))
        else:
            self.store.fs.pipe_file(self.store._fs_path(_folder(self.key), _name(self.generation)), data)

    def _start_heartbeat(self) -> None:
        interval = self._record["ttl"] / 3

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    if _generations(self.store, self.key)[-1] > self.generation:
                        self._lost.set()
                        log.warning("lease %s: taken over by another process after a heartbeat was missed",
                                    self.key)
                        return
                    self._write(heartbeat=time.time())
                except Exception as err:  # noqa: BLE001 - a store hiccup must not kill the owner's work
                    log.warning("lease %s: heartbeat failed (%s); retrying", self.key, err)

        self._thread = threading.Thread(target=beat, name=f"lease-{self.key}", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        """Stop renewing without releasing: the lease goes stale after its TTL."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def release(self, note: str = "") -> None:
        """Mark the lease released (``note`` says why, e.g. the error that ended the work)."""
        if not self.owned or self._released:
            return
        self._released = True
        self.stop_heartbeat()
        if not self.lost and _generations(self.store, self.key)[-1] == self.generation:
            self._write(state="released", heartbeat=time.time(), note=note)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        self.release(note=f"{exc_type.__name__}: {exc}" if exc_type else "")


def in_turns(store: Store, keys: list[str], done: Callable[[str], bool], *, ttl: float = DEFAULT_TTL,
             poll: float = 2.0, timeout: float | None = None) -> Iterator[dict[str, Lease]]:
    """The pieces of work among ``keys`` that this process is to do, in batches: each batch
    maps keys to owned leases, released when the caller asks for the next batch (or stops).

    A key that another process holds is left to it; once none of the remaining keys can be
    taken, this waits (``Lease.acquire_or_wait``) for the first of them: it is either
    finished there (``done(key)``, then dropped: the caller reuses it) or taken over when
    its owner died. Each key is yielded at most once; what the caller did not finish stays
    unfinished, for the next run.
    """
    left = [k for k in keys if not done(k)]
    while left:
        owned: dict[str, Lease] = {}
        for key in left:
            lease = Lease.try_acquire(store, key, ttl)
            if lease is None:
                continue
            store.fs.invalidate_cache()
            if done(key):
                lease.release(note="finished by another process")
            else:
                owned[key] = lease
        if not owned:
            lease = Lease.acquire_or_wait(store, left[0], ttl=ttl, poll=poll, timeout=timeout,
                                          done=functools.partial(done, left[0]))
            if lease.owned:
                owned[left[0]] = lease
        try:
            if owned:
                yield owned
        finally:
            for lease in owned.values():
                lease.release()
        left = [k for k in left if k not in owned and not done(k)]


def _remove_quietly(store: Store, *parts: str) -> None:
    try:
        store.fs.rm(store._fs_path(*parts))
    except FileNotFoundError:
        pass


def all_leases(store: Store) -> list[LeaseInfo]:
    """The current lease of every key under ``leases/`` in the store."""
    root = store._fs_path(LEASES)
    if not store.fs.exists(root):
        return []
    keys = sorted({p.rsplit("/", 1)[0][len(root) + 1:] for p in store.fs.find(root)
                   if _GENERATION.match(p.rsplit("/", 1)[-1])})
    return [info for key in keys if (info := current_lease(store, key)) is not None]


def stale_leases(store: Store, now: float | None = None) -> list[LeaseInfo]:
    """Leases whose owner stopped without releasing them (killed, lost, or unreadable files)."""
    return [info for info in all_leases(store) if info.is_stale(now)]


def clean_leases(store: Store) -> list[LeaseInfo]:
    """Expire every stale lease (what ``harness leases --clean`` does) and return them.

    Each is taken over by an exclusive create of its next generation, written as released,
    so a sweep racing to take the same lease either wins it or sees it released; the older
    generations are then removed. A lease that came back to life meanwhile is left alone.
    """
    cleaned = []
    for info in stale_leases(store):
        lease = Lease.try_acquire(store, info.key, ttl=DEFAULT_TTL)
        if lease is not None:
            lease.release(note=f"expired: {info.describe()}")
            cleaned.append(info)
    return cleaned
