"""The objects ``harness submit`` creates: a sweep's RayJob and the ConfigMap with its config.

Pure builders: they read nothing but their arguments and the packaged ``ray_cluster.yaml``
(the lab's shared RayCluster), whose spec is also the shape of a RayJob's own cluster (head
and worker groups, images, resources, ``rayStartParams``, security settings, authentication),
so that shape is written once. The submitter pod takes the head pod's security context and
writable volumes from the same file.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from datetime import datetime
from importlib import resources
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from harness.kube import ClusterError
from harness.store import SHARED_FILESYSTEM_ENV

GROUP, VERSION = "ray.io", "v1"
DEFAULT_NAMESPACE = "cas"
DEFAULT_IMAGE = f"cas-harness:{version('cas-harness')}"
RAY_CLUSTER_FILE = "ray_cluster.yaml"

MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6

CONFIG_DIR = "/etc/cas"
ENTRYPOINT = "harness sweep config.yaml --store $CAS_STORE"
CREDENTIALS_SECRET = "cas-store-credentials"
PVC_NAME = "cas-store"
PVC_MOUNT = "/mnt/cas-store"
REMOTE_SCHEMES = ("s3", "gs")
SAFE_STORE = re.compile(r"^[A-Za-z0-9._~:/@%+=,-]+$")

TTL_SECONDS = 300
SUBMITTER = {"cpu": "500m", "memory": "1Gi"}

APP_LABELS = {"app.kubernetes.io/name": "cas-harness", "app.kubernetes.io/component": "sweep"}
SWEEP_LABEL = "cas-harness/sweep"
RAYJOB_LABEL = "cas-harness/rayjob"
STORE_ANNOTATION = "cas-harness/store"


def _fresh(obj: Any) -> Any:
    """A copy that shares no sub-object: YAML aliases in ``ray_cluster.yaml`` load as one
    object in several places, and a builder must be free to change each place alone."""
    return json.loads(json.dumps(obj))


@functools.cache
def _shared_cluster_json() -> str:
    text = resources.files(__package__).joinpath(RAY_CLUSTER_FILE).read_text()
    return json.dumps(yaml.safe_load(text))


def shared_cluster() -> dict:
    """The shared RayCluster as ``ray_cluster.yaml`` (shipped in this package) defines it."""
    return json.loads(_shared_cluster_json())


def ray_version() -> str:
    """The Ray version of the cluster's image, ``spec.rayVersion`` of ``ray_cluster.yaml``."""
    return shared_cluster()["spec"]["rayVersion"]


def job_name(config_path: Path, now: datetime | None = None) -> str:
    """``<config stem>-<yymmddHHMM>-<4 hex>``: a DNS-1035 label KubeRay accepts for a RayJob.

    KubeRay names the RayJob's cluster ``<name>-<5 chars>`` and allows 53 characters for
    a RayCluster, so a RayJob name may have at most 47; the stem is cut to fit.
    """
    stem = re.sub(r"[^a-z0-9]+", "-", config_path.stem.lower()).strip("-")
    if not stem[:1].isalpha():
        stem = f"cas-{stem}".rstrip("-")
    suffix = f"-{(now or datetime.now()):%y%m%d%H%M}-{secrets.token_hex(2)}"
    return stem[: MAX_RAYJOB_NAME - len(suffix)].rstrip("-") + suffix


def configmap_name(name: str) -> str:
    """The ConfigMap that carries RayJob ``name``'s config."""
    return f"{name}-config"


def on_pvc(store: str) -> bool:
    """Whether ``store`` is a path on the ``cas-store`` PVC rather than a bucket URI."""
    return "://" not in store


def check_store(store: str) -> None:
    """Refuse stores the cluster's pods cannot reach, before anything is created.

    The store reaches the driver through a shell (``--store $CAS_STORE``), so it is also
    kept to characters no shell reinterprets.
    """
    if not SAFE_STORE.match(store):
        raise ClusterError(f"store {store!r}: use only letters, digits and ._~:/@%+=,- (no spaces or shell characters)")
    if on_pvc(store):
        path = PurePosixPath(store)
        if not path.is_absolute() or ".." in path.parts or not path.is_relative_to(PVC_MOUNT):
            raise ClusterError(
                f"store {store!r} is not reachable from the cluster: use an s3:// or gs:// URI, "
                f"or a path under {PVC_MOUNT}, where the {PVC_NAME} PVC is mounted (k8s/storage.yaml)"
            )
    elif store.split("://", 1)[0] not in REMOTE_SCHEMES:
        raise ClusterError(
            f"store {store!r}: the cluster supports {', '.join(s + '://' for s in REMOTE_SCHEMES)} URIs "
            f"or a path under {PVC_MOUNT}"
        )


