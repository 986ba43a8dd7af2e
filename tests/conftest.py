"""Shared fixtures: a store holding the embedded digits, and a local Ray per test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config import DatasetConfig
from harness.data import RealData, materialize
from harness.store import Store

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with two CPUs, shut down after the module's tests."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")  # not a `ray start` one
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, RealData]:
    store = Store(str(tmp_path_factory.mktemp("store")))
    return store, materialize(DatasetConfig(kind="digits"), store)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
