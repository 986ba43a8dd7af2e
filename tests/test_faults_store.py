"""Issue 12 without Ray: work shared through leases (locally and on S3), what one process
writes to S3 seen by another at once, broken artefacts repaired, ``harness verify`` and
``harness clean``, and a store that fails part-way through a write leaving nothing that is
later trusted."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch
from fsspec.implementations.local import LocalFileSystem

from harness.cli import main
from harness.config import DatasetConfig
from harness.data import materialize
from harness.lease import current_lease, in_turns
from harness.runs import RUN_JSON, list_runs, read_state, start_run
from harness.shards import MANIFEST, ShardSet
from harness.store import Store, encode_arrays
from harness.verify import read_trusted, repair_shard_set, verify_shard_set, verify_store, write_checked
from tests.sweep_support import BUCKET

REPO = Path(__file__).resolve().parents[1]


def test_a_write_by_another_client_is_seen_at_once_on_s3(s3_endpoint: str) -> None:
    """s3fs's listing cache kept a process from seeing another's writes for its lifetime."""
    import s3fs

    store = Store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")
    store.write_text("x", "samples", "a", "shard-00000.npz")
    assert store.list("samples", "a") == ["shard-00000.npz"] and not store.exists("samples", "a", MANIFEST)
    other = s3fs.S3FileSystem(skip_instance_cache=True)
    other.pipe_file(f"{store._fs_path('samples', 'a', MANIFEST)}", b"{}")
    assert store.exists("samples", "a", MANIFEST)
    assert store.list("samples", "a") == [MANIFEST, "shard-00000.npz"]


def test_work_in_turns_is_made_once_and_reused(store: Store) -> None:
    """Two sweeps need the same three pieces of work: the first takes them all, the second
    waits and reuses each; what the first leaves unfinished, the second does."""
    keys = ["samples/a", "samples/b", "samples/c"]
    made: dict[str, list[str]] = {"first": [], "second": []}
    first_owns = threading.Event()

    def done(key: str) -> bool:
        return store.exists(key, MANIFEST)

    def sweep(name: str, skip: str | None) -> None:
        for owned in in_turns(store, keys, done, ttl=10, poll=0.05):
            first_owns.set()
            time.sleep(0.3)
            for key in owned:
                if key != skip:  # this one fails: its lease is released unfinished
                    store.write_text(name, key, MANIFEST)
                    made[name].append(key)

    first = threading.Thread(target=sweep, args=("first", "samples/b"))
    first.start()
    first_owns.wait(10)
    sweep("second", None)
    first.join()
    assert sorted(made["first"]) == ["samples/a", "samples/c"] and made["second"] == ["samples/b"]
    assert {k: store.read_bytes(k, MANIFEST) for k in keys} == {
        "samples/a": b"first", "samples/b": b"second", "samples/c": b"first"}
    assert all(current_lease(store, k).state == "released" for k in keys)


def test_work_of_a_killed_sweep_is_taken_over(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    owner = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom harness.lease import Lease\n"
                              "from harness.store import Store\nLease.try_acquire(Store(sys.argv[1]), 'trials/t', 60)\n"
                              "print('held', flush=True)\ntime.sleep(60)", str(tmp_path)],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert owner.stdout.readline() == "held\n"
    owner.kill()
    owner.wait()
    started = time.monotonic()
    batches = [list(owned) for owned in in_turns(store, ["trials/t"], lambda k: False, ttl=60, poll=0.05)]
    assert batches == [["trials/t"]] and time.monotonic() - started < 10


def small_set(store: Store, folder: str) -> ShardSet:
    rng = np.random.default_rng(0)
    shards = ShardSet(store, folder)
    entries = [shards.write_shard(i, rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8), np.arange(4) % 2, 2)
               for i in range(3)]
    shards.write_manifest({"set": folder}, entries, 2, (1, 8, 8))
    return shards


def overwrite8(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(255 - b for b in data[len(data) // 2:len(data) // 2 + 8])
    path.write_bytes(bytes(data))


def test_a_broken_shard_is_named_once_and_removed_with_the_manifest(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path))
    shards = small_set(store, "samples/s")
    assert repair_shard_set(shards) and capsys.readouterr().err == ""
    overwrite8(tmp_path / "samples/s/shard-00001.npz")
    assert not repair_shard_set(shards)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"[repair] {tmp_path}/samples/s/shard-00001.npz: SHA-256 ")
    assert line.endswith("in the manifest (bytes changed in place, size kept); it is made again")
    assert sorted(os.listdir(tmp_path / "samples/s")) == ["shard-00000.npz", "shard-00002.npz"]
    assert shards.existing_shard_entry(0, 2) is not None and shards.existing_shard_entry(1, 2) is None


def test_a_broken_file_is_removed_once_and_read_as_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path))
    write_checked(store, encode_arrays(x=np.arange(1000)), "features/f.npz")
    assert read_trusted(store, "features/f.npz") is not None
    overwrite8(tmp_path / "features/f.npz")
    assert read_trusted(store, "features/f.npz") is None
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"[repair] {tmp_path}/features/f.npz: SHA-256 ") and line.endswith("it is made again")
    assert os.listdir(tmp_path / "features") == []
    assert read_trusted(store, "features/f.npz") is None and capsys.readouterr().err == ""


def test_a_trial_whose_model_is_broken_runs_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.classify.grid import stored_result

    store = Store(str(tmp_path))
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(16, 4).state_dict(), buf)
    write_checked(store, buf.getvalue(), "trials/t/model.pt")
    write_checked(store, json.dumps({"top1": 0.5, "model": "trials/t/model.pt"}).encode(), "trials/t/result.json")
    assert stored_result(store, "trials/t") == {"top1": 0.5, "model": "trials/t/model.pt"}
    overwrite8(tmp_path / "trials/t/model.pt")
    assert stored_result(store, "trials/t") is None
    err = capsys.readouterr().err
    assert f"[repair] {tmp_path}/trials/t/model.pt: SHA-256" in err and "the trial runs again" in err
    assert os.listdir(tmp_path / "trials/t") == []


def test_harness_verify_lists_and_removes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path))
    small_set(store, "samples/s")
    write_checked(store, b'{"top1": 0.5}', "trials/t/result.json")
    assert main(["verify", str(tmp_path)]) == 0
    overwrite8(tmp_path / "samples/s/shard-00002.npz")
    (tmp_path / "trials/t/result.json").write_text('{"top1": 0.9}')
    assert main(["verify", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == [f"{tmp_path}/samples/s/shard-00002.npz",
                                                    f"{tmp_path}/trials/t/result.json"]
    assert main(["verify", str(tmp_path), "--remove"]) == 1
    assert "removed " + f"{tmp_path}/samples/s" in capsys.readouterr().out
    assert main(["verify", str(tmp_path)]) == 0 and not (tmp_path / "samples/s").exists()
    assert main(["verify", str(tmp_path / "absent")]) == 2
    assert "STORE " in capsys.readouterr().err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_harness_clean_marks_killed_runs_and_removes_old_ones(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path))
    live, live_lease = start_run(store, "runs/live-20260101-000000")
    killed, killed_lease = start_run(store, "runs/killed-20260101-000000")
    killed_lease.stop_heartbeat()
    record = json.loads((tmp_path / "leases" / killed / "00000000.json").read_text())
    record["owner"].update(host=socket.gethostname(), pid=dead_pid())
    (tmp_path / "leases" / killed / "00000000.json").write_text(json.dumps(record))
    store.write_json({"run": "made before run states"}, "runs/old-20250101-000000", "results.json")

    assert {r.folder: r.status for r in list_runs(store)} == {
        live: "running", killed: "killed", "runs/old-20250101-000000": "complete"}
    assert main(["clean", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"expired lease {killed}:" in out and f"marked incomplete: {killed}: killed at stage prepare" in out
    state = read_state(store, killed)
    assert (state["status"], state["interrupted_at_stage"]) == ("incomplete", "prepare")
    assert main(["clean", str(tmp_path), "--runs"]) == 0  # started a moment ago: younger than the default 1d
    assert (tmp_path / killed).exists()
    assert main(["clean", str(tmp_path), "--runs", "--older-than", "0"]) == 0
    assert f"removed {killed}" in capsys.readouterr().out
    assert not (tmp_path / killed).exists() and not (tmp_path / "leases" / killed).exists()
    assert sorted(os.listdir(tmp_path / "runs")) == ["live-20260101-000000", "old-20250101-000000"]
    assert read_state(store, live)["status"] == "running"
    live_lease.release()


def test_two_sweeps_starting_in_the_same_second_get_their_own_run_folders(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    (a, lease_a), (b, lease_b) = start_run(store, "runs/x-1"), start_run(store, "runs/x-1")
    assert (a, b) == ("runs/x-1", "runs/x-1-2") and (tmp_path / b / RUN_JSON).exists()
    lease_a.release()
    lease_b.release()


class FlakyFileSystem(LocalFileSystem):
    """A local folder under ``flaky://`` whose ``fail_at``-th write (a file written, or a
    file moved into place) fails the way a dropped connection does: half the bytes land,
    then an error."""

    protocol = ("flaky",)
    writes = 0
    fail_at: int | None = None

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.removeprefix("flaky://"))

    def _count(self) -> bool:
        FlakyFileSystem.writes += 1
        return FlakyFileSystem.writes == FlakyFileSystem.fail_at

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: object) -> None:
        if self._count():
            super().pipe_file(path, value[:len(value) // 2], mode=mode, **kwargs)
            raise OSError(errno.EIO, f"injected failure writing {path}")
        super().pipe_file(path, value, mode=mode, **kwargs)

    def mv(self, path1: str, path2: str, **kwargs: object) -> None:
        if self._count():
            raise OSError(errno.EIO, f"injected failure moving {path1}")
        super().mv(path1, path2, **kwargs)


fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)

FEATURES = encode_arrays(subset=np.random.default_rng(0).normal(size=(64, 8)))
RESULT = json.dumps({"top1": 0.75}).encode()


def make_everything(store: Store) -> None:
    """What a sweep writes, each kind once: real splits (shards and manifests), a feature
    file and a trial result with their checksums."""
    materialize(DatasetConfig(kind="digits"), store, shard_size=1000)
    write_checked(store, FEATURES, "features/f.npz")
    write_checked(store, RESULT, "trials/t/result.json")


def files(root: Path) -> dict[str, str]:
    """Every finished file (no temporary ones) and its SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and ".tmp-" not in p.name}


def test_a_store_failing_mid_write_leaves_nothing_half_written_that_is_trusted(tmp_path: Path) -> None:
    FlakyFileSystem.writes, FlakyFileSystem.fail_at = 0, None
    make_everything(Store(f"flaky://{tmp_path / 'reference'}"))
    total, reference = FlakyFileSystem.writes, files(tmp_path / "reference")
    assert total >= 20
    for n in range(1, total + 1):
        root = tmp_path / f"fail-{n}"
        FlakyFileSystem.writes, FlakyFileSystem.fail_at = 0, n
        with pytest.raises(OSError, match="injected failure"):
            make_everything(Store(f"flaky://{root}"))
        FlakyFileSystem.fail_at = None
        store = Store(str(root))
        for manifest in root.rglob(MANIFEST):  # a set is trusted only through its manifest: all its shards whole
            assert verify_shard_set(ShardSet(store, str(manifest.parent.relative_to(root)))) == [], n
        for name, expected in (("features/f.npz", FEATURES), ("trials/t/result.json", RESULT)):
            assert read_trusted(store, name) in (None, expected), n
        make_everything(store)  # the next run completes what is missing and redoes what is broken
        assert files(root) == reference, n
        assert verify_store(store) == [], n
