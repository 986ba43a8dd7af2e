"""Run sweeps on Kubernetes: ship the config, start a KubeRay RayJob, follow it to the end.

A sweep's driver (``harness sweep``) runs as a RayJob, either on the lab's shared Ray
cluster (``--cluster cas-shared``, see ``ray_cluster.yaml``) or on an own cluster that the
RayJob creates and deletes after the job. The config travels in a ConfigMap mounted into
the RayJob's submitter pod, whose ``ray job submit`` uploads it as the job's
``working_dir``: that works the same for both kinds of cluster, while a running shared
head could never mount a ConfigMap made after it started. The ConfigMap is owned by the
RayJob, so deleting the RayJob deletes it. Results go to the store (``s3://``, ``gs://``
or a path on the ``cas-store`` PVC), never to the pods, which come and go with the
autoscaler.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness.config import load_config
from harness.progress import format_seconds

GROUP, VERSION = "ray.io", "v1"
DEFAULT_NAMESPACE = "cas"
DEFAULT_IMAGE = f"cas-harness:{version('cas-harness')}"
RAY_VERSION = "2.60.0"

MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6

CONFIG_DIR = "/etc/cas"
ENTRYPOINT = "harness sweep config.yaml --store $CAS_STORE"
CREDENTIALS_SECRET = "cas-store-credentials"
PVC_NAME = "cas-store"
PVC_MOUNT = "/mnt/cas-store"
SHARED_FILESYSTEM_ENV = "CAS_SHARED_FILESYSTEM"  # read by harness.sweep.check_store_reach
REMOTE_SCHEMES = ("s3", "gs")
SAFE_STORE = re.compile(r"^[A-Za-z0-9._~:/@%+=,-]+$")

TTL_SECONDS = 300
IDLE_TIMEOUT_SECONDS = 300
POLL_SECONDS = 5.0
TERMINAL = ("Complete", "Failed", "ValidationFailed")

APP_LABELS = {"app.kubernetes.io/name": "cas-harness", "app.kubernetes.io/component": "sweep"}
SWEEP_LABEL = "cas-harness/sweep"
RAYJOB_LABEL = "cas-harness/rayjob"
STORE_ANNOTATION = "cas-harness/store"
SUBMITTER_POD_LABEL = "batch.kubernetes.io/job-name"

AUTOSCALER = {"cpu": "500m", "memory": "512Mi"}
HEAD = {"cpu": "2", "memory": "8Gi"}
GPU_WORKER = {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "1"}
CPU_WORKER = {"cpu": "4", "memory": "16Gi"}
SUBMITTER = {"cpu": "500m", "memory": "1Gi"}
GPU_MAX_REPLICAS, CPU_MAX_REPLICAS = 8, 4
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


class ClusterError(RuntimeError):
    """A submission problem the user can fix; its message is one line saying how."""


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
    return f"{name}-config"


def _on_pvc(store: str) -> bool:
    return "://" not in store


def check_store(store: str) -> None:
    """Refuse stores the cluster's pods cannot reach, before anything is created.

    The store reaches the driver through a shell (``--store $CAS_STORE``), so it is also
    kept to characters no shell reinterprets.
    """
    if not SAFE_STORE.match(store):
        raise ClusterError(f"store {store!r}: use only letters, digits and ._~:/@%+=,- (no spaces or shell characters)")
    if _on_pvc(store):
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


def _container(name: str, image: str, resources: dict[str, str], store: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "envFrom": [{"secretRef": {"name": CREDENTIALS_SECRET, "optional": True}}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    if _on_pvc(store):
        container["env"] = [{"name": SHARED_FILESYSTEM_ENV, "value": "1"}]
        container["volumeMounts"] = [{"name": PVC_NAME, "mountPath": PVC_MOUNT}]
    return container


def _pod_template(container: dict[str, Any], store: str, **pod: Any) -> dict[str, Any]:
    spec = {**pod, "containers": [container]}
    if _on_pvc(store):
        spec["volumes"] = [{"name": PVC_NAME, "persistentVolumeClaim": {"claimName": PVC_NAME}}]
    return {"spec": spec}


def _ray_cluster_spec(image: str, store: str) -> dict[str, Any]:
    """The own cluster of a RayJob: the same groups as the shared ``ray_cluster.yaml``."""
    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {
            "version": "v2",
            "upscalingMode": "Default",
            "idleTimeoutSeconds": IDLE_TIMEOUT_SECONDS,
            "resources": {"requests": dict(AUTOSCALER), "limits": dict(AUTOSCALER)},
        },
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0"},
            "template": _pod_template(_container("ray-head", image, HEAD, store), store),
        },
        "workerGroupSpecs": [
            {
                "groupName": "gpu",
                "replicas": 0,
                "minReplicas": 0,
                "maxReplicas": GPU_MAX_REPLICAS,
                "template": _pod_template(
                    _container("ray-worker", image, GPU_WORKER, store),
                    store,
                    nodeSelector=dict(GPU_NODE_SELECTOR),
                    tolerations=[dict(t) for t in GPU_TOLERATIONS],
                ),
            },
            {
                "groupName": "cpu",
                "replicas": 0,
                "minReplicas": 0,
                "maxReplicas": CPU_MAX_REPLICAS,
                "template": _pod_template(_container("ray-worker", image, CPU_WORKER, store), store),
            },
        ],
    }


def _submitter_template(name: str, image: str, store: str) -> dict[str, Any]:
    """The pod that runs ``ray job submit``: it holds the config and the store address."""
    return {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "ray-job-submitter",
                    "image": image,
                    "env": [{"name": "CAS_STORE", "value": store}],
                    "volumeMounts": [
                        {
                            "name": "cas-config",
                            "mountPath": f"{CONFIG_DIR}/config.yaml",
                            "subPath": "config.yaml",
                            "readOnly": True,
                        }
                    ],
                    "resources": {"requests": dict(SUBMITTER), "limits": dict(SUBMITTER)},
                }
            ],
            "volumes": [{"name": "cas-config", "configMap": {"name": configmap_name(name)}}],
        }
    }


def _labels(config_text: str) -> dict[str, str]:
    data = yaml.safe_load(config_text)
    sweep = data.get("name") if isinstance(data, dict) else None
    if not isinstance(sweep, str) or not sweep:
        return dict(APP_LABELS)
    return {**APP_LABELS, SWEEP_LABEL: sweep[:63].rstrip("-_.")}


def build_rayjob(config_text: str, *, name: str, namespace: str, image: str, store: str, cluster: str | None) -> dict:
    """The RayJob that runs ``config_text``'s sweep: on RayCluster ``cluster``, or if it is
    None on an own cluster (GPU and CPU groups from 0) deleted ``TTL_SECONDS`` after the job."""
    check_store(store)
    spec: dict[str, Any] = {
        "entrypoint": ENTRYPOINT,
        "runtimeEnvYAML": yaml.safe_dump({"working_dir": CONFIG_DIR}),
        "submissionMode": "K8sJobMode",
        "submitterPodTemplate": _submitter_template(name, image, store),
    }
    if cluster is None:
        spec["shutdownAfterJobFinishes"] = True
        spec["ttlSecondsAfterFinished"] = TTL_SECONDS
        spec["rayClusterSpec"] = _ray_cluster_spec(image, store)
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


def _client(api_client: client.ApiClient | None) -> client.ApiClient:
    if api_client is not None:
        return api_client
    try:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    except config.ConfigException as outside:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise ClusterError(
                f"no Kubernetes credentials: {outside} (looked at $KUBECONFIG or ~/.kube/config, "
                "and not running in a pod); set up kubectl access to the cluster first"
            ) from None
    return client.ApiClient()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _explain(err: ApiException, action: str, namespace: str, ray: bool, missing: str | None) -> str | None:
    """A one-line message for the API errors a user can act on; None for the others."""
    try:
        body = json.loads(err.body or "")
    except ValueError:
        body = None
    status = body if isinstance(body, dict) and body.get("kind") == "Status" else {}
    message = _one_line(status.get("message") or err.reason)
    details = status.get("details") or {}
    if err.status == 401:
        return (
            f"cannot {action}: the cluster rejected your credentials ({message}); "
            "log in again (refresh your kubeconfig token)"
        )
    if err.status == 403:
        return (
            f"cannot {action} in namespace {namespace}: forbidden ({message}); "
            "ask a cluster admin to bind you to the cas-submitter Role (k8s/rbac.yaml)"
        )
    if err.status == 404:
        if details.get("kind") == "namespaces":
            return (
                f"cannot {action}: namespace {namespace} does not exist; "
                "create it with `kubectl apply -k k8s/` (docs/KUBERNETES.md)"
            )
        if ray and not status:
            return (
                f"cannot {action}: the RayJob/RayCluster CRDs (ray.io/v1) are not installed in this cluster; "
                "install the KubeRay operator 1.7 first (docs/KUBERNETES.md)"
            )
        return f"cannot {action}: {missing or message}"
    if err.status == 409:
        return f"cannot {action}: it already exists in namespace {namespace} ({message}); submit again for a fresh name"
    if err.status == 422:
        return f"cannot {action}: the API server rejected it ({message})"
    return None


@contextlib.contextmanager
def _api_errors(action: str, namespace: str, *, ray: bool = False, missing: str | None = None) -> Iterator[None]:
    """Turn the API errors a user can act on into a one-line ``ClusterError``."""
    try:
        yield
    except ApiException as err:
        message = _explain(err, action, namespace, ray, missing)
        if message is None:
            raise
        raise ClusterError(message) from None
    except urllib3.exceptions.HTTPError as err:
        raise ClusterError(
            f"cannot {action}: the Kubernetes API is unreachable ({_one_line(err)}); check your kubeconfig context"
        ) from None


def _read_status(custom: client.CustomObjectsApi, name: str, namespace: str) -> dict:
    missing = f"RayJob {name} not found in namespace {namespace}; list them with `kubectl get rayjobs -n {namespace}`"
    with _api_errors(f"get RayJob {name}", namespace, ray=True, missing=missing):
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "rayjobs", name)
    st, meta = obj.get("status") or {}, obj.get("metadata") or {}
    return {
        "name": name,
        "namespace": namespace,
        "jobDeploymentStatus": st.get("jobDeploymentStatus", ""),
        "jobStatus": st.get("jobStatus", ""),
        "message": st.get("message", ""),
        "rayClusterName": st.get("rayClusterName", ""),
        "dashboardURL": st.get("dashboardURL", ""),
        "startTime": st.get("startTime", ""),
        "endTime": st.get("endTime", ""),
        "store": (meta.get("annotations") or {}).get(STORE_ANNOTATION, ""),
        "sweep": (meta.get("labels") or {}).get(SWEEP_LABEL, ""),
    }


def _submitter_pod(core: client.CoreV1Api, name: str, namespace: str) -> client.V1Pod | None:
    """The newest pod of the RayJob's submitter Job (KubeRay names that Job after the RayJob)."""
    with _api_errors(f"list the pods of RayJob {name}", namespace):
        pods = core.list_namespaced_pod(namespace, label_selector=f"{SUBMITTER_POD_LABEL}={name}").items
    return max(pods, key=lambda p: p.metadata.creation_timestamp, default=None)


