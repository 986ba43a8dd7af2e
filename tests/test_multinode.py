"""The sweep on a three-node local Ray cluster (``ray.cluster_utils.Cluster``) shaped like
the Kubernetes one: a head that offers no CPU, a node with two CPUs and two units of a
custom resource ``fake_gpu`` that stands for GPUs, and a node with one CPU. Nothing runs on
the head; samplers and trials that ask for ``fake_gpu`` run on that node only; the reduced
quickstart, with its store in a local S3 server that every node reaches, gives the results
of the same sweep on one node; a local-folder store is refused on the cluster unless
``CAS_SHARED_FILESYSTEM=1`` says every node mounts it; a data-parallel trial whose node is
lost resumes from its last checkpoint on the node that replaces it.
"""
from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from harness import layout
from harness.classify.recipes import resolve_recipe
from harness.classify.train import TrainTask, train_classifier
from harness.config import ConfigError, DatasetConfig, GeneratorConfig, SamplerConfig
from harness.data import materialize
from harness.plan import TrainSource, plan_sample_set
from harness.ray_env import (
    DRIVER_CPUS,
    check_store_reach,
    max_concurrent_trials,
    num_actors,
    trial_resources,
)
from harness.sample import run_sampling
from harness.shards import ShardSet
from harness.store import SHARED_FILESYSTEM_ENV, Store
from harness.sweep import run_sweep
from tests.sweep_support import BUCKET, comparable, local_s3, reduced_config, shard_checksums

pytestmark = pytest.mark.slow  # a three-node cluster takes 15-20 s to start, and it follows a one-node sweep


@pytest.fixture(scope="module")
def one_node_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Store]:
    """The reference: the reduced quickstart on a one-node local Ray with a local-folder store.

    Its Ray is shut down before the cluster starts (the cluster fixture depends on this one).
    """
    tmp = tmp_path_factory.mktemp("one-node")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        _, records = run_sweep(reduced_config(tmp, str(tmp / "store")))
    finally:
        ray.shutdown()
    return records, Store(str(tmp / "store"))


@pytest.fixture(scope="module")
def three_nodes(one_node_run: Any) -> Iterator[dict[str, Any]]:
    """A local S3 server, then the three-node cluster (whose nodes inherit the server's
    address), joined by this process; yields the node ids by role, and the cluster."""
    from ray.cluster_utils import Cluster

    with local_s3():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            nodes = {"head": cluster.head_node.node_id,
                     "gpu": cluster.add_node(num_cpus=2, resources={"fake_gpu": 2}).node_id,
                     "cpu": cluster.add_node(num_cpus=1).node_id, "cluster": cluster}
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, logging_level="WARNING")
            yield nodes
        finally:
            ray.shutdown()
            cluster.shutdown()


def actors() -> dict[str, tuple[str, str]]:
    """Every actor this cluster has run, finished ones included: id → (class, node id).

    Read from the GCS actor table: ``ray.util.state`` needs the dashboard, which
    ``ray[train,tune]`` does not install.
    """
    return {actor_id: (a["ActorClassName"], a["Address"]["NodeID"])
            for actor_id, a in ray._private.state.actors().items()}


