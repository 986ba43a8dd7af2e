"""Submitting, following and inspecting sweeps through the real Kubernetes client.

No API server can run here, so a small HTTP server on 127.0.0.1 speaks the Kubernetes API
for exactly the calls harness.kube.client makes (create ConfigMap and RayJob, patch and delete
the ConfigMap, get RayJob and RayCluster, list pods by label, read a pod log) and records
every request, so the tests check the exact objects sent and the error paths.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness.kube import ClusterError, commands, manifests
from harness.kube import client as kube_api
from harness.kube.manifests import build_configmap, build_rayjob

REPO = Path(__file__).parents[1]
CONFIG_TEXT = (REPO / "configs" / "quickstart.yaml").read_text()
ROUTE = re.compile(
    r"^/apis?/(?:ray\.io/)?v1/namespaces/(?P<ns>[^/]+)/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?(?P<log>/log)?$"
)

RUN_FOLDER = "s3://cas-bucket/lab/runs/quickstart-20250101-120000"
DRIVER_LOG = (
    "[sample] 3/3 sample sets · done in 41s\n"
    "[train] 11 cells: 0 already trained in the store, 11 to train\n"
    f"{RUN_FOLDER}\n"
    "------------------------------------------\n"
    "Job 'raysubmit_abc' succeeded\n"
)


def status_error(code: int, reason: str, message: str, details: dict | None = None) -> tuple[int, Any]:
    return code, {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "details": details or {},
        "code": code,
    }


@dataclass
class Request:
    method: str
    resource: str
    namespace: str
    name: str | None
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeKube:
    """The API server's side: scripted RayJob states, failures, and a record of requests."""

    states: list[tuple[str, str]] = field(
        default_factory=lambda: [("Initializing", "PENDING"), ("Running", "RUNNING"), ("Complete", "SUCCEEDED")]
    )
    fail: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    rayjob: dict | None = None
    state: tuple[str, str] = ("", "")
    log: str = DRIVER_LOG

    def handle(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        route = ROUTE.match(path)
        assert route, f"unexpected request {method} {path}"
        resource = route["res"] + ("/log" if route["log"] else "")
        self.requests.append(Request(method, resource, route["ns"], route["name"], query, body))
        if (method, resource) in self.fail:
            return self.fail[(method, resource)]
        match method, resource:
            case "GET", "rayclusters":
                return 200, {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": route["name"]}}
            case "POST", "configmaps":
                return 201, {**body, "metadata": {**body["metadata"], "uid": "cm-uid"}}
            case "PATCH" | "DELETE", "configmaps":
                return 200, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": route["name"]}}
            case "POST", "rayjobs":
                self.rayjob = {**body, "metadata": {**body["metadata"], "uid": "rayjob-uid"}}
                return 201, self.rayjob
            case "GET", "rayjobs":
                if self.rayjob is None or self.rayjob["metadata"]["name"] != route["name"]:
                    return status_error(
                        404,
                        "NotFound",
                        f'rayjobs.ray.io "{route["name"]}" not found',
                        {"name": route["name"], "group": "ray.io", "kind": "rayjobs"},
                    )
                self.state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
                deployment, job = self.state
                return 200, {
                    **self.rayjob,
                    "status": {"jobDeploymentStatus": deployment, "jobStatus": job, "rayClusterName": "rc-1"},
                }
            case "GET", "pods":
                selected = self.rayjob and query.get("labelSelector") == [
                    f"batch.kubernetes.io/job-name={self.rayjob['metadata']['name']}"
                ]
                phase = {"Running": "Running", "Complete": "Succeeded", "Failed": "Failed"}.get(self.state[0])
                items = (
                    []
                    if phase is None or not selected
                    else [
                        self.pod("old-submitter", "2025-01-01T00:00:00Z", "Failed"),
                        self.pod("submitter", "2025-01-01T00:05:00Z", phase),
                    ]
                )
                return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
            case "GET", "pods/log":
                return 200, self.log if route["name"] == "submitter" else "an older attempt\n"
        raise AssertionError(f"unhandled {method} {resource}")

    @staticmethod
    def pod(name: str, created: str, phase: str) -> dict:
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.resource) for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        code, payload = self.server.fake.handle(
            self.command, url.path, parse_qs(url.query), json.loads(raw) if raw else None
        )
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def kube() -> Iterator[tuple[FakeKube, str]]:
    fake = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(kube: tuple[FakeKube, str]) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=kube[1])
    with client.ApiClient(configuration) as api_client:
        yield api_client