def _print_log(core: client.CoreV1Api, pod: str, namespace: str, follow: bool, marker: str | None = None) -> str | None:
    """Copy the pod's log to stdout; return its last line that starts with ``marker``."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    found, partial = None, ""
    with _api_errors(f"read the log of pod {pod}", namespace):
        response = core.read_namespaced_pod_log(pod, namespace, follow=follow, _preload_content=False)
        try:
            for chunk in response.stream(4096):
                text = decoder.decode(chunk)
                sys.stdout.write(text)
                sys.stdout.flush()
                *lines, partial = (partial + text).split("\n")
                if marker:
                    found = next((line.strip() for line in reversed(lines) if line.startswith(marker)), found)
        finally:
            response.release_conn()
    return partial.strip() if marker and partial.startswith(marker) else found


def _progress(st: dict) -> str:
    line = f"cluster {st['jobDeploymentStatus'] or 'New'} · job {st['jobStatus'] or '-'}"
    return f"{line} · {_one_line(st['message'])}" if st["message"] else line


def _reattach_hint(name: str, namespace: str) -> str:
    return (
        f"  follow it again: harness logs {name} --namespace {namespace} --follow\n"
        f"  its state:       harness status {name} --namespace {namespace}\n"
        f"  stop it:         kubectl delete rayjob {name} -n {namespace}"
    )


def _follow(name: str, namespace: str, api: client.ApiClient) -> dict | None:
    """Progress lines on stderr, the driver's log on stdout, then where the results are.

    The sweep prints its run folder (``<store>/runs/<sweep>-<time>``) when it is done;
    that line of the log is how the summary knows the folder.
    """
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    start = time.monotonic()
    shown, streamed, run_folder = "", set(), None
    try:
        while True:
            st = _read_status(custom, name, namespace)
            marker = f"{st['store'].rstrip('/')}/runs/" if st["store"] else None
            line = _progress(st)
            if line != shown:
                print(f"[{name}] {line} · {format_seconds(time.monotonic() - start)}", file=sys.stderr, flush=True)
                shown = line
            pod = _submitter_pod(core, name, namespace)
            if st["jobDeploymentStatus"] in TERMINAL:
                break
            if (
                pod is not None
                and pod.metadata.name not in streamed
                and pod.status.phase in ("Running", "Succeeded", "Failed")
            ):
                streamed.add(pod.metadata.name)
                run_folder = _print_log(core, pod.metadata.name, namespace, True, marker) or run_folder
                continue
            time.sleep(POLL_SECONDS)
        if pod is not None and not streamed:
            run_folder = _print_log(core, pod.metadata.name, namespace, False, marker)
    except KeyboardInterrupt:
        print(
            f"\ndetached; RayJob {name} keeps running in namespace {namespace}.\n{_reattach_hint(name, namespace)}",
            file=sys.stderr,
        )
        return None
    outcome = st["jobStatus"] or st["jobDeploymentStatus"]
    print(f"RayJob {name}: {outcome} ({st['jobDeploymentStatus']}) after {format_seconds(time.monotonic() - start)}")
    if st["message"] and outcome != "SUCCEEDED":
        print(f"  {_one_line(st['message'])}")
    if run_folder:
        print(f"results and report: {run_folder}")
    elif marker:
        print(f"results and report: a run folder under {marker} (the end of the driver's log names it)")
    return st


def submit(
    config_path: Path,
    *,
    cluster: str | None,
    namespace: str,
    image: str,
    store: str,
    follow: bool = True,
    api_client: client.ApiClient | None = None,
) -> str:
    """Check the config, ship it as a ConfigMap, create the RayJob; return the RayJob's name.

    With ``follow`` it then prints progress and the driver's log until the job ends. A
    shared ``cluster`` is looked up first, so a typo fails here rather than leaving a
    RayJob waiting for a cluster that never comes.
    """
    config_path = Path(config_path)
    load_config(config_path, store)
    text = config_path.read_text()
    name = job_name(config_path)
    rayjob = build_rayjob(text, name=name, namespace=namespace, image=image, store=store, cluster=cluster)
    configmap = build_configmap(text, name=name, namespace=namespace)
    api = _client(api_client)
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    if cluster is not None:
        missing = (
            f"RayCluster {cluster} not found in namespace {namespace}; start it with `make cluster-up`, "
            "or leave out --cluster to give the job an own cluster"
        )
        with _api_errors(f"find RayCluster {cluster}", namespace, ray=True, missing=missing):
            custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "rayclusters", cluster)
    cm_name = configmap["metadata"]["name"]
    with _api_errors(f"create ConfigMap {cm_name}", namespace):
        core.create_namespaced_config_map(namespace, configmap)
    try:
        with _api_errors(f"create RayJob {name}", namespace, ray=True):
            created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "rayjobs", rayjob)
    except ClusterError:
        with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
            core.delete_namespaced_config_map(cm_name, namespace)
        raise
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RayJob", "name": name, "uid": created["metadata"]["uid"]}
    with _api_errors(f"hand ConfigMap {cm_name} to RayJob {name}", namespace):
        core.patch_namespaced_config_map(cm_name, namespace, {"metadata": {"ownerReferences": [owner]}})
    where = f"shared cluster {cluster}" if cluster else f"an own cluster, deleted {TTL_SECONDS // 60} min after the job"
    print(f"submitted RayJob {name} in namespace {namespace} on {where}; store {store}", file=sys.stderr)
    if follow:
        _follow(name, namespace, api)
    return name


def status(name: str, *, namespace: str, api_client: client.ApiClient | None = None) -> dict:
    """The RayJob's state: KubeRay's ``jobDeploymentStatus``/``jobStatus`` and where it writes."""
    return _read_status(client.CustomObjectsApi(_client(api_client)), name, namespace)


def follow(name: str, *, namespace: str, api_client: client.ApiClient | None = None) -> dict | None:
    """Print progress and the driver's log until the RayJob ends; return its final status.

    Ctrl-C detaches (returns None) and leaves the job running, printing how to come back.
    """
    return _follow(name, namespace, _client(api_client))


def logs(name: str, *, namespace: str, follow: bool, api_client: client.ApiClient | None = None) -> None:
    """Print the driver's log (the submitter pod's); with ``follow``, until the job ends."""
    api = _client(api_client)
    if follow:
        _follow(name, namespace, api)
        return
    core = client.CoreV1Api(api)
    pod = _submitter_pod(core, name, namespace)
    if pod is None:
        st = _read_status(client.CustomObjectsApi(api), name, namespace)
        raise ClusterError(
            f"RayJob {name} has no log yet ({_progress(st)}); it starts once the cluster is up: "
            f"harness logs {name} --namespace {namespace} --follow"
        )
    _print_log(core, pod.metadata.name, namespace, follow=False)


def _guard(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a subcommand; a ClusterError becomes ``error: ...`` and exit code 1.

    A ConfigError goes on up to ``harness.cli.main``, which reports it like every
    other command does.
    """

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    return run


