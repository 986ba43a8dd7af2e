"""Fault injection on the reduced quickstart (issue 12): sweeps killed with SIGKILL while
sampling, training and extracting features, and one stopped with SIGTERM, then run again,
give the results of an uninterrupted sweep, field by field; every kind of artefact broken
in the store is repaired on the next run, with one warning line each; two sweeps of one
config into one S3 store at once share the work and agree; a generator that hangs and a
trial that runs too long fail their own cells while the sweep goes on.

Each sweep runs as ``harness sweep`` in a process of its own (a SIGKILL must hit a real
driver); the uninterrupted reference is shared by the module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.metrics.sets import is_metric_key
from harness.runs import list_runs
from harness.store import Store
from harness.verify import verify_store
from tests.sweep_support import BUCKET, REDUCED_QUICKSTART, comparable, local_s3

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def fault_config(folder: Path) -> Path:
    """The reduced quickstart with two epochs, shards of 500 images (three per sample set) and a
    generator that takes half a second per batch: a sweep killed while it samples has finished
    some of its shards, whatever the machine's speed."""
    data = yaml.safe_load(REDUCED_QUICKSTART)
    data["generators"].append({"name": "slow", "kind": "tests.fault_plugins:SlowGenerator",
                               "params": {"seconds": 0.5}})
    data["classifier"]["overrides"]["epochs"] = 2
    data["sampler"] = {"shard_size": 500}
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Sweep:
    """``harness sweep CONFIG --store STORE`` in a process of its own, its output in files."""

    def __init__(self, config: Path, store: str, logs: Path, address: str | None = None) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = logs / "stdout", logs / "stderr"
        argv = [sys.executable, "-m", "harness.cli", "sweep", str(config), "--store", store]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(argv + (["--address", address] if address else []), stdout=out, stderr=err,
                                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the sweep ended (exit {self.proc.returncode}) first:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"waited {timeout} s in vain:\n{self.stderr()}"
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=300)

    def finish(self, timeout: float = 600) -> tuple[int, list[dict[str, Any]] | None]:
        """The exit code and the run's records (read from the store while it is reachable)."""
        code = self.proc.wait(timeout=timeout)
        lines = self.out.read_text().strip().splitlines()
        if not lines:
            return code, None
        root, _, folder = lines[-1].rpartition("/runs/")
        return code, Store(root).read_json("runs", folder, "results.json")


