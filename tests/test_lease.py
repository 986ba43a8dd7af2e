"""Leases in the store: racing takers, waiters that reuse, owners that die or stall, and
unreadable lease files, on a local folder and on S3 (a local moto server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.lease import Lease, LeaseError, clean_leases, current_lease, stale_leases
from harness.store import Store

REPO = Path(__file__).resolve().parents[1]
KEY = "samples/0123456789abcdef"


def write_lease(store: Store, generation: int, **fields: object) -> None:
    record = {"key": KEY, "generation": generation, "state": "held", "ttl": 1.0, "created": time.time(),
              "heartbeat": time.time(), "owner": {"host": "another-host", "pid": 1, "token": "t"}, **fields}
    store.write_json(record, "leases", KEY, f"{generation:08d}.json")


def race(n: int, target) -> list:
    """``target(i)`` in ``n`` threads released at once; their return values in thread order."""
    barrier, out = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_racing_workers_make_the_work_once_and_the_others_reuse_it(store: Store) -> None:
    made = []

    def work(i: int) -> bool:
        with Lease.acquire_or_wait(store, KEY, ttl=2, poll=0.05, done=lambda: store.exists(KEY, "manifest.json")) \
                as lease:
            if lease.owned:
                made.append(i)
                time.sleep(0.3)
                store.write_text(f"made by {i}", KEY, "manifest.json")
            return lease.owned

    owned = race(6, work)
    assert sum(owned) == 1 and made == [owned.index(True)]
    assert store.read_bytes(KEY, "manifest.json") == f"made by {made[0]}".encode()
    assert current_lease(store, KEY).state == "released"


def test_two_takers_of_one_stale_lease_one_wins(store: Store) -> None:
    write_lease(store, 0, heartbeat=time.time() - 10)
    leases = race(6, lambda i: Lease.try_acquire(store, KEY, ttl=5))
    winners = [lease for lease in leases if lease is not None]
    assert len(winners) == 1 and winners[0].generation == 1
    assert store.list("leases", KEY) == ["00000001.json"]
    assert Lease.try_acquire(store, KEY, ttl=5) is None
    winners[0].release()
    with Lease.try_acquire(store, KEY, ttl=5) as again:
        assert again.generation == 2


def test_a_lease_whose_heartbeat_stopped_expires_after_its_ttl(store: Store) -> None:
    started = time.monotonic()
    write_lease(store, 0)
    lease = Lease.acquire_or_wait(store, KEY, ttl=5, poll=0.1)
    assert lease.owned and lease.generation == 1
    assert time.monotonic() - started >= 1.0  # the stale lease's TTL, not the waiter's own
    lease.release()


def test_a_live_owner_keeps_its_lease_past_the_ttl_and_a_waiter_can_give_up(store: Store) -> None:
    with Lease.acquire_or_wait(store, KEY, ttl=1) as owner:
        time.sleep(1.5)
        with pytest.raises(LeaseError, match=rf"gave up after .* waiting for {KEY}: held by .* pid {os.getpid()}"):
            Lease.acquire_or_wait(store, KEY, ttl=1, poll=0.1, timeout=0.3)
        assert owner.owned and not owner.lost


@pytest.mark.parametrize("content", [b"\x00garbage{", b"[]", b'{"state": "mine"}'])
def test_an_unreadable_lease_file_is_stale(store: Store, content: bytes) -> None:
    store.write_bytes(content, "leases", KEY, "00000000.json")
    [stale] = stale_leases(store)
    assert stale.state == "corrupt" and "unreadable" in stale.describe()
    lease = Lease.try_acquire(store, KEY, ttl=5)
    assert lease is not None and lease.generation == 1
    lease.release()


def test_an_error_in_the_work_releases_the_lease_at_once(store: Store) -> None:
    with pytest.raises(RuntimeError), Lease.acquire_or_wait(store, KEY, ttl=30):
        raise RuntimeError("generator exploded")
    info = current_lease(store, KEY)
    assert info.state == "released" and info.note == "RuntimeError: generator exploded"
    with Lease.acquire_or_wait(store, KEY, ttl=30, timeout=0) as again:
        assert again.generation == 1


def test_clean_leases_expires_only_stale_ones(store: Store) -> None:
    write_lease(store, 0, heartbeat=time.time() - 60)
    live = Lease.try_acquire(store, "trials/live", ttl=30)
    assert [s.key for s in stale_leases(store)] == [KEY]
    assert [c.key for c in clean_leases(store)] == [KEY]
    assert stale_leases(store) == []
    assert current_lease(store, KEY).state == "released" and "expired" in current_lease(store, KEY).note
    assert store.list("leases", KEY) == ["00000001.json"]
    assert current_lease(store, "trials/live").state == "held"
    live.release()


OWNER = """
import sys, time
from harness.lease import Lease
from harness.store import Store
store, key, ttl, mode = Store(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
lease = Lease.try_acquire(store, key, ttl=ttl)
print("held", lease.generation, flush=True)
if mode == "make":
    time.sleep(1)
    store.write_text("made by the other process", key, "manifest.json")
deadline = time.monotonic() + 20
while mode == "hold" and not lease.lost and time.monotonic() < deadline:
    time.sleep(0.05)
lease.release()
print("lost", lease.lost, flush=True)
"""


def start_owner(store: Store, ttl: float, mode: str = "hold") -> subprocess.Popen:
    """Another process that takes the lease on KEY and holds it (until it learns it lost it), or
    makes the work and releases it."""
    proc = subprocess.Popen([sys.executable, "-c", OWNER, store.root, KEY, str(ttl), mode], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().split() == ["held", "0"]
    return proc


def test_a_waiter_reuses_what_another_process_made(store: Store) -> None:
    store.write_bytes(b"shard", KEY, "shard-00000.npz")
    assert store.list(KEY) == ["shard-00000.npz"] and not store.exists(KEY, "manifest.json")  # s3fs caches these
    owner = start_owner(store, ttl=30, mode="make")
    lease = Lease.acquire_or_wait(store, KEY, ttl=30, poll=0.1, timeout=20,
                                  done=lambda: store.exists(KEY, "manifest.json"))
    assert not lease.owned
    assert store.read_bytes(KEY, "manifest.json") == b"made by the other process"
    assert owner.communicate(timeout=20)[0].split() == ["lost", "False"]


def test_a_killed_owner_on_this_host_is_taken_over_without_waiting_for_the_ttl(store: Store) -> None:
    owner = start_owner(store, ttl=60)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    started = time.monotonic()
    lease = Lease.acquire_or_wait(store, KEY, ttl=60, poll=0.1, timeout=10)
    assert lease.owned and lease.generation == 1 and time.monotonic() - started < 60  # well before the TTL
    lease.release()


def test_an_owner_that_stalls_past_its_ttl_learns_that_it_lost_the_lease(store: Store) -> None:
    owner = start_owner(store, ttl=1)
    owner.send_signal(signal.SIGSTOP)
    try:
        lease = Lease.acquire_or_wait(store, KEY, ttl=5, poll=0.1, timeout=10)
    finally:
        owner.send_signal(signal.SIGCONT)
    assert lease.generation == 1
    out, _ = owner.communicate(timeout=20)
    assert out.split() == ["lost", "True"]
    info = current_lease(store, KEY)
    assert info.state == "held" and info.owner["pid"] == os.getpid()
    lease.release()


def test_lease_files_are_json_a_person_can_read(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    lease = Lease.try_acquire(store, KEY, ttl=30)
    record = json.loads((tmp_path / "leases" / KEY / "00000000.json").read_text())
    assert record["owner"]["pid"] == os.getpid() and record["state"] == "held" and record["ttl"] == 30
    assert sorted(os.listdir(tmp_path / "leases" / KEY)) == ["00000000.json"]
    lease.release()