@pytest.fixture
def fake(kube: tuple[FakeKube, str]) -> FakeKube:
    return kube[0]


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "quickstart.yaml"
    path.write_text(CONFIG_TEXT)
    return path


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_api, "POLL_SECONDS", 0.0)


def submit(config_path: Path, api: client.ApiClient, **kw: Any) -> str:
    args = {
        "cluster": None,
        "namespace": "cas",
        "image": "reg.example/cas-harness:1",
        "store": "s3://cas-bucket/lab",
        "follow": False,
    }
    return kube_api.submit(config_path, **{**args, **kw}, api_client=api)


def test_submit_sends_the_configmap_and_the_rayjob_build_rayjob_makes(
    fake: FakeKube, api: client.ApiClient, config_path: Path
) -> None:
    name = submit(config_path, api)
    assert re.fullmatch(r"quickstart-\d{10}-[0-9a-f]{4}", name)
    assert fake.calls() == [("POST", "configmaps"), ("POST", "rayjobs"), ("PATCH", "configmaps")]
    cm, job, patch = fake.requests
    assert cm.namespace == job.namespace == patch.namespace == "cas"
    assert cm.body == build_configmap(CONFIG_TEXT, name=name, namespace="cas")
    assert cm.body["data"]["config.yaml"] == CONFIG_TEXT
    assert job.body == build_rayjob(
        CONFIG_TEXT,
        name=name,
        namespace="cas",
        image="reg.example/cas-harness:1",
        store="s3://cas-bucket/lab",
        cluster=None,
    )
    assert patch.name == f"{name}-config"
    assert patch.body == {
        "metadata": {
            "ownerReferences": [{"apiVersion": "ray.io/v1", "kind": "RayJob", "name": name, "uid": "rayjob-uid"}]
        }
    }


def test_submit_to_the_shared_cluster_checks_it_exists_first(
    fake: FakeKube, api: client.ApiClient, config_path: Path
) -> None:
    name = submit(config_path, api, cluster="cas-shared")
    assert fake.calls()[0] == ("GET", "rayclusters") and fake.requests[0].name == "cas-shared"
    assert fake.requests[2].body == build_rayjob(
        CONFIG_TEXT,
        name=name,
        namespace="cas",
        image="reg.example/cas-harness:1",
        store="s3://cas-bucket/lab",
        cluster="cas-shared",
    )
    assert fake.requests[2].body["spec"]["clusterSelector"] == {"ray.io/cluster": "cas-shared"}


