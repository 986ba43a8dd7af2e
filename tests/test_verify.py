"""Checksummed artefacts and ``verify_store``: every kind of artefact, broken in every way a
disk or an interrupted write breaks it (bytes overwritten in place, truncated, deleted,
garbage), is found and named; with ``remove`` it is deleted and nothing else is."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.shards import ShardSet
from harness.store import Store, encode_arrays
from harness.verify import CorruptArtefact, read_checked, verify_shard_set, verify_store, write_checked
from tests.sweep_support import BUCKET, local_s3


def shard_set(store: Store, folder: str, seed: int) -> ShardSet:
    rng = np.random.default_rng(seed)
    shards = ShardSet(store, folder)
    entries = [shards.write_shard(i, rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8), rng.integers(0, 3, 6), 3)
               for i in range(2)]
    shards.write_manifest({"seed": seed}, entries, 3, (1, 8, 8))
    return shards


def checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(64, 32).state_dict(), buf)
    return buf.getvalue()


def features() -> bytes:
    return encode_arrays(subset=np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32))


def build_store(store: Store) -> None:
    """One artefact of each kind, written with sidecars (``write_checked``) and without
    (as the pipeline wrote them before the convention)."""
    shard_set(store, "datasets/d0/train", 0)
    shard_set(store, "datasets/d0/val", 1)
    shard_set(store, "samples/s0", 2)
    write_checked(store, features(), "features/f0.npz")
    store.write_bytes(features(), "features/legacy.npz")
    write_checked(store, b'{"top1": 0.5}', "trials/t0/result.json")
    write_checked(store, checkpoint(), "trials/t0/model.pt")
    store.write_json({"top1": 0.25}, "trials/legacy/result.json")
    store.write_bytes(checkpoint(), "trials/legacy/model.pt")
    store.write_bytes(checkpoint(), "generators/cvae-g0/model.pt")
    store.write_json({"run": "not checked"}, "runs/r0/results.json")


def overwrite8(path: Path) -> None:
    """Eight bytes in the middle replaced, the size kept."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(255 - b for b in data[middle:middle + 8])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00not what was written{")


CASES: list[tuple[str, Callable[[Path], None], str, str, str]] = [
    # file, how it breaks, the artefact removed, the file named, what the reason says
    ("samples/s0/shard-00001.npz", overwrite8, "samples/s0", "samples/s0/shard-00001.npz", "size kept"),
    ("samples/s0/shard-00000.npz", truncate, "samples/s0", "samples/s0/shard-00000.npz", "truncated"),
    ("samples/s0/shard-00000.npz", Path.unlink, "samples/s0", "samples/s0/shard-00000.npz", "missing"),
    ("samples/s0/manifest.json", garbage, "samples/s0", "samples/s0/manifest.json", "differs from"),
    ("datasets/d0/val/shard-00000.npz", overwrite8, "datasets/d0/val", "datasets/d0/val/shard-00000.npz",
     "SHA-256"),
    ("features/f0.npz", overwrite8, "features/f0.npz", "features/f0.npz", "differs from"),
    ("features/f0.npz", truncate, "features/f0.npz", "features/f0.npz", "differs from"),
    ("features/f0.npz", Path.unlink, "features/f0.npz", "features/f0.npz", "interrupted write"),
    ("features/f0.npz.sha256", garbage, "features/f0.npz", "features/f0.npz", "checksum file"),
    ("features/legacy.npz", overwrite8, "features/legacy.npz", "features/legacy.npz", "CRC-32"),
    ("features/legacy.npz", truncate, "features/legacy.npz", "features/legacy.npz", "not a readable zip"),
    ("trials/t0/result.json", overwrite8, "trials/t0", "trials/t0/result.json", "differs from"),
    ("trials/t0/model.pt", overwrite8, "trials/t0", "trials/t0/model.pt", "differs from"),
    ("trials/t0/model.pt", Path.unlink, "trials/t0", "trials/t0/model.pt", "interrupted write"),
    ("trials/legacy/result.json", garbage, "trials/legacy", "trials/legacy/result.json", "not valid JSON"),
    ("trials/legacy/model.pt", overwrite8, "trials/legacy", "trials/legacy/model.pt", "CRC-32"),
    ("generators/cvae-g0/model.pt", truncate, "generators/cvae-g0", "generators/cvae-g0/model.pt",
     "not a readable zip"),
]


