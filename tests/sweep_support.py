"""What the store and multi-node tests share: a local S3 server, the reduced quickstart, and
how two runs of it are compared."""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import SweepConfig
from harness.config_file import load_config
from harness.shards import ShardSet
from harness.store import Store

BUCKET = "cas-test"

REDUCED_QUICKSTART = """
name: reduced
dataset: {kind: digits, val_fraction: 0.2, split_seed: 0}
generators:
  - {name: real, kind: real}
  - {name: cvae, kind: cvae, params: {steps: 300}, truncations: [0.5, 1.0]}
classifier: {recipe: digits-small, overrides: {epochs: 3}}
seeds: [0]
"""

DETERMINISTIC = ("generator", "mode", "truncation", "seed", "status", "sample_set", "dataset",
                 "n_train", "n_val", "steps_per_epoch", "top1", "top5", "per_class_accuracy")


@contextlib.contextmanager
def local_s3() -> Iterator[str]:
    """A moto S3 server on a free local port with bucket ``BUCKET``; yields its endpoint.

    The endpoint and credentials go into this process's environment, where s3fs and
    pyarrow (Ray Tune's storage) find them, as do Ray workers started after this. moto
    keeps its buckets per process, not per server, so the server starts by emptying them.
    """
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir(BUCKET)
        try:
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def reduced_config(tmp_path: Path, store: str) -> SweepConfig:
    """The reduced quickstart, written to ``tmp_path/reduced.yaml`` and loaded, on ``store``."""
    path = tmp_path / "reduced.yaml"
    path.write_text(REDUCED_QUICKSTART)
    return load_config(path, store=store)


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields of a run's records that the same seeds must reproduce (no timings)."""
    return [{k: r.get(k) for k in DETERMINISTIC} for r in records]


def shard_checksums(store: Store, records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """SHA-256 of every shard the run trained on (dataset splits and sample sets), by folder,
    each shard read back and checked against its manifest."""
    dataset = records[0]["dataset"]
    folders = [f"datasets/{dataset}/train", f"datasets/{dataset}/val"]
    folders += sorted({r["sample_set"] for r in records if r["sample_set"]})
    sums = {}
    for folder in folders:
        shards = ShardSet(store, folder)
        entries = shards.manifest()["shards"]
        for entry in entries:
            shards.read_shard(entry)
        sums[folder] = [e["sha256"] for e in entries]
    return sums
