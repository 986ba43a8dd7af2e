"""Security of everything the Kubernetes side runs.

The rules of tools/k8s_security.py (non-root, no privilege escalation, all capabilities
dropped, read-only root filesystem, RuntimeDefault seccomp, requests and limits, no host
namespaces or hostPath, credentials only from Secrets, API tokens only where needed) hold
for every pod template in ray_cluster.yaml, k8s/*.yaml, the kustomize overlays and both
kinds of RayJob that ``harness submit`` builds; each deliberately broken variant is caught.
Also: KubeRay token authentication on the clusters, least-privilege RBAC, and checkov over
k8s/ and ray_cluster.yaml (checkov does not look inside RayCluster and RayJob pod templates,
hence the rules of our own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.kube import manifests
from harness.kube.manifests import build_rayjob
from tests.k8s_support import REPO, edit, load
from tools import validate_k8s
from tools.k8s_security import PSS_ENFORCE, pod_specs, security_errors

K8S_FILES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "k8s").glob("*.yaml"))


def rayjob(shared: str | None, store: str = "s3://cas-bucket/store") -> dict:
    return build_rayjob(
        "name: quickstart\n",
        name="quickstart-2501011200-ab12",
        namespace="cas",
        image="img:1",
        store=store,
        cluster=shared,
    )


def shipped() -> list[tuple[str, dict]]:
    found = [
        (f"{rel} {o['kind']}/{o.get('metadata', {}).get('name', '')}", o)
        for rel in ["ray_cluster.yaml", *K8S_FILES]
        for o in load(rel)
    ]
    for rel in validate_k8s.KUSTOMIZATIONS:
        found += [(f"kustomize {rel} {o['kind']}", o) for o in validate_k8s.kustomize(REPO / rel)]
    for shared in (None, "cas-shared"):
        for store in ("s3://cas-bucket/store", "/mnt/cas-store/lab"):
            found.append((f"build_rayjob cluster={shared} store={store}", rayjob(shared, store)))
    return found


SHIPPED = shipped()


@pytest.mark.parametrize(("what", "obj"), SHIPPED, ids=[what for what, _ in SHIPPED])
def test_every_shipped_and_generated_object_keeps_the_rules(what: str, obj: dict) -> None:
    assert security_errors(obj) == []


def test_the_rules_see_every_pod_template() -> None:
    def pods(obj: dict) -> list[str]:
        return [where for where, _ in pod_specs(obj)]

    cluster = ["headGroupSpec.template.spec", "workerGroupSpecs[0].template.spec", "workerGroupSpecs[1].template.spec"]
    assert pods(manifests.shared_cluster()) == [f"spec.{p}" for p in cluster]
    own = ["spec.submitterPodTemplate.spec", *(f"spec.rayClusterSpec.{p}" for p in cluster)]
    assert pods(rayjob(None)) == pods(load("k8s/rayjob.yaml")[0]) == own
    assert pods(rayjob("cas-shared")) == ["spec.submitterPodTemplate.spec"]
    assert "k8s/rayjob.yaml" in K8S_FILES and "ray_cluster.yaml" not in K8S_FILES


RC = manifests.shared_cluster()
OWN = rayjob(None)
SHARED = rayjob("cas-shared")
HEAD = "spec.headGroupSpec.template.spec"
GPU = "spec.workerGroupSpecs.0.template.spec"
CPU = "spec.workerGroupSpecs.1.template.spec"
SUBMITTER = "spec.submitterPodTemplate.spec"
NAMESPACE = load("k8s/namespace.yaml")[0]
RC_CPU_VOLUMES = RC["spec"]["workerGroupSpecs"][1]["template"]["spec"]["volumes"]
HEAD_AT = "spec.headGroupSpec.template.spec.containers[0] (ray-head)"
GPU_AT = "spec.workerGroupSpecs[0].template.spec.containers[0] (ray-worker)"
SUBMITTER_AT = "spec.submitterPodTemplate.spec.containers[0] (ray-job-submitter)"
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "notebook", "namespace": "cas"},
    "spec": {"template": {"spec": {"containers": [{"name": "nb", "image": "jupyter:1"}]}}},
}


# (id, group, securityContext field of its Ray container, broken value, what the rule says)
CONTAINER_CASES = [
    ("root-allowed", HEAD, "runAsNonRoot", False, "runAsNonRoot: must be true"),
    ("uid-0", GPU, "runAsUser", 0, "runAsUser: must be a non-zero UID, got 0"),
    ("privilege-escalation", GPU, "allowPrivilegeEscalation", True, "allowPrivilegeEscalation: must be false"),
    ("privileged", HEAD, "privileged", True, "privileged: must not be true"),
    ("capabilities-kept", HEAD, "capabilities", {"drop": ["NET_RAW"]}, "capabilities.drop: must contain ALL"),
    (
        "capability-added",
        HEAD,
        "capabilities",
        {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
        "capabilities.add: must be empty, got ['SYS_ADMIN']",
    ),
    ("writable-root", GPU, "readOnlyRootFilesystem", False, "readOnlyRootFilesystem: must be true"),
    (
        "seccomp-unconfined",
        HEAD,
        "seccompProfile",
        {"type": "Unconfined"},
        "seccompProfile.type: must be RuntimeDefault, got 'Unconfined'",
    ),
]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        *(
            pytest.param(
                edit(RC, f"{group}.containers.0.securityContext.{field}", value),
                f"{HEAD_AT if group == HEAD else GPU_AT}.securityContext.{message}",
                id=case,
            )
            for case, group, field, value, message in CONTAINER_CASES
        ),
        pytest.param(
            edit(
                edit(RC, f"{GPU}.containers.0.securityContext.runAsUser", None, delete=True),
                f"{GPU}.securityContext.runAsUser",
                None,
                delete=True,
            ),
            f"{GPU_AT}.securityContext.runAsUser: must be a non-zero UID, got None",
            id="uid-unset",
        ),
        pytest.param(
            edit(RC, f"{GPU}.containers.0.resources.limits", None, delete=True),
            f"{GPU_AT}.resources.limits: needs cpu and memory",
            id="no-limits",
        ),
        pytest.param(
            edit(OWN, f"{SUBMITTER}.containers.0.resources.requests", {"cpu": "1"}),
            f"{SUBMITTER_AT}.resources.requests: needs memory",
            id="submitter-no-memory-request",
        ),
        pytest.param(
            edit(RC, f"{CPU}.volumes", [*RC_CPU_VOLUMES, {"name": "host", "hostPath": {"path": "/var/run"}}]),
            "spec.workerGroupSpecs[1].template.spec.volumes[2] (host): hostPath volumes are not allowed",
            id="host-path",
        ),
        pytest.param(
            edit(RC, f"{HEAD}.hostNetwork", True),
            "spec.headGroupSpec.template.spec.hostNetwork: must not be true",
            id="host-network",
        ),
        pytest.param(
            edit(RC, f"{GPU}.containers.0.ports", [{"containerPort": 8265, "hostPort": 8265}]),
            f"{GPU_AT}.ports: must not use a hostPort",
            id="host-port",
        ),
        pytest.param(
            edit(SHARED, f"{SUBMITTER}.containers.0.env", [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]),
            f"{SUBMITTER_AT}.env.AWS_SECRET_ACCESS_KEY: a credential written inline",
            id="inline-secret",
        ),
        pytest.param(
            edit(
                OWN,
                "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.env",
                [{"name": "RAY_AUTH_TOKEN", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "t"}}}],
            ),
            "spec.rayClusterSpec.headGroupSpec.template.spec.containers[0] (ray-head).env.RAY_AUTH_TOKEN: "
            "a credential read from a ConfigMap",
            id="secret-from-configmap",
        ),
        pytest.param(
            edit(RC, f"{HEAD}.containers.0.env", [{"name": "STORE_OPTIONS", "value": "key=AKIAIOSFODNN7EXAMPLE"}]),
            f"{HEAD_AT}.env.STORE_OPTIONS: its value looks like an AWS access key",
            id="aws-key-under-another-name",
        ),
        pytest.param(
            edit(RC, f"{GPU}.automountServiceAccountToken", None, delete=True),
            "spec.workerGroupSpecs[0].template.spec.automountServiceAccountToken: must be false",
            id="worker-api-token",
        ),
        pytest.param(
            edit(SHARED, f"{SUBMITTER}.automountServiceAccountToken", True),
            "spec.submitterPodTemplate.spec.automountServiceAccountToken: must be false",
            id="submitter-api-token",
        ),
        pytest.param(
            edit(RC, "spec.autoscalerOptions.securityContext", None, delete=True),
            "spec.autoscalerOptions (autoscaler).securityContext.allowPrivilegeEscalation: must be false",
            id="autoscaler-unlocked",
        ),
        pytest.param(
            edit(OWN, "spec.rayClusterSpec.autoscalerOptions.resources", None, delete=True),
            "spec.rayClusterSpec.autoscalerOptions (autoscaler).resources.requests: needs cpu and memory",
            id="autoscaler-no-resources",
        ),
        pytest.param(
            edit(NAMESPACE, "metadata.labels", {**NAMESPACE["metadata"]["labels"], PSS_ENFORCE: "baseline"}),
            "metadata.labels.pod-security.kubernetes.io/enforce: must be restricted, got 'baseline'",
            id="namespace-not-restricted",
        ),
        pytest.param(
            DEPLOYMENT,
            "spec.template.spec.containers[0] (nb).securityContext.runAsNonRoot: must be true",
            id="any-kind-with-a-pod-template",
        ),
    ],
)
def test_a_broken_variant_fails_naming_the_field(obj: dict, expected: str) -> None:
    found = security_errors(obj)
    assert any(line.startswith(expected) for line in found), found


def test_a_credential_from_a_secret_key_is_allowed() -> None:
    env = [{"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "cas-shared", "key": "auth_token"}}}]
    assert security_errors(edit(RC, f"{HEAD}.containers.0.env", env)) == []


def test_yaml_aliases_do_not_hide_a_broken_group() -> None:
    assert load("ray_cluster.yaml") == [RC]
    broken = edit(RC, f"{CPU}.containers.0.securityContext.allowPrivilegeEscalation", True)
    assert [line.split(":")[0] for line in security_errors(broken)] == [
        "spec.workerGroupSpecs[1].template.spec.containers[0] (ray-worker).securityContext.allowPrivilegeEscalation"
    ]


def test_the_clusters_dashboard_and_job_api_need_kuberays_token() -> None:
    assert RC["spec"]["authOptions"] == {"mode": "token"}
    assert OWN["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    crd_errors = validate_k8s.ray_errors
    assert crd_errors(RC) == [] and crd_errors(OWN) == []
    assert crd_errors(edit(RC, "spec.authOptions.mode", "tokn")) == [
        "spec.authOptions.mode: 'tokn' is not one of ['disabled', 'token']"
    ]
    assert crd_errors(edit(RC, "spec.authOptions.secret", "x")) == ["spec.authOptions.secret: unknown field"]


def test_rbac_grants_no_secrets_wildcards_or_escalation() -> None:
    objs = [o for rel in K8S_FILES for o in load(rel)] + validate_k8s.kustomize(REPO / "k8s")
    assert not {"ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in objs}
    rules = [r for o in objs if o["kind"] == "Role" for r in o["rules"]]
    assert rules
    for rule in rules:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert not {"secrets", "pods/exec", "pods/attach", "roles", "rolebindings"} & set(rule["resources"]), rule
        assert not {"escalate", "bind", "impersonate", "update"} & set(rule["verbs"]), rule


def checkov_command() -> str | None:
    """checkov from $CHECKOV, the Makefile's .venv-checkov, or PATH."""
    for candidate in (os.environ.get("CHECKOV"), str(REPO / ".venv-checkov" / "bin" / "checkov")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("checkov")


@pytest.mark.slow
def test_checkov_reports_no_failed_check() -> None:
    checkov = checkov_command()
    if checkov is None:
        pytest.skip(
            "checkov is not installed: `make checkov` (and `make test`) installs it in .venv-checkov, its own "
            "environment, since its pins (botocore<1.36, packaging 23) clash with the harness's; or set $CHECKOV"
        )
    path = f"{Path(validate_k8s.kubectl()).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        [checkov, "--config-file", "tools/checkov.yaml", "--output", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": path},
    )
    reports = json.loads(done.stdout)
    reports = {r["check_type"]: r for r in (reports if isinstance(reports, list) else [reports]) if "check_type" in r}
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for report in reports.values()
        for check in report["results"]["failed_checks"]
    ]
    assert failed == [] and done.returncode == 0, failed or done.stderr[-2000:]
    assert {"kubernetes", "kustomize", "dockerfile"} <= set(reports)
    assert reports["kubernetes"]["summary"]["passed"] > 0 and reports["kustomize"]["summary"]["passed"] > 0
    for report in reports.values():
        for check in report["results"]["skipped_checks"]:
            assert len(check["check_result"].get("suppress_comment") or "") > 20, check["check_id"]
