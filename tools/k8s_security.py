"""Security rules for every pod template the repository ships or generates.

checkov (``make checkov``) checks the core kinds in ``k8s/`` but does not look inside
KubeRay's RayCluster and RayJob, whose pod templates describe every pod a sweep runs. These
rules, the restricted Pod Security Standard plus a few of ours, apply to any pod template
found anywhere in an object (a RayCluster's groups, a RayJob's submitter and own cluster, a
Pod, a Job...) and to the autoscaler sidecar that ``autoscalerOptions`` describes:

* non-root: ``runAsNonRoot: true`` and a non-zero ``runAsUser`` (on the pod or container);
* every container: ``allowPrivilegeEscalation: false``, not privileged, capabilities
  ``drop: [ALL]`` and none added, ``readOnlyRootFilesystem: true``, no host ports;
* the seccomp profile ``RuntimeDefault`` (or ``Localhost``);
* requests and limits, each with cpu and memory, on every container;
* no host network, PID or IPC namespace, no hostPath volume;
* credentials only from Secrets: an env var named like one (``*_KEY``, ``*SECRET*``,
  ``*_TOKEN``, ``*PASSWORD*``, ``*CREDENTIALS*``) takes its value from a ``secretKeyRef``,
  never inline or from a ConfigMap, and no value looks like an AWS access key;
* a Kubernetes API token only where it is needed: a pod that names no service account and
  is not the head of an autoscaling cluster (whose autoscaler calls the API) sets
  ``automountServiceAccountToken: false``;
* a Namespace enforces the restricted Pod Security Standard.

``security_errors(obj)`` returns one line per violation, naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

CREDENTIAL_NAME = re.compile(r"(^|_)(KEY|TOKEN)(_|$)|SECRET|PASSWORD|PASSWD|CREDENTIALS?")
AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
SECCOMP_PROFILES = ("RuntimeDefault", "Localhost")
PSS_ENFORCE = "pod-security.kubernetes.io/enforce"


def _walk(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}[{i}]")


def pod_specs(obj: Any) -> list[tuple[str, dict]]:
    """Every pod spec in ``obj`` (a dict with a ``containers`` list), with where it is."""
    return [(where, node) for where, node in _walk(obj, "") if isinstance(node.get("containers"), list)]


def _join(where: str, path: str) -> str:
    return f"{where}.{path}" if where else path


def _autoscaling_clusters(obj: Any) -> Iterator[tuple[str, dict]]:
    """Each RayCluster spec in ``obj`` whose head runs the autoscaler sidecar, with where it is."""
    for where, node in _walk(obj, ""):
        if isinstance(node.get("headGroupSpec"), dict) and node.get("enableInTreeAutoscaling"):
            yield where, node


def _effective(key: str, container: dict, pod: dict) -> Any:
    """A security setting of ``container``, else of its pod (Kubernetes' precedence)."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


def _env_errors(container: dict, at: str) -> list[str]:
    errors = []
    for env in container.get("env") or []:
        name, source = env.get("name", ""), env.get("valueFrom") or {}
        if CREDENTIAL_NAME.search(name.upper()):
            if "value" in env:
                errors.append(f"{at}.env.{name}: a credential written inline; take it from a Secret (secretKeyRef)")
            elif "configMapKeyRef" in source:
                errors.append(f"{at}.env.{name}: a credential read from a ConfigMap; take it from a Secret")
        if AWS_ACCESS_KEY.search(str(env.get("value", ""))):
            errors.append(f"{at}.env.{name}: its value looks like an AWS access key; keep credentials in a Secret")
    return errors


def container_errors(container: dict, pod: dict, at: str) -> list[str]:
    """The rules for one container of ``pod`` (its pod-level settings count too)."""
    errors = []
    security = container.get("securityContext") or {}
    if _effective("runAsNonRoot", container, pod) is not True:
        errors.append(f"{at}.securityContext.runAsNonRoot: must be true (on the container or its pod)")
    user = _effective("runAsUser", container, pod)
    if not isinstance(user, int) or user == 0:
        errors.append(f"{at}.securityContext.runAsUser: must be a non-zero UID, got {user!r}")
    if security.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{at}.securityContext.allowPrivilegeEscalation: must be false")
    if security.get("privileged"):
        errors.append(f"{at}.securityContext.privileged: must not be true")
    capabilities = security.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        errors.append(f"{at}.securityContext.capabilities.drop: must contain ALL")
    if capabilities.get("add"):
        errors.append(f"{at}.securityContext.capabilities.add: must be empty, got {capabilities['add']}")
    if security.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{at}.securityContext.readOnlyRootFilesystem: must be true (mount an emptyDir where it writes)")
    seccomp = _effective("seccompProfile", container, pod) or {}
    if seccomp.get("type") not in SECCOMP_PROFILES:
        errors.append(f"{at}.securityContext.seccompProfile.type: must be RuntimeDefault, got {seccomp.get('type')!r}")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in (resources.get(kind) or {})]
        if missing:
            errors.append(f"{at}.resources.{kind}: needs {' and '.join(missing)}")
    if any(port.get("hostPort") for port in container.get("ports") or []):
        errors.append(f"{at}.ports: must not use a hostPort")
    return errors + _env_errors(container, at)


def pod_errors(pod: dict, where: str, *, needs_api_token: bool = False) -> list[str]:
    """The rules for one pod spec and each of its containers."""
    errors = [f"{where}.{key}: must not be true" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    errors += [
        f"{where}.volumes[{i}] ({volume.get('name')}): hostPath volumes are not allowed"
        for i, volume in enumerate(pod.get("volumes") or [])
        if "hostPath" in volume
    ]
    if not needs_api_token and "serviceAccountName" not in pod and pod.get("automountServiceAccountToken") is not False:
        errors.append(
            f"{where}.automountServiceAccountToken: must be false (this pod does not call the Kubernetes API)"
        )
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(pod.get(field) or []):
            errors += container_errors(container, pod, f"{where}.{field}[{i}] ({container.get('name')})")
    return errors


def security_errors(obj: Any) -> list[str]:
    """Every violation of the rules above in ``obj``, one line each; [] if it keeps them all."""
    if not isinstance(obj, dict):
        return []
    errors = []
    clusters = list(_autoscaling_clusters(obj))
    heads = {_join(where, "headGroupSpec.template.spec") for where, _ in clusters}
    for where, pod in pod_specs(obj):
        errors += pod_errors(pod, where, needs_api_token=where in heads)
    for where, spec in clusters:
        head = spec["headGroupSpec"].get("template", {}).get("spec", {})
        options = spec.get("autoscalerOptions") or {}
        errors += container_errors(
            {"name": "autoscaler", **options}, head, f"{_join(where, 'autoscalerOptions')} (autoscaler)"
        )
    if obj.get("kind") == "Namespace":
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(PSS_ENFORCE) != "restricted":
            errors.append(f"metadata.labels.{PSS_ENFORCE}: must be restricted, got {labels.get(PSS_ENFORCE)!r}")
    return errors
