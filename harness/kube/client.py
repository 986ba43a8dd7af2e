"""The Kubernetes API side of ``harness submit``, ``status`` and ``logs``: create the objects,
read a RayJob's state, stream its driver's log, and turn the API errors a user can act on
into one line saying what to do (``ClusterError``).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from harness.config_file import load_config
from harness.kube import ClusterError
from harness.kube.manifests import (
    GROUP,
    STORE_ANNOTATION,
    SWEEP_LABEL,
    TTL_SECONDS,
    VERSION,
    build_configmap,
    build_rayjob,
    job_name,
)
from harness.progress import format_seconds

POLL_SECONDS = 5.0
TERMINAL = ("Complete", "Failed", "ValidationFailed")
SUBMITTER_POD_LABEL = "batch.kubernetes.io/job-name"


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


def reattach_hint(name: str, namespace: str) -> str:
    """The commands that follow, inspect or stop RayJob ``name`` after a detach."""
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
            f"\ndetached; RayJob {name} keeps running in namespace {namespace}.\n{reattach_hint(name, namespace)}",
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
