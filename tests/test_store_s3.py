"""The sweep on an ``s3://`` store, served by a local S3-compatible server (moto), gives what
the same sweep gives on a local folder: same shards, same results, and every output in the
bucket, Ray Tune's own experiment state included (pyarrow's S3 client, not s3fs)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from harness.ray_env import trial_resources
from harness.store import Store
from harness.sweep import run_sweep
from tests.sweep_support import BUCKET, comparable, local_s3, reduced_config, shard_checksums


@pytest.fixture(scope="module")
def ray_on_s3() -> Iterator[str]:
    """A local S3 server, then a two-CPU local Ray whose workers inherit its address."""
    with local_s3() as endpoint:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            yield endpoint
        finally:
            ray.shutdown()


@pytest.mark.slow
def test_sweep_on_s3_matches_the_sweep_on_a_local_folder(ray_on_s3: str, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/cas"
    local_run, local = run_sweep(reduced_config(tmp_path, str(tmp_path / "store")))
    config = reduced_config(tmp_path, uri)
    s3_run, remote = run_sweep(config, config_text=(tmp_path / "reduced.yaml").read_text())

    assert s3_run.startswith(f"{uri}/runs/reduced-") and Path(local_run).is_dir()
    assert [r["status"] for r in remote] == ["ok"] * 3
    assert comparable(remote) == comparable(local)
    assert remote[0]["top1"] > 0.8

    store = Store(uri)
    assert shard_checksums(store, remote) == shard_checksums(Store(str(tmp_path / "store")), local)
    run = s3_run.removeprefix(f"{uri}/")
    assert store.read_json(run, "results.json") == json.loads(json.dumps(remote))
    assert json.loads(store.read_bytes(run, "run.json"))["run"] == s3_run
    assert store.read_bytes(run, "config.yaml") == (tmp_path / "reduced.yaml").read_bytes()
    for name in ("results.csv", "report.md", "report.html"):
        assert store.size(run, name) > 0
    assert any(name.startswith("experiment_state") for name in store.list(run, "tune"))
    trials = store.list("trials")
    assert len(trials) == 3 and all(store.exists("trials", t, "result.json") for t in trials)
    assert store.list("generators") and store.list("samples") == sorted(
        r["sample_set"].split("/")[1] for r in remote if r["sample_set"])


def test_data_parallel_trials_leave_every_cpu_to_their_workers(ray_on_s3: str, tmp_path: Path) -> None:
    """On a head that offers CPUs (one machine), a data-parallel trial holds none: two workers
    of one CPU each must fit on this two-CPU Ray beside the trial that drives them."""
    classifier = reduced_config(tmp_path, str(tmp_path)).classifier.model_copy(update={"num_workers": 2})
    assert trial_resources(classifier) == {"cpu": 0}