def same_results(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What two runs with the same seeds must agree on: the cells and their numbers, metrics included."""
    metrics = [{k: v for k, v in r.items() if is_metric_key(k)} for r in records]
    return [{**c, **m} for c, m in zip(comparable(records), metrics, strict=True)]


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def slow_set_folder(config: Path, store: Path) -> str:
    """The folder of the slow generator's sample set, planned here from the real data, which the sweep's
    own ``real_data`` writes into ``store`` first."""
    from harness.config_file import load_config
    from harness.plan import plan_cells, sample_sets
    from harness.sweep import real_data

    sweep_config = load_config(config, str(store))
    real = real_data(sweep_config, Store(str(store)))
    return next(s.folder for s in sample_sets(plan_cells(sweep_config, real)) if s.generator.name == "slow")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """The uninterrupted sweep: config, store folder, records."""
    tmp = tmp_path_factory.mktemp("reference")
    config = fault_config(tmp)
    code, records = Sweep(config, str(tmp / "store"), tmp / "logs").finish()
    assert code == 0 and [r["status"] for r in records] == ["ok"] * 4
    return config, tmp / "store", records


def test_killed_and_stopped_sweeps_resume_to_the_same_results(reference: tuple[Path, Path, list[dict[str, Any]]],
                                                              tmp_path: Path) -> None:
    config, _, expected = reference
    store = tmp_path / "store"

    def sweep(name: str) -> Sweep:
        return Sweep(config, str(store), tmp_path / name)

    # 1. SIGKILL while sampling, once the slow generator's set has a shard but no manifest yet (the
    # cvae's sets can go from first shard to manifest between two looks); the sampler dies with the driver.
    slow = store / slow_set_folder(config, store)
    first = sweep("sample")
    first.wait_for(lambda: any(slow.glob("shard-*.npz")) and not (slow / "manifest.json").exists())
    raylets = [c for c in children(first.proc.pid) if "raylet" in command(c)]
    samplers = [w for r in raylets for w in children(r) if "Sampler" in command(w)]
    assert samplers, "no sampler worker found under the driver's raylet"
    assert first.kill() == -signal.SIGKILL
    killed = time.monotonic()
    while any(alive(w) for w in samplers) and time.monotonic() - killed < 30:
        time.sleep(0.2)
    assert not any(alive(w) for w in samplers)
    lingered = time.monotonic() - killed
    assert lingered < 20

    # 2. SIGKILL while training, once a trial's result is in the store.
    second = sweep("train")
    second.wait_for(lambda: any(store.glob("trials/*/result.json")))
    assert second.kill() == -signal.SIGKILL
    err = second.stderr()
    assert "[runs] runs/" in err and "was killed at stage sample; marked incomplete" in err
    made = err.split("[sample] 3 sample sets: ")[1].split("\n")[0]
    assert made.endswith(" to make") and int(made.split(", ")[1].split()[0]) >= 1, made
    assert "kept from an interrupted run" in err  # the shards the first sweep finished were not drawn again

    # 3. SIGTERM as the grid starts: results and report of what finished, marked incomplete.
    third = sweep("sigterm")
    third.wait_for(lambda: "[train] 4 cells: " in third.stderr())
    assert third.kill(signal.SIGTERM) == 128 + signal.SIGTERM
    err = third.stderr()
    trained = int(err.split("[train] 4 cells: ")[1].split()[0])
    assert trained >= 1
    run = Path(err.split("writing what finished to ")[1].split()[0])
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "incomplete" and state["interrupted_at_stage"] in ("train", "features")
    assert state["reason"].startswith("the sweep was stopped by SIGTERM during ")
    partial = json.loads((run / "results.json").read_text())
    assert sum(r["status"] == "ok" for r in partial) >= trained
    assert all(r["error"].startswith("not finished: the sweep was stopped by SIGTERM") for r in partial
               if r["status"] != "ok")
    assert (run / "report.md").exists()

    # 4. SIGKILL while extracting features.
    fourth = sweep("features")
    fourth.wait_for(lambda: "[features] 5 sets" in fourth.stderr())
    assert fourth.kill() == -signal.SIGKILL

    # 5. The sweep that finishes: the numbers of the uninterrupted one.
    code, records = sweep("final").finish()
    assert code == 0
    assert same_results(records) == same_results(expected)
    stages = sorted((r.status, r.stage or "") for r in list_runs(Store(str(store))))
    assert stages == sorted([("complete", ""), ("incomplete", "sample"), ("incomplete", "train"),
                             ("incomplete", state["interrupted_at_stage"]), ("incomplete", "features")])
    print(f"samplers of the SIGKILLed driver were gone {lingered:.1f} s after the kill")


def overwrite8(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(255 - b for b in data[len(data) // 2:len(data) // 2 + 8])
    path.write_bytes(bytes(data))


def test_every_kind_of_broken_artefact_is_repaired(reference: tuple[Path, Path, list[dict[str, Any]]],
                                                   tmp_path: Path) -> None:
    config, reference_store, expected = reference
    store = tmp_path / "store"
    shutil.copytree(reference_store, store, ignore=shutil.ignore_patterns("runs", "leases"))
    real = next(r for r in expected if r["mode"] == "real")
    cvae = [r for r in expected if r["generator"] == "cvae"]
    real_trial = sorted(p.parent for p in store.glob("trials/*/model.pt"))[0]
    cvae_trial = next(p.parent for p in store.glob("trials/*/result.json") if p.parent != real_trial)
    broken = [
        store / cvae[0]["sample_set"] / "shard-00001.npz",  # a sample shard: only it is drawn again
        store / cvae[1]["sample_set"] / "manifest.json",  # a manifest: the set is closed again
        store / "datasets" / real["dataset"] / "val" / "shard-00000.npz",  # a real split: materialised again
        next(store.glob("generators/cvae-*/model.pt")),  # the generator: trained again
        real_trial / "model.pt",  # the Real classifier: trained again
        cvae_trial / "result.json",  # a trial result: trained again
        sorted(store.glob("features/*.npz"))[0],  # a feature file: extracted again
    ]
    for path in broken:
        overwrite8(path)
    assert {p.path for p in verify_store(Store(str(store)))} == {str(p.relative_to(store)) for p in broken}

    sweep = Sweep(config, str(store), tmp_path / "logs")
    code, records = sweep.finish()
    assert code == 0
    assert same_results(records) == same_results(expected)
    repairs = [line for line in sweep.stderr().splitlines() if "[repair] " in line]  # some come from samplers
    for path in broken:
        assert sum(f"{path}:" in line for line in repairs) == 1, (path, repairs)
    assert verify_store(Store(str(store))) == []


def test_two_concurrent_sweeps_on_s3_share_the_work(reference: tuple[Path, Path, list[dict[str, Any]]],
                                                    tmp_path: Path) -> None:
    """Two people start the same sweep at once on the lab's Ray cluster (here a local one
    of two CPUs, whose workers reach the S3 server) into one S3 store."""
    from ray.cluster_utils import Cluster

    config, _, expected = reference
    with local_s3():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
        try:
            uri = f"s3://{BUCKET}/concurrent"
            sweeps = [Sweep(config, uri, tmp_path / name, address=cluster.address) for name in ("a", "b")]
            outcomes = [s.finish() for s in sweeps]
        finally:
            cluster.shutdown()
        err = [s.stderr() for s in sweeps]
        store = Store(uri)
        leases = {folder: store.list("leases", *folder.split("/")) for folder in
                  {r["sample_set"] for r in expected if r["sample_set"]}}
        leases.update({f"trials/{key}": store.list("leases", "trials", key) for key in store.list("leases", "trials")})
    for code, records in outcomes:
        assert code == 0 and same_results(records) == same_results(expected)
    sample_sets = {r["sample_set"] for r in expected if r["sample_set"]}
    made = [int(n) for e in err for n in re.findall(r"^\[sample\] making (\d+) sample sets", e, re.M)]
    assert sum(made) == len(sample_sets)  # each sample set drawn once, by one sweep or the other
    fitted = [int(n) for e in err for n, total in re.findall(r"^\[train\] (\d+)/(\d+) trials", e, re.M) if n == total]
    assert sum(fitted) == 4  # each of the four classifiers trained once, by one sweep or the other
    extracted = [int(n) for e in err for n in re.findall(r"^\[features\] extracting (\d+) sets", e, re.M)]
    assert sum(extracted) == 5  # each of the five sets' features extracted once, by one sweep or the other
    assert sum(key.startswith("trials/") for key in leases) == 4
    assert leases == {key: ["00000000.json"] for key in leases}  # each set and trial leased once, never taken over


@pytest.fixture
def quick_heartbeats(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray in this process, and heartbeats every second instead of every 30."""
    import ray

    from harness import sample
    from harness.classify import grid

    monkeypatch.setattr(sample, "HEARTBEAT_S", 1.0)
    monkeypatch.setattr(grid, "HEARTBEAT_S", 1.0)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def test_a_hanging_generator_and_a_long_trial_fail_their_own_cells(quick_heartbeats: None, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from harness.config_file import load_config
    from harness.sweep import run_sweep

    path = tmp_path / "hang.yaml"
    path.write_text(f"""
name: hang
store: {tmp_path / "store"}
dataset: {{kind: digits, val_fraction: 0.2, split_seed: 0}}
generators:
  - {{name: real, kind: real}}
  - {{name: stuck, kind: "tests.fault_plugins:HangingGenerator"}}
  - {{name: stripes, kind: "tests.plugin_generator:StripeGenerator"}}
classifier: {{recipe: digits-small, overrides: {{epochs: 1000}}, trial_timeout_s: 5}}
sampler: {{batch_timeout_s: 4}}
metrics: {{extractors: none}}
""")
    started = time.monotonic()
    run, records = run_sweep(load_config(path), source=str(path))
    err = capsys.readouterr().err
    by_generator = {r["generator"]: r for r in records}
    assert by_generator["stuck"]["error"] == (
        "SamplingTimeout: generator 'stuck': sample() of a batch of 256 did not return in 4s "
        "(sampler.batch_timeout_s = 4); its sample sets are left out")
    for name, label in (("real", "real seed 0"), ("stripes", "stripes seed 0")):
        assert by_generator[name]["error"] == (f"TrialTimeout: trial '{label}' was still training after 5s "
                                               f"(classifier.trial_timeout_s = 5); stopped")
    assert Store(str(tmp_path / "store")).exists(by_generator["stripes"]["sample_set"], "manifest.json")
    assert "[sample] 1/2 shards · " in err
    assert "· waiting for stuck seed 0 shard 0 (" in err  # the heartbeat while the stuck batch runs
    assert "[train] 0/2 trials · training " in err
    state = json.loads(Path(run, "run.json").read_text())
    assert state["status"] == "complete" and Path(run, "report.md").exists()
    assert time.monotonic() - started < 300
