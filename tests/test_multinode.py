"""The sweep on a three-node local Ray cluster (``ray.cluster_utils.Cluster``): a head with
one CPU, a node with two CPUs and two units of a custom resource ``fake_gpu`` that stands
for GPUs, and a node with one CPU. Samplers and trials that ask for ``fake_gpu`` run on that
node only; the reduced quickstart, with its store in a local S3 server that every node
reaches, gives the results of the same sweep on one node; a local-folder store is refused
on the cluster unless ``CAS_SHARED_FILESYSTEM=1`` says every node mounts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from harness.store import Store
from harness.sweep import SHARED_FILESYSTEM_ENV, check_store_reach, run_sweep
from tests.sweep_support import BUCKET, comparable, local_s3, reduced_config, shard_checksums

pytestmark = pytest.mark.slow  # a three-node cluster takes 15-20 s to start, and it follows a one-node sweep


@pytest.fixture(scope="module")
def one_node_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Store]:
    """The reference: the reduced quickstart on a one-node local Ray with a local-folder store.

    Its Ray is shut down before the cluster starts (the cluster fixture depends on this one).
    """
    tmp = tmp_path_factory.mktemp("one-node")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        _, records = run_sweep(reduced_config(tmp, str(tmp / "store")))
    finally:
        ray.shutdown()
    return records, Store(str(tmp / "store"))


@pytest.fixture(scope="module")
def three_nodes(one_node_run: Any) -> Iterator[dict[str, str]]:
    """A local S3 server, then the three-node cluster (whose nodes inherit the server's
    address), joined by this process; yields the node ids by role."""
    from ray.cluster_utils import Cluster

    with local_s3():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        try:
            nodes = {"head": cluster.head_node.node_id,
                     "gpu": cluster.add_node(num_cpus=2, resources={"fake_gpu": 2}).node_id,
                     "cpu": cluster.add_node(num_cpus=1).node_id}
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, logging_level="WARNING")
            yield nodes
        finally:
            ray.shutdown()
            cluster.shutdown()


def actor_nodes(class_name: str) -> list[str]:
    """The node of every actor of ``class_name`` this cluster has run, finished ones included.

    Read from the GCS actor table: ``ray.util.state`` needs the dashboard, which
    ``ray[train,tune]`` does not install.
    """
    return [a["Address"]["NodeID"] for a in ray._private.state.actors().values()
            if a["ActorClassName"] == class_name]


def test_local_store_on_a_cluster_needs_a_shared_filesystem(three_nodes: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_FILESYSTEM_ENV, raising=False)
    with pytest.raises(RuntimeError, match=r"is a local folder, but the Ray cluster has 3 nodes .* "
                                           rf"set {SHARED_FILESYSTEM_ENV}=1"):
        check_store_reach(Store(str(tmp_path)))
    check_store_reach(Store(f"s3://{BUCKET}/cas"))
    monkeypatch.setenv(SHARED_FILESYSTEM_ENV, "1")
    check_store_reach(Store(str(tmp_path)))


def test_reduced_quickstart_on_three_nodes_matches_one_node(one_node_run: tuple[list[dict[str, Any]], Store],
                                                            three_nodes: dict[str, str], tmp_path: Path) -> None:
    reference, reference_store = one_node_run
    config = reduced_config(tmp_path, f"s3://{BUCKET}/multinode")
    config = config.model_copy(update={
        "sampler": config.sampler.model_copy(update={"resources": {"fake_gpu": 1}}),
        "classifier": config.classifier.model_copy(update={"resources_per_worker": {"fake_gpu": 1}})})
    _, records = run_sweep(config)

    assert [r["status"] for r in records] == ["ok"] * 3
    assert comparable(records) == comparable(reference)
    assert shard_checksums(Store(config.store), records) == shard_checksums(reference_store, reference)

    samplers, trials = actor_nodes("Sampler"), actor_nodes("ImplicitFunc")
    assert len(samplers) == 2 and set(samplers) == {three_nodes["gpu"]}
    assert len(trials) == 3 and set(trials) == {three_nodes["gpu"]}
