"""Two sweeps of different protocols written into one store at once, by two processes, then merged into the
store's leaderboard; a run that stopped halfway is listed apart, not ranked. On a local folder and on an
s3:// store served by a local S3 server."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.shards import ShardSet
from harness.store import Store
from tests.sweep_support import BUCKET, local_s3

ROOT = Path(__file__).resolve().parents[1]
LAB = """
name: {name}
dataset: {{kind: digits}}
generators:
  - {{name: real, kind: real}}
  - {{name: cvae, kind: cvae, params: {{steps: 300}}, truncations: [1.0]}}
classifier: {{recipe: digits-small, overrides: {{epochs: {epochs}, milestones: [1]}}}}
metrics: {{feature_extractor: none}}
"""
HALFWAY = "runs/lab-c-20260101-000000"


def sweep_at_once(store: str, tmp_path: Path) -> list[str]:
    """`harness sweep` of lab-a (2 epochs) and lab-b (3 epochs), started together into ``store``; their run
    folders."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TRAIN_V2_ENABLED": "1"}
    env.pop("RAY_ADDRESS", None)
    procs = []
    for name, epochs in (("lab-a", 2), ("lab-b", 3)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(LAB.format(name=name, epochs=epochs))
        procs.append(subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(config), "--store", store],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    runs = []
    for p in procs:
        out, err = p.communicate()
        assert p.returncode == 0, err[-3000:]
        runs.append(out.strip().splitlines()[-1])
    return runs


def check_runs_and_leaderboard(store: Store, runs: list[str], capsys: pytest.CaptureFixture) -> None:
    for run in runs:
        folder = run[len(store.root) + 1:]
        assert store.read_json(folder, "run.json")["status"] == "complete"
        for record in store.read_json(folder, "results.json"):
            assert record["status"] == "ok"
            for shard_set in filter(None, [record["sample_set"], f"datasets/{record['dataset']}/train"]):
                shards = ShardSet(store, shard_set)
                for entry in shards.manifest()["shards"]:
                    shards.read_shard(entry)  # every shard whole: its SHA-256 matches the manifest
    store.write_json({"run": store.path(HALFWAY), "status": "incomplete", "date": "2026-01-01T00:00:00+00:00"},
                     HALFWAY, "run.json")

    assert main(["leaderboard", store.root]) == 0
    assert capsys.readouterr().out.split() == [store.path(n) for n in
                                               ("leaderboard.html", "leaderboard.md", "leaderboard.csv")]
    rows = list(csv.DictReader(io.StringIO(store.read_bytes("leaderboard.csv").decode())))
    ranked = [r for r in rows if r["protocol"] != "incomplete"]
    assert {r["runs"].split(" (")[0].rsplit("/", 1)[-1][:5] for r in ranked} == {"lab-a", "lab-b"}
    settings = {r["recipe_settings"] for r in ranked}
    assert len(settings) == 2 and any("epochs=2" in s for s in settings) and any("epochs=3" in s for s in settings)
    for protocol in {r["protocol"] for r in ranked}:  # each protocol table: Real and cvae, from one run
        assert sorted((r["generator"], r["mode"]) for r in ranked if r["protocol"] == protocol) == [
            ("cvae", "cas"), ("real", "real")]
        assert len({r["runs"] for r in ranked if r["protocol"] == protocol}) == 1
    assert [r["runs"] for r in rows if r["protocol"] == "incomplete"] == [
        f"{store.path(HALFWAY)} (2026-01-01T00:00:00+00:00)"]
    md = store.read_bytes("leaderboard.md").decode()
    assert md.count("Differs from the other CAS tables in: recipe_settings = ") == 2
    assert "## Incomplete runs (not ranked)" in md and "lab-c-20260101-000000" in md


@pytest.mark.slow
def test_two_sweeps_at_once_into_a_local_store(tmp_path: Path, capsys) -> None:
    store = Store.open(str(tmp_path / "store"))
    check_runs_and_leaderboard(store, sweep_at_once(store.root, tmp_path), capsys)


@pytest.mark.slow
def test_two_sweeps_at_once_into_an_s3_store(tmp_path: Path, capsys) -> None:
    with local_s3():
        store = Store.open(f"s3://{BUCKET}/lab")
        check_runs_and_leaderboard(store, sweep_at_once(store.root, tmp_path), capsys)
