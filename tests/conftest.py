"""Shared fixtures: a store holding the embedded digits, a local Ray per test module, and a store that is a
local folder or a bucket on a local S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import DatasetConfig
from harness.data import RealData, materialize
from harness.store import Store
from tests.sweep_support import BUCKET, local_s3

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


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3 server for the module's tests (``tests.sweep_support.local_s3``)."""
    with local_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """An empty store, once a local folder and once a fresh prefix of a bucket on the local S3 server."""
    if request.param == "local":
        return Store(str(tmp_path / "store"))
    request.getfixturevalue("s3_endpoint")
    return Store(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}")


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