def test_local_store_on_a_cluster_needs_a_shared_filesystem(three_nodes: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARED_FILESYSTEM_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"is a local folder, but the Ray cluster has 3 nodes .* "
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
    before = actors()
    _, records = run_sweep(config)
    new = [placed for actor_id, placed in actors().items() if actor_id not in before]

    assert [r["status"] for r in records] == ["ok"] * 3
    assert comparable(records) == comparable(reference)
    assert shard_checksums(Store(config.store), records) == shard_checksums(reference_store, reference)

    samplers = [node for cls, node in new if cls == "Sampler"]
    trials = [node for cls, node in new if cls == "ImplicitFunc"]  # Tune's actor for a function trainable
    # One of the two fake GPUs is left to the Real cell, which trains while the sampler draws.
    assert len(samplers) == 1 and set(samplers) == {three_nodes["gpu"]}
    # A trial asks for the fake GPU, which only that node offers. The GCS table has, in one run of
    # several, lacked the trial actors of a finished Tune run; those it lists are on that node.
    assert trial_resources(config.classifier) == {"cpu": 1, "gpu": 0, "fake_gpu": 1}
    assert len(trials) <= 3 and set(trials) <= {three_nodes["gpu"]}  # Tune reuses a trial's actor
    assert three_nodes["head"] not in {node for _, node in new}


def test_actor_and_trial_counts_follow_the_cluster(three_nodes: dict[str, str], tmp_path: Path) -> None:
    assert num_actors(None, {"CPU": 1}, 10) == 3
    assert num_actors(None, {"CPU": 1, "fake_gpu": 1}, 10) == 2
    assert num_actors(None, {"CPU": 1, "GPU": 1}, 10) == 10  # no GPU yet: one per shard, for an autoscaler
    assert num_actors(3, {"CPU": 1, "GPU": 1}, 10) == 3
    # Resources left to a trial that trains meanwhile: only those the actors also need count, and one
    # actor starts even when the trial would take them all.
    assert num_actors(None, {"CPU": 1}, 10, reserve={"CPU": 1}) == 2
    assert num_actors(None, {"CPU": 1, "fake_gpu": 1}, 10, reserve={"CPU": 1}) == 2
    assert num_actors(None, {"CPU": 1, "fake_gpu": 1}, 10, reserve={"CPU": 1, "fake_gpu": 2}) == 1

    config = reduced_config(tmp_path, f"s3://{BUCKET}/counts")

    def trials(**classifier: Any) -> int | None:
        return max_concurrent_trials(config.model_copy(
            update={"classifier": config.classifier.model_copy(update=classifier)}))

    assert trials() is None  # Tune holds each trial's resources and queues the rest
    assert trials(num_workers=1, resources_per_worker={"fake_gpu": 1}) == 2
    assert trials(num_workers=2, resources_per_worker={"fake_gpu": 1}) == 1
    assert trials(num_workers=2) == 1
    assert trials(num_workers=1, use_gpu=True) == 1  # none fits yet: one, whose workers wait for nodes

    assert trial_resources(config.classifier) == {"cpu": 1, "gpu": 0}
    assert trial_resources(config.classifier.model_copy(update={"num_workers": 2})) == {"cpu": DRIVER_CPUS}


def test_sampling_uses_only_the_actors_that_start(three_nodes: dict[str, str], tmp_path: Path) -> None:
    """Three samplers that each need one of the two ``fake_gpu``: the third never starts, and
    the two that do make every shard."""
    store = Store(str(tmp_path))
    real = materialize(DatasetConfig(kind="digits"), store, shard_size=200)
    generator = GeneratorConfig(name="stripes", kind="tests.plugin_generator:StripeGenerator")
    sample_set = plan_sample_set(generator, (("truncation", None),), 0, real, shard_size=200)
    before = actors()
    outcome = run_sampling([sample_set], real, store, SamplerConfig(num_actors=3, resources={"fake_gpu": 1},
                                                                     shard_size=200))
    assert outcome.failed == {} and outcome.done == [sample_set]
    shards = ShardSet(store, sample_set.folder)
    assert shards.is_complete() and len(shards.manifest()["shards"]) == 8
    assert shards.manifest()["counts"] == list(real.train_counts)
    assert sorted(cls for actor_id, (cls, _) in actors().items() if actor_id not in before) == ["Sampler"] * 3


def test_a_trial_whose_node_is_lost_resumes_from_its_checkpoint(three_nodes: dict[str, Any], tmp_path: Path) -> None:
    """Two data-parallel workers on the ``fake_gpu`` node; once the trial's checkpoint after epoch 2 is
    in the store, that node is removed and a like one added (an autoscaler replacing a preempted node).
    Ray Train starts the workers again there, they resume after epoch 2, and the result is that of a run
    that lost nothing. Last in the module: it replaces the node the other tests look for."""
    import threading

    import torch

    store = Store(f"s3://{BUCKET}/lost-node")
    real = materialize(DatasetConfig(kind="digits"), store, shard_size=200)
    recipe = resolve_recipe("digits-small", {"epochs": 8, "milestones": [6], "checkpoint_every": 2})

    def train(folder: str) -> dict[str, Any]:
        task = TrainTask(label=folder, store=store.root, sources=(TrainSource(real.train.folder),),
                         val_folder=real.val.folder, num_classes=10, image_shape=real.image_shape, recipe=recipe,
                         seed=0, folder=folder)
        return train_classifier(task, num_workers=2, cpus_per_worker=1, storage_path=store.path("ray", folder),
                                resources_per_worker={"fake_gpu": 1})

    reference = train("trials/reference")
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(result=train("trials/lost")))
    thread.start()
    while not store.exists("trials/lost", layout.TRIAL_CHECKPOINT):
        assert thread.is_alive(), "the trial ended without a checkpoint"
        time.sleep(0.05)
    cluster = three_nodes["cluster"]
    gpu_node = next(n for n in cluster.list_all_nodes() if n.node_id == three_nodes["gpu"])
    cluster.remove_node(gpu_node)
    lost_after = torch.load(io.BytesIO(store.read_bytes("trials/lost", layout.TRIAL_CHECKPOINT)),
                            weights_only=True)["epoch"]
    three_nodes["gpu"] = cluster.add_node(num_cpus=2, resources={"fake_gpu": 2}).node_id
    thread.join(timeout=600)
    assert not thread.is_alive() and lost_after < recipe.epochs

    result = outcome["result"]
    final = torch.load(io.BytesIO(store.read_bytes("trials/lost", layout.TRIAL_CHECKPOINT)), weights_only=True)
    assert final["epoch"] == recipe.epochs and final["resumes"] and final["resumes"][0] >= 2
    same = ("top1", "top5", "per_class_accuracy", "confusion", "n_train", "n_val", "steps_per_epoch", "world_size")
    assert {k: result[k] for k in same} == {k: reference[k] for k in same}
    assert store.read_bytes(result["predictions"]) == store.read_bytes(reference["predictions"])
