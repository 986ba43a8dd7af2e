"""A stored run made by the test (no Ray): records with predictions files, a sample set and the digits'
test split in a store; `harness report` and `harness compare` read it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.cli import main
from harness.config import DatasetConfig
from harness.data import materialize
from harness.report.aggregate import summarize
from harness.report.compare import CellError, parse_cell, select_cell
from harness.report.predictions import encode_predictions
from harness.report.records import RECORD_VERSION, Record
from harness.report.runs import load_run, shard_labels, split_run
from harness.shards import ShardSet
from harness.store import Store


def predictions_with_errors(labels: np.ndarray, wrong: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Top-5 predictions that are right exactly where ``wrong`` is False (the true class first), else never."""
    top5 = (labels[:, None] + np.arange(5)[None]) % num_classes
    top5[wrong] = (labels[wrong, None] + 1 + np.arange(5)[None]) % num_classes
    return top5


def record(generator: str, mode: str, knobs: dict, seed: int, labels: np.ndarray, pred: np.ndarray,
           path: str | None, sample_set: str | None) -> dict:
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (labels, pred[:, 0]), 1)
    per_class = (np.diag(confusion) / confusion.sum(1)).tolist()
    return Record(generator=generator, kind="real" if mode == "real" else "npz", mode=mode, knobs=knobs,
                  truncation_mode="scaled" if knobs else None, augmentation_ratio=None, seed=seed,
                  recipe="digits-small", recipe_settings={"epochs": 4}, sample_set=sample_set, dataset="digits",
                  status="ok", top1=float((pred[:, 0] == labels).mean()),
                  top5=float((pred == labels[:, None]).any(1).mean()), per_class_accuracy=per_class,
                  confusion=confusion.tolist(), n_train=1437, n_val=len(labels), params={"path": "g.npz"},
                  predictions=path, metrics={"fid": 10.0 + knobs.get("truncation", 0), "is_mean": 3.0,
                                             "is_std": 0.1, "feature_extractor": "test-extractor"}).to_dict()


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A run with Real, generator g at τ 0.5 (two seeds, ~6 points below Real) and τ 1.0 (two seeds, as good as
    τ 0.5 but for one image), each cell's predictions kept in the store."""
    root = tmp_path_factory.mktemp("store")
    store = Store(str(root))
    real = materialize(DatasetConfig(kind="digits"), store)
    labels = shard_labels(store, real.val.folder)
    images, train_labels = real.train.read()
    samples = ShardSet(store, "samples/g")
    samples.write_manifest({}, [samples.write_shard(0, images, train_labels, 10)], 10, real.image_shape)
    rng = np.random.default_rng(0)
    n = len(labels)
    base = rng.random(n) < 0.10
    cells = [("real", "real", {}, 0, rng.random(n) < 0.02)]
    for seed in (0, 1):
        cells.append(("g", "cas", {"truncation": 0.5}, seed, base | (rng.random(n) < 0.01)))
        one_more = base.copy()
        one_more[np.flatnonzero(~base)[seed]] = True
        cells.append(("g", "cas", {"truncation": 1.0}, seed, one_more))
    records = []
    for generator, mode, knobs, seed, wrong in cells:
        pred = predictions_with_errors(labels, wrong)
        path = f"trials/{generator}-{knobs.get('truncation', 0)}-{seed}/predictions.npz"
        store.write_bytes(encode_predictions(pred), path)
        sample_set = None if mode == "real" else "samples/g"
        records.append(record(generator, mode, knobs, seed, labels, pred, path, sample_set))
    info = {"run": store.path("runs/test-1"), "name": "test", "status": "complete", "date": "2026-01-01T00:00:00+00:00",
            "dataset": real.key, "class_names": list(real.class_names), "image_shape": list(real.image_shape),
            "n_train": real.n_train, "train_folder": real.train.folder, "test_folder": real.val.folder,
            "test_split": "val", "n_val": n, "metrics_max_samples": 1000, "set_sizes": {"samples/g": real.n_train}}
    store.write_json(records, "runs/test-1", "results.json")
    store.write_json(info, "runs/test-1", "run.json")
    return root / "runs" / "test-1", {"labels": labels, "records": records}