def test_submit_follows_progress_and_log_to_the_results(
    fake: FakeKube, api: client.ApiClient, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = submit(config_path, api, follow=True)
    out, err = capsys.readouterr()
    assert fake.calls()[3:] == [
        ("GET", "rayjobs"),
        ("GET", "pods"),
        ("GET", "rayjobs"),
        ("GET", "pods"),
        ("GET", "pods/log"),
        ("GET", "rayjobs"),
        ("GET", "pods"),
    ]
    pods, log = fake.requests[6], fake.requests[7]
    assert pods.query == {"labelSelector": [f"batch.kubernetes.io/job-name={name}"]}
    assert log.name == "submitter" and [v.lower() for v in log.query["follow"]] == ["true"]
    assert DRIVER_LOG in out
    assert f"RayJob {name}: SUCCEEDED (Complete)" in out
    assert out.rstrip().endswith(f"results and report: {RUN_FOLDER}")
    progress = [line for line in err.splitlines() if line.startswith(f"[{name}]")]
    assert [p.split(" · ")[:2] for p in progress] == [
        [f"[{name}] cluster Initializing", "job PENDING"],
        [f"[{name}] cluster Running", "job RUNNING"],
        [f"[{name}] cluster Complete", "job SUCCEEDED"],
    ]
    assert f"submitted RayJob {name} in namespace cas" in err


def test_follow_prints_the_log_of_a_job_that_finished_before_it_looked(
    fake: FakeKube, api: client.ApiClient, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = submit(config_path, api)
    fake.states = [("Failed", "FAILED")]
    final = kube_api.follow(name, namespace="cas", api_client=api)
    out = capsys.readouterr().out
    assert final["jobStatus"] == "FAILED"
    assert fake.requests[-1].resource == "pods/log" and [v.lower() for v in fake.requests[-1].query["follow"]] == [
        "false"
    ]
    assert DRIVER_LOG in out and f"RayJob {name}: FAILED (Failed)" in out


def test_ctrl_c_detaches_without_deleting_and_says_how_to_reattach(
    fake: FakeKube,
    api: client.ApiClient,
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = submit(config_path, api)
    fake.states = [("Initializing", "")]

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(kube_api.time, "sleep", interrupt)
    assert kube_api.follow(name, namespace="cas", api_client=api) is None
    err = capsys.readouterr().err
    assert f"detached; RayJob {name} keeps running in namespace cas" in err
    assert f"harness logs {name} --namespace cas --follow" in err
    assert "DELETE" not in {r.method for r in fake.requests}


def test_status_reports_kuberay_states_and_the_store(fake: FakeKube, api: client.ApiClient, config_path: Path) -> None:
    name = submit(config_path, api)
    fake.states = [("Running", "RUNNING")]
    st = kube_api.status(name, namespace="cas", api_client=api)
    assert st["jobDeploymentStatus"] == "Running" and st["jobStatus"] == "RUNNING"
    assert st["rayClusterName"] == "rc-1"
    assert st["store"] == "s3://cas-bucket/lab" and st["sweep"] == "quickstart"


def test_logs_prints_the_newest_submitter_pod(
    fake: FakeKube, api: client.ApiClient, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = submit(config_path, api)
    fake.states = [("Complete", "SUCCEEDED")]
    kube_api.status(name, namespace="cas", api_client=api)
    kube_api.logs(name, namespace="cas", follow=False, api_client=api)
    assert capsys.readouterr().out == DRIVER_LOG
    assert fake.requests[-1].name == "submitter"


def test_logs_before_the_cluster_is_up_says_when_to_come_back(
    fake: FakeKube, api: client.ApiClient, config_path: Path
) -> None:
    name = submit(config_path, api)
    fake.states = [("Initializing", "")]
    with pytest.raises(ClusterError, match=rf"RayJob {name} has no log yet \(cluster Initializing · job -\).*--follow"):
        kube_api.logs(name, namespace="cas", follow=False, api_client=api)


CRD_MISSING = (404, "404 page not found\n")


@pytest.mark.parametrize(
    ("failure", "expected", "calls"),
    [
        pytest.param(
            {("POST", "rayjobs"): CRD_MISSING},
            "cannot create RayJob {name}: the RayJob/RayCluster CRDs (ray.io/v1) are not installed in this cluster; "
            "install the KubeRay operator 1.7 first (docs/KUBERNETES.md)",
            [("POST", "configmaps"), ("POST", "rayjobs"), ("DELETE", "configmaps")],
            id="404-crd-missing",
        ),
        pytest.param(
            {
                ("POST", "configmaps"): status_error(
                    404, "NotFound", 'namespaces "cas" not found', {"name": "cas", "kind": "namespaces"}
                )
            },
            "cannot create ConfigMap {name}-config: namespace cas does not exist; create it with `kubectl apply -k "
            "k8s/` (docs/KUBERNETES.md)",
            [("POST", "configmaps")],
            id="404-namespace-missing",
        ),
        pytest.param(
            {
                ("POST", "configmaps"): status_error(
                    403,
                    "Forbidden",
                    'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the '
                    'namespace "cas"',
                )
            },
            'cannot create ConfigMap {name}-config in namespace cas: forbidden (configmaps is forbidden: User "alice" '
            "cannot create resource "
            '"configmaps" in API group "" in the namespace "cas"); ask a cluster admin to bind you to the '
            "cas-submitter Role (k8s/rbac.yaml)",
            [("POST", "configmaps")],
            id="403-forbidden",
        ),
        pytest.param(
            {
                ("POST", "rayjobs"): status_error(
                    409, "AlreadyExists", 'rayjobs.ray.io "x" already exists', {"name": "x", "kind": "rayjobs"}
                )
            },
            'cannot create RayJob {name}: it already exists in namespace cas (rayjobs.ray.io "x" already exists); '
            "submit again for a fresh name",
            [("POST", "configmaps"), ("POST", "rayjobs"), ("DELETE", "configmaps")],
            id="409-conflict",
        ),
        pytest.param(
            {("POST", "rayjobs"): status_error(401, "Unauthorized", "Unauthorized")},
            "cannot create RayJob {name}: the cluster rejected your credentials (Unauthorized); log in again (refresh "
            "your kubeconfig token)",
            [("POST", "configmaps"), ("POST", "rayjobs"), ("DELETE", "configmaps")],
            id="401-unauthorized",
        ),
    ],
)
def test_submit_errors_are_one_clear_line(
    fake: FakeKube,
    api: client.ApiClient,
    config_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: dict,
    expected: str,
    calls: list,
) -> None:
    monkeypatch.setattr(kube_api, "job_name", lambda path: "quickstart-2501011200-ab12")
    fake.fail = failure
    with pytest.raises(ClusterError) as caught:
        submit(config_path, api)
    assert str(caught.value) == expected.format(name="quickstart-2501011200-ab12")
    assert "\n" not in str(caught.value)
    assert fake.calls() == calls


def test_missing_shared_cluster_fails_before_anything_is_created(
    fake: FakeKube, api: client.ApiClient, config_path: Path
) -> None:
    fake.fail = {
        ("GET", "rayclusters"): status_error(
            404, "NotFound", 'rayclusters.ray.io "cas-shared" not found', {"name": "cas-shared", "kind": "rayclusters"}
        )
    }
    with pytest.raises(
        ClusterError,
        match=(
            r"^cannot find RayCluster cas-shared: RayCluster cas-shared not found in namespace cas; start it with "
            r"`make cluster-up`"
        ),
    ):
        submit(config_path, api, cluster="cas-shared")
    assert fake.calls() == [("GET", "rayclusters")]


def test_shared_cluster_check_notices_a_missing_crd(fake: FakeKube, api: client.ApiClient, config_path: Path) -> None:
    fake.fail = {("GET", "rayclusters"): CRD_MISSING}
    with pytest.raises(ClusterError, match=r"CRDs \(ray\.io/v1\) are not installed"):
        submit(config_path, api, cluster="cas-shared")


def test_status_of_an_unknown_rayjob(api: client.ApiClient) -> None:
    with pytest.raises(
        ClusterError,
        match=(
            r"^cannot get RayJob nope: RayJob nope not found in namespace cas; list them with `kubectl get rayjobs -n "
            r"cas`$"
        ),
    ):
        kube_api.status("nope", namespace="cas", api_client=api)


def test_an_api_server_fault_keeps_its_traceback(fake: FakeKube, api: client.ApiClient, config_path: Path) -> None:
    fake.fail = {("POST", "configmaps"): status_error(500, "InternalError", "etcdserver: request timed out")}
    with pytest.raises(ApiException) as caught:
        submit(config_path, api)
    assert caught.value.status == 500


def test_an_unreachable_api_server_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    unreachable = r"^cannot get RayJob x: the Kubernetes API is unreachable \(.*\); check your kubeconfig context$"
    with client.ApiClient(configuration) as api, pytest.raises(ClusterError, match=unreachable):
        kube_api.status("x", namespace="cas", api_client=api)


def test_no_kubeconfig_and_not_in_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(
        ClusterError, match=r"^no Kubernetes credentials: .*set up kubectl access to the cluster first$"
    ):
        kube_api.status("x", namespace="cas")


def test_a_bad_store_is_refused_before_any_request(fake: FakeKube, api: client.ApiClient, config_path: Path) -> None:
    with pytest.raises(
        ClusterError,
        match=(
            r"store 'store' is not reachable from the cluster: use an s3:// or gs:// URI, or a path under "
            r"/mnt/cas-store"
        ),
    ):
        submit(config_path, api, store="store")
    assert fake.requests == []


@pytest.mark.parametrize("store", ["s3://bucket/cas", "gs://bucket/a/b", "/mnt/cas-store", "/mnt/cas-store/lab/x"])
def test_stores_the_cluster_can_reach(store: str) -> None:
    manifests.check_store(store)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("store", "not reachable from the cluster"),
        ("/data/store", "not reachable from the cluster"),
        ("/mnt/cas-store/../etc", "not reachable from the cluster"),
        ("file:///mnt/cas-store", "the cluster supports s3://, gs:// URIs"),
        ("s3://bucket/my store", "no spaces or shell characters"),
        ("s3://bucket/$(rm -rf)", "no spaces or shell characters"),
    ],
)
def test_stores_the_cluster_cannot_reach(store: str, message: str) -> None:
    with pytest.raises(ClusterError, match=re.escape(message)):
        manifests.check_store(store)


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("quickstart", "quickstart-2501021304-"),
        ("Paper_CIFAR10 sweep", "paper-cifar10-sweep-2501021304-"),
        ("2024", "cas-2024-2501021304-"),
        ("___", "cas-2501021304-"),
        ("a" * 80, "a" * 31 + "-2501021304-"),
    ],
)
def test_job_names_are_what_kuberay_accepts(stem: str, expected: str) -> None:
    name = manifests.job_name(Path(f"configs/{stem}.yaml"), now=datetime(2025, 1, 2, 13, 4))
    assert name.startswith(expected) and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
    assert len(name) <= manifests.MAX_RAYJOB_NAME == 47


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def run_cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="harness")
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_submit_follows_through_the_kubeconfig(
    kube: tuple[FakeKube, str],
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url = kube
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    monkeypatch.setenv("CAS_STORE", "s3://cas-bucket/lab")
    assert run_cli(["submit", str(config_path), "--image", "reg.example/cas-harness:1"]) == 0
    assert (
        fake.requests[1].body["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"]
        == "reg.example/cas-harness:1"
    )
    assert capsys.readouterr().out.rstrip().endswith(f"results and report: {RUN_FOLDER}")
    name = fake.requests[1].body["metadata"]["name"]
    assert run_cli(["status", name, "-n", "cas"]) == 0
    assert re.search(r"^jobStatus:\s+SUCCEEDED$", capsys.readouterr().out, re.MULTILINE)


def test_cli_failed_job_and_errors_set_the_exit_code(
    kube: tuple[FakeKube, str],
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url = kube
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    fake.states = [("Running", "RUNNING"), ("Failed", "FAILED")]
    assert run_cli(["submit", str(config_path), "--store", "gs://b/lab", "--cluster", "cas-shared"]) == 1
    assert run_cli(["submit", str(config_path), "--store", "./store"]) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1].startswith("error: store './store' is not reachable from the cluster")
    )
    assert run_cli(["logs", "nope", "--namespace", "cas"]) == 1
    assert capsys.readouterr().err == (
        "error: cannot get RayJob nope: RayJob nope not found in namespace cas; "
        "list them with `kubectl get rayjobs -n cas`\n"
    )


def test_cli_submit_no_follow_prints_how_to_follow(
    kube: tuple[FakeKube, str],
    config_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url = kube
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    assert run_cli(["submit", str(config_path), "--store", "s3://b/lab", "--no-follow", "-n", "cas"]) == 0
    assert fake.calls() == [("POST", "configmaps"), ("POST", "rayjobs"), ("PATCH", "configmaps")]
    name = fake.requests[1].body["metadata"]["name"]
    assert f"harness logs {name} --namespace cas --follow" in capsys.readouterr().err
