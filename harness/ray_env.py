"""Ray as the sweep sees it: connecting, checking the store reaches every node, and sizing.

How many sampler or feature actors to start and how many trials to run at once follow
from what the cluster holds now; on an autoscaling cluster at zero, the demand itself is
what makes it add nodes.
"""

from __future__ import annotations

import os

import ray

from harness.config import ClassifierConfig, ConfigError, SweepConfig
from harness.store import SHARED_FILESYSTEM_ENV, Store

DRIVER_CPUS = 0.01
HEAD_RESOURCE = "node:__internal_head__"


def connect(address: str | None) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), or start a local Ray with this machine's CPUs/GPUs: never a
    cluster someone else started on this machine with ``ray start`` (which ``ray.init()`` alone would join)."""
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's legacy reporter honours verbose=0: stdout stays ours
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 log_to_driver=True, configure_logging=True, logging_level="WARNING")


def check_store_reach(store: Store) -> None:
    """A local folder is seen by one machine only: on a multi-node cluster the store must be a
    URI, unless ``CAS_SHARED_FILESYSTEM=1`` says the folder is on a volume every node mounts."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if store.is_local and len(nodes) > 1 and os.environ.get(SHARED_FILESYSTEM_ENV) != "1":
        raise ConfigError(f"store {store.root} is a local folder, but the Ray cluster has {len(nodes)} nodes that "
                          f"may not all see it; use an s3:// or gs:// store (store: in the config, or --store), "
                          f"or if every node mounts this path (a shared volume), set {SHARED_FILESYSTEM_ENV}=1")


def cluster_fits(needs: dict[str, float], reserve: dict[str, float] | None = None) -> int:
    """How many units of ``needs`` the cluster's nodes hold now, all counted together, beside ``reserve``."""
    total, reserve = ray.cluster_resources(), reserve or {}
    return max(0, min(int((total.get(name, 0) - reserve.get(name, 0)) / amount + 1e-9)
                      for name, amount in needs.items() if amount > 0))


def num_actors(configured: int | None, needs: dict[str, float], n_tasks: int,
               reserve: dict[str, float] | None = None) -> int:
    """The configured count, else as many as fit now beside ``reserve`` (resources left to other work;
    at least one actor), else (nothing fits yet) one per task.

    An autoscaling cluster at zero workers fits no actor; one actor per task is then the
    demand that makes it add nodes, up to its own maximum.
    """
    if configured:
        return min(n_tasks, configured)
    if not cluster_fits(needs):
        return n_tasks
    return min(n_tasks, max(1, cluster_fits(needs, reserve)))


def trial_needs(cls: ClassifierConfig) -> dict[str, float]:
    """What one trial's training takes from the cluster, in Ray's resource names: its own process's
    resources, or all its Ray Train workers'."""
    worker = {"CPU": cls.cpus_per_worker, "GPU": 1 if cls.use_gpu else 0, **cls.resources_per_worker}
    return {name: amount * max(1, cls.num_workers) for name, amount in worker.items()}


def trial_resources(cls: ClassifierConfig) -> dict[str, float]:
    """What a trial holds through Tune.

    A trial that trains in its own process holds what that process needs. A data-parallel
    trial only drives its Ray Train workers, which hold their own resources: it holds no
    CPU, so that the workers can use them all, unless the head offers none (a head kept
    free of work, as in the Kubernetes manifests); then ``DRIVER_CPUS``, which keeps the
    trial and its Ray Train controller off the head.
    """
    if cls.num_workers == 0:
        return {"cpu": cls.cpus_per_worker, "gpu": 1 if cls.use_gpu else 0, **cls.resources_per_worker}
    head = next(n["Resources"] for n in ray.nodes() if n.get("Alive") and HEAD_RESOURCE in n["Resources"])
    return {"cpu": 0 if head.get("CPU") else DRIVER_CPUS}


def max_concurrent_trials(config: SweepConfig) -> int | None:
    """How many trials run at once: the config's number, else it follows from the resources.

    A trial that trains in its own process (``num_workers = 0``) holds its resources
    through Tune, which starts trials as resources appear and queues the rest: no limit
    is needed, and the queued trials' placement groups are the demand that makes an
    autoscaler add nodes. Data-parallel trials hold (almost) nothing through Tune and
    their workers are placed by Ray Train, so they are limited to the workers the cluster
    holds now (at least one trial, whose workers wait for the autoscaler's nodes).
    """
    if config.max_concurrent_trials:
        return config.max_concurrent_trials
    cls = config.classifier
    if cls.num_workers == 0:
        return None
    return max(1, cluster_fits(trial_needs(cls)))


def error_text(err: BaseException, last_line: bool = False) -> str:
    """``Type: message`` of the error behind a Ray task or trial error (the user's, not Ray's wrapper)."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip()
    if last_line:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return f"{type(cause).__name__}: {text}"