def _exit_code(final: dict | None) -> int:
    if final is None:
        return 130
    return 0 if final["jobStatus"] == "SUCCEEDED" and final["jobDeploymentStatus"] == "Complete" else 1


def _cmd_submit(args: argparse.Namespace) -> int:
    store = args.store or os.environ.get("CAS_STORE") or load_config(args.config).store
    name = submit(
        args.config, cluster=args.cluster, namespace=args.namespace, image=args.image, store=store, follow=False
    )
    if args.no_follow:
        print(_reattach_hint(name, args.namespace), file=sys.stderr)
        return 0
    return _exit_code(follow(name, namespace=args.namespace))


def _cmd_status(args: argparse.Namespace) -> int:
    st = status(args.name, namespace=args.namespace)
    for key in (
        "name",
        "namespace",
        "jobDeploymentStatus",
        "jobStatus",
        "message",
        "rayClusterName",
        "dashboardURL",
        "startTime",
        "endTime",
        "store",
        "sweep",
    ):
        if st[key]:
            print(f"{key + ':':21} {st[key]}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    logs(args.name, namespace=args.namespace, follow=args.follow)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``status`` and ``logs`` to the ``harness`` command line."""
    namespace_help = f"Kubernetes namespace (default: {DEFAULT_NAMESPACE})"

    p = subparsers.add_parser(
        "submit", help="run a sweep on Kubernetes as a KubeRay RayJob", description=submit.__doc__
    )
    p.add_argument("config", type=Path, help="sweep config YAML")
    p.add_argument(
        "--cluster",
        metavar="NAME",
        help="join this running RayCluster (e.g. cas-shared); default: an own cluster for this job",
    )
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.add_argument(
        "--image",
        default=os.environ.get("CAS_IMAGE", DEFAULT_IMAGE),
        help="harness image (default: $CAS_IMAGE or %(default)s)",
    )
    p.add_argument(
        "--store",
        metavar="URI",
        help=f"s3://..., gs://... or a path under {PVC_MOUNT} (default: $CAS_STORE, else the config's store)",
    )
    p.add_argument("--no-follow", action="store_true", help="return once the RayJob is created")
    p.set_defaults(func=_guard(_cmd_submit))

    p = subparsers.add_parser("status", help="state of a submitted sweep's RayJob", description=status.__doc__)
    p.add_argument("name", help="RayJob name, as printed by submit")
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.set_defaults(func=_guard(_cmd_status))

    p = subparsers.add_parser("logs", help="driver log of a submitted sweep", description=logs.__doc__)
    p.add_argument("name", help="RayJob name, as printed by submit")
    p.add_argument("--namespace", "-n", default=DEFAULT_NAMESPACE, help=namespace_help)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends (Ctrl-C detaches)")
    p.set_defaults(func=_guard(_cmd_logs))