def test_report_rebuilds_from_the_stored_records_and_marks_rows_by_paired_bootstrap(stored_run, capsys) -> None:
    run, _ = stored_run
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(str(run / "report.html")) and "τ" in out
    md = (run / "report.md").read_text()
    # τ = 1.0 and τ = 0.5 differ by about one image in 360: cannot be told apart from the best row
    lines = {line.split(" | ")[2]: line for line in md.splitlines() if line.startswith("| ★") or line.startswith("| ≈")}
    assert set(lines) == {"0.5", "1"}, md
    assert "paired bootstrap" in md and "overlapping intervals" not in md.split("## CAS, IS")[0]
    for section in ("## Summary", "## CAS, IS and FID against the sampling knobs", "## Per-class accuracy against Real",
                    "## Best and worst classes", "## Provenance"):
        assert section in md
    assert "## Naive Augmentation Score" not in md  # no NAS cells, no NAS part
    page = (run / "report.html").read_text()
    assert page.count('<figure class="figure">') == 3  # knob curves, per-class curves, one image grid


def test_compare_two_cells_of_one_run(stored_run, capsys) -> None:
    run, data = stored_run
    code = main(["compare", f"{run}#g,truncation=0.5,seed=0", "#g,truncation=1.0,seed=0", "--resamples", "2000"])
    out, err = capsys.readouterr()
    assert code == 0, err
    a, b = (next(r for r in data["records"] if r["knobs"].get("truncation") == t and r["seed"] == 0)
            for t in (0.5, 1.0))
    diff = 100 * (a["top1"] - b["top1"])
    assert f"a − b: {diff:+.2f} points" in out
    correct_a = np.asarray(a["confusion"]).trace()
    assert f"Top-1 {100 * correct_a / len(data['labels']):.2f}%" in out
    # τ = 1.0 seed 0 is wrong on base + one image; τ = 0.5 seed 0 on base + its extra misses: McNemar, exact
    line = next(x for x in out.splitlines() if x.startswith("McNemar"))
    only_a = int(line.split("; ")[1].split(" ")[0])
    only_b = int(line.split(", ")[-1].split(" ")[0])
    expected = min(1.0, 2 * stats.binom.cdf(min(only_a, only_b), only_a + only_b, 0.5))
    assert f"p = {expected:.4g}" in line
    assert "per class (first seed of each)" in out and "Benjamini–Hochberg" in out


def test_compare_pools_seeds_and_names_what_is_wrong(stored_run, capsys) -> None:
    run, _ = stored_run
    assert main(["compare", f"{run}#real", f"{run}#g,truncation=0.5", "--resamples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "seeds a/b: 1/2" in out and "McNemar" not in out
    assert main(["compare", f"{run}#g", f"{run}#real"]) == 2
    assert "matches several cells (g τ=0.5 (CAS), g τ=1 (CAS)); name the knobs" in capsys.readouterr().err
    assert main(["compare", f"{run}#h", f"{run}#real"]) == 2
    assert "no generator 'h'; the run has real, g" in capsys.readouterr().err


def test_cell_names_and_selection(stored_run) -> None:
    _, data = stored_run
    assert parse_cell("s3://b/runs/x-1#cvae,truncation=0.5,seed=1") == (
        "s3://b/runs/x-1", {"generator": "cvae", "truncation": "0.5", "seed": "1"})
    chosen = select_cell(data["records"], {"generator": "g", "truncation": "1"}, "run")
    assert [r["seed"] for r in chosen] == [0, 1]
    with pytest.raises(CellError, match="g has no knob 'guidance_scale'; its knobs: truncation"):
        select_cell(data["records"], {"generator": "g", "guidance_scale": "2"}, "run")
    with pytest.raises(CellError, match="expected RUN#GENERATOR"):
        parse_cell("runs/x")


def test_rows_carry_intervals_the_way_the_caption_says(stored_run) -> None:
    run, data = stored_run
    records, info = load_run(*split_run(str(run)))
    rows = summarize(records, info)
    real, half = rows[0], rows[1]
    assert real["top1_interval"] == "wilson" and real["top1_ci"][0] < real["top1"] < real["top1_ci"][1]
    seeds = [r["top1"] for r in records if r["knobs"].get("truncation") == 0.5]
    t = stats.t.ppf(0.975, 1) * np.std(seeds, ddof=1) / np.sqrt(2)
    assert half["top1_interval"] == "t" and half["top1_ci"] == pytest.approx((np.mean(seeds) - t, np.mean(seeds) + t))
    assert half["metric_n"] == 1437 and real["metric_n"] == len(data["labels"])


def test_records_of_another_version_are_refused(tmp_path: Path, stored_run) -> None:
    run, data = stored_run
    folder = tmp_path / "runs" / "old-1"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text((run / "run.json").read_text())
    (folder / "results.json").write_text(json.dumps([{**data["records"][0], "record_version": RECORD_VERSION - 1}]))
    assert main(["report", str(folder)]) == 2
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_run(*split_run(str(tmp_path / "runs" / "missing")))
    with pytest.raises(ValueError, match="expected a run folder"):
        split_run(str(tmp_path))
