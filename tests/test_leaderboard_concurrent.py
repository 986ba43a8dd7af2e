"""Two sweeps of different protocols written into one store at once, by two processes, then merged into the
store's leaderboard; a run that stopped halfway is listed apart, not ranked."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.shards import ShardSet
from harness.store import Store

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


def sweep_at_once(store: str, tmp_path: Path) -> list[subprocess.CompletedProcess]:
    """`harness sweep` of lab-a (2 epochs) and lab-b (3 epochs) started together into ``store``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TRAIN_V2_ENABLED": "1"}
    env.pop("RAY_ADDRESS", None)
    procs = []
    for name, epochs in (("lab-a", 2), ("lab-b", 3)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(LAB.format(name=name, epochs=epochs))
        procs.append(subprocess.Popen([sys.executable, "-m", "harness.cli", "sweep", str(config), "--store", store],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [subprocess.CompletedProcess(p.args, p.wait(), *p.communicate()) for p in procs]


@pytest.mark.slow
def test_two_sweeps_at_once_into_one_store_then_the_leaderboard(tmp_path: Path, capsys) -> None:
    store_dir = tmp_path / "store"
    done = sweep_at_once(str(store_dir), tmp_path)
    for result in done:
        assert result.returncode == 0, result.stderr[-3000:]
    store = Store(str(store_dir))
    runs = [Path(r.stdout.strip().splitlines()[-1]) for r in done]
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "complete"
        for record in json.loads((run / "results.json").read_text()):
            assert record["status"] == "ok"
            for folder in filter(None, [record["sample_set"], f"datasets/{record['dataset']}/train"]):
                shards = ShardSet(store, folder)
                for entry in shards.manifest()["shards"]:
                    shards.read_shard(entry)  # every shard whole: its SHA-256 matches the manifest
    halfway = store_dir / "runs" / "lab-c-20260101-000000"
    halfway.mkdir()
    (halfway / "run.json").write_text(json.dumps({"run": str(halfway), "status": "incomplete",
                                                  "date": "2026-01-01T00:00:00+00:00"}))

    assert main(["leaderboard", str(store_dir)]) == 0
    assert capsys.readouterr().out.split() == [str(store_dir / n) for n in
                                               ("leaderboard.html", "leaderboard.md", "leaderboard.csv")]
    rows = list(csv.DictReader((store_dir / "leaderboard.csv").open()))
    ranked = [r for r in rows if r["protocol"] != "incomplete"]
    assert {r["runs"].split(" (")[0].rsplit("/", 1)[-1][:5] for r in ranked} == {"lab-a", "lab-b"}
    settings = {r["recipe_settings"] for r in ranked}
    assert len(settings) == 2 and any("epochs=2" in s for s in settings) and any("epochs=3" in s for s in settings)
    for protocol in {r["protocol"] for r in ranked}:  # each protocol table: Real and cvae from one run
        assert sorted((r["generator"], r["mode"]) for r in ranked if r["protocol"] == protocol) == [
            ("cvae", "cas"), ("real", "real")]
    assert [r["runs"] for r in rows if r["protocol"] == "incomplete"] == [f"{halfway} (2026-01-01T00:00:00+00:00)"]
    md = (store_dir / "leaderboard.md").read_text()
    assert md.count("Differs from the other CAS tables in: ") == 2 and "recipe_settings" in md
    assert "## Incomplete runs (not ranked)" in md and "lab-c-20260101-000000" in md