def all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_clean_store_has_no_problems(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    build_store(store)
    before = all_files(tmp_path)
    assert verify_store(store, remove=True) == []
    assert all_files(tmp_path) == before


@pytest.mark.parametrize(("file", "breaks", "artefact", "named", "reason"), CASES,
                         ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_a_broken_artefact_is_found_named_and_removed(tmp_path: Path, file: str, breaks: Callable[[Path], None],
                                                      artefact: str, named: str, reason: str) -> None:
    store = Store(str(tmp_path))
    build_store(store)
    breaks(tmp_path / file)
    [problem] = verify_store(store)
    assert (problem.artefact, problem.path) == (artefact, named) and reason in problem.reason
    before = all_files(tmp_path)
    assert verify_store(store, remove=True) == [problem]
    removed = {f for f in before if f == artefact or f.startswith(f"{artefact}/") or f == f"{artefact}.sha256"}
    assert removed and all_files(tmp_path) == before - removed
    assert verify_store(store) == []


def test_every_broken_shard_of_a_set_is_named(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    shards = shard_set(store, "samples/s1", 3)
    overwrite8(tmp_path / "samples/s1/shard-00000.npz")
    truncate(tmp_path / "samples/s1/shard-00001.npz")
    assert [p.path for p in verify_shard_set(shards)] == ["samples/s1/shard-00000.npz", "samples/s1/shard-00001.npz"]


def test_a_full_check_finds_bytes_overwritten_in_place_which_sizes_miss(tmp_path: Path) -> None:
    shards = shard_set(Store(str(tmp_path)), "samples/s1", 3)
    overwrite8(tmp_path / "samples/s1/shard-00001.npz")
    assert shards.is_complete()
    [problem] = verify_shard_set(shards)
    assert problem.artefact == "samples/s1" and "size kept" in problem.reason
    assert verify_shard_set(ShardSet(shards.store, "samples/never"))[0].reason.startswith("missing")


def test_unfinished_shard_sets_are_not_broken(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    shard_set(store, "samples/s1", 3)
    (tmp_path / "samples/s1/manifest.json").unlink()
    assert verify_store(store, remove=True) == [] and (tmp_path / "samples/s1/shard-00000.npz").exists()


def test_read_checked_returns_whole_files_and_names_broken_ones(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    build_store(store)
    assert read_checked(store, "trials/t0/result.json") == b'{"top1": 0.5}'
    assert read_checked(store, "trials", "legacy", "model.pt") == (tmp_path / "trials/legacy/model.pt").read_bytes()
    assert (tmp_path / "trials/t0/model.pt.sha256").read_text().endswith("  model.pt\n")
    overwrite8(tmp_path / "trials/t0/model.pt")
    with pytest.raises(CorruptArtefact, match=r"trials/t0/model.pt: SHA-256 .* differs from .* in model.pt.sha256"):
        read_checked(store, "trials/t0/model.pt")
    overwrite8(tmp_path / "features/legacy.npz")
    with pytest.raises(CorruptArtefact, match=r"features/legacy.npz: member .* fails its CRC-32"):
        read_checked(store, "features", "legacy.npz")
    with pytest.raises(FileNotFoundError):
        read_checked(store, "trials/none/result.json")


def test_verify_on_s3(tmp_path: Path) -> None:
    with local_s3():
        store = Store(f"s3://{BUCKET}/v")
        shard_set(store, "samples/s0", 2)
        write_checked(store, b'{"top1": 0.5}', "trials/t0/result.json")
        store.write_json({"top1": 0.25}, "trials/legacy/result.json")
        assert verify_store(store) == []
        data = bytearray(store.read_bytes("samples/s0/shard-00001.npz"))
        data[100:108] = b"\xff" * 8
        store.write_bytes(bytes(data), "samples/s0/shard-00001.npz")
        store.write_bytes(b"{garbage", "trials/t0/result.json")
        assert [(p.artefact, p.path) for p in verify_store(store, remove=True)] == [
            ("samples/s0", "samples/s0/shard-00001.npz"), ("trials/t0", "trials/t0/result.json")]
        assert store.list("samples") == [] and store.list("trials") == ["legacy"] and verify_store(store) == []


def test_an_npz_holding_pickled_objects_is_refused() -> None:
    """A store's arrays are data; an object array would run code when unpickled."""
    from harness.metrics.sets import SetFeatures
    from harness.store import decode_arrays

    hostile = io.BytesIO()
    code = np.array([{"run": "code"}], dtype=object)
    np.savez(hostile, subset=code, **{f"stats_{k}": code for k in ("n", "sum_x", "sum_xx")},
             **{f"is_{k}": code for k in ("n", "sum_p", "sum_plogp")})
    with pytest.raises(ValueError, match="allow_pickle=False"):
        decode_arrays(hostile.getvalue())
    with pytest.raises(ValueError, match="allow_pickle=False"):
        SetFeatures.from_bytes(hostile.getvalue())
