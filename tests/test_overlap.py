"""Sampling and training at once: trials start as their sample sets become whole."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.search import Searcher

from harness.classify.grid import CellsAsReady, TrialProgress
from harness.cli import main
from harness.sample import SetsReady
from tests.conftest import write_config


def test_sets_ready_says_ready_once_marked_and_failed_only_after_sampling_ended() -> None:
    ready = SetsReady()
    real_cell = SimpleNamespace(sample_sets=())
    nas_cell = SimpleNamespace(sample_sets=(SimpleNamespace(folder="samples/a"), SimpleNamespace(folder="samples/b")))
    assert ready.cell(real_cell) is True
    assert ready.state("samples/a") is None and ready.cell(nas_cell) is None
    ready.mark("samples/a")
    assert ready.state("samples/a") is True and ready.cell(nas_cell) is None  # b is still being drawn
    ready.end()
    assert ready.state("samples/b") is False and ready.cell(nas_cell) is False
    ready.mark("samples/b")  # made by a concurrent sweep, noticed late
    assert ready.cell(nas_cell) is True


def test_cells_as_ready_hands_out_ready_cells_in_grid_order_and_leaves_out_failed_ones(capsys) -> None:
    states: dict[str, bool | None] = {"real": True, "cvae": None, "cgan": None, "broken": None}
    progress = TrialProgress(len(states))
    cells = [SimpleNamespace(label=name) for name in states]
    searcher = CellsAsReady([(cell, {"name": cell.label}) for cell in cells], lambda cell: states[cell.label],
                            progress)
    assert searcher.suggest("t1") == {"cell": {"name": "real"}}
    assert searcher.suggest("t2") is None  # nothing ready: Tune asks again later
    states.update(cgan=True, cvae=True)
    assert searcher.suggest("t3") == {"cell": {"name": "cvae"}}
    assert searcher.suggest("t4") == {"cell": {"name": "cgan"}}
    assert searcher.suggest("t5") is None
    states["broken"] = False
    assert searcher.suggest("t6") == Searcher.FINISHED
    assert progress.progress.total == 3  # the left-out cell is not waited for
    assert "[train] broken: left out, its sample set was not made" in capsys.readouterr().err


CONFIG = """
name: overlap
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: slow, kind: "tests.fault_plugins:SlowGenerator", params: {seconds: 2.0}}
sampler: {batch_size: 128}
classifier: {recipe: digits-small, overrides: {epochs: 4, milestones: [3]}}
metrics: {extractors: none}
"""


@pytest.mark.slow
def test_the_real_cell_trains_while_a_slow_generator_samples(ray_local, tmp_path: Path, capsys) -> None:
    """1,437 samples in batches of 128 at 2 s a batch: about 24 s of sampling on one actor, the second CPU
    left to the Real cell, whose trial ends before sampling does."""
    config = write_config(tmp_path / "overlap.yaml", CONFIG)
    assert main(["sweep", str(config), "--store", str(tmp_path / "store")]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    real_done = next(i for i, line in enumerate(lines) if "real seed 0: top1" in line)
    sampled = next(i for i, line in enumerate(lines) if line.startswith("[sample] slow: prepared"))
    assert real_done < sampled, "\n".join(lines)
    run = Path(out.strip().splitlines()[-1])
    info = json.loads((run / "run.json").read_text())
    starts, seconds = info["stage_starts"], info["stage_seconds"]
    assert abs(starts["sample"] - starts["train"]) < 0.5
    assert 20 < seconds["sample"] < seconds["train"]
    assert starts["features"] >= starts["train"] + seconds["train"] - 0.5
    assert [r["status"] for r in json.loads((run / "results.json").read_text())] == ["ok", "ok"]
    table = err[err.index("stage "):]
    assert "the wall: stages that overlap ran at once" in table