def own_cluster_spec(image: str, store: str, shared: dict | None = None) -> dict:
    """The spec of a RayJob's own cluster: the ``shared`` RayCluster's spec (default: the
    packaged ``ray_cluster.yaml``) with ``image`` in every Ray container and, for a store on
    the PVC, the claim mounted at ``PVC_MOUNT`` in every Ray pod."""
    spec = _fresh((shared or shared_cluster())["spec"])
    for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
        pod = group["template"]["spec"]
        ray = pod["containers"][0]
        ray["image"] = image
        if on_pvc(store):
            ray.setdefault("env", []).append({"name": SHARED_FILESYSTEM_ENV, "value": "1"})
            ray.setdefault("volumeMounts", []).append({"name": PVC_NAME, "mountPath": PVC_MOUNT})
            pod.setdefault("volumes", []).append({"name": PVC_NAME, "persistentVolumeClaim": {"claimName": PVC_NAME}})
    return spec


def _submitter_template(name: str, image: str, store: str, head_pod: dict) -> dict[str, Any]:
    """The pod that runs ``ray job submit``: it holds the config and the store address, and
    runs as locked down as the head pod, with its writable volumes and no API token."""
    head = head_pod["containers"][0]
    container: dict[str, Any] = {
        "name": "ray-job-submitter",
        "image": image,
        "env": [{"name": "CAS_STORE", "value": store}],
        "volumeMounts": [
            {
                "name": "cas-config",
                "mountPath": f"{CONFIG_DIR}/config.yaml",
                "subPath": "config.yaml",
                "readOnly": True,
            },
            *head.get("volumeMounts", []),
        ],
        "resources": {"requests": dict(SUBMITTER), "limits": dict(SUBMITTER)},
    }
    if "securityContext" in head:
        container["securityContext"] = head["securityContext"]
    pod: dict[str, Any] = {"restartPolicy": "Never", "automountServiceAccountToken": False}
    if "securityContext" in head_pod:
        pod["securityContext"] = head_pod["securityContext"]
    pod["containers"] = [container]
    pod["volumes"] = [{"name": "cas-config", "configMap": {"name": configmap_name(name)}}, *head_pod.get("volumes", [])]
    return _fresh({"spec": pod})


def _labels(config_text: str) -> dict[str, str]:
    data = yaml.safe_load(config_text)
    sweep = data.get("name") if isinstance(data, dict) else None
    if not isinstance(sweep, str) or not sweep:
        return dict(APP_LABELS)
    return {**APP_LABELS, SWEEP_LABEL: sweep[:63].rstrip("-_.")}


def build_rayjob(config_text: str, *, name: str, namespace: str, image: str, store: str, cluster: str | None) -> dict:
    """The RayJob that runs ``config_text``'s sweep: on RayCluster ``cluster``, or if it is
    None on an own cluster shaped like ``ray_cluster.yaml`` (worker groups from 0), deleted
    ``TTL_SECONDS`` after the job."""
    check_store(store)
    shared = shared_cluster()
    spec: dict[str, Any] = {
        "entrypoint": ENTRYPOINT,
        "runtimeEnvYAML": yaml.safe_dump({"working_dir": CONFIG_DIR}),
        "submissionMode": "K8sJobMode",
        "submitterPodTemplate": _submitter_template(
            name, image, store, shared["spec"]["headGroupSpec"]["template"]["spec"]
        ),
    }
    if cluster is None:
        spec["shutdownAfterJobFinishes"] = True
        spec["ttlSecondsAfterFinished"] = TTL_SECONDS
        spec["rayClusterSpec"] = own_cluster_spec(image, store, shared)
    else:
        spec["clusterSelector"] = {"ray.io/cluster": cluster}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RayJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": _labels(config_text),
            "annotations": {STORE_ANNOTATION: store},
        },
        "spec": spec,
    }


def build_configmap(config_text: str, *, name: str, namespace: str) -> dict:
    """The ConfigMap that carries the config YAML, verbatim, for RayJob ``name``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(name),
            "namespace": namespace,
            "labels": {**_labels(config_text), RAYJOB_LABEL: name},
        },
        "immutable": True,
        "data": {"config.yaml": config_text},
    }
