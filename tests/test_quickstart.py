"""The whole quickstart at reduced size on a local Ray cluster, through the `harness` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import write_config

CONFIG = """
name: mini
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: cvae, kind: cvae, params: {steps: 300}, truncations: [0.2, 1.0]}
  - {name: stripes, kind: "tests.plugin_generator:StripeGenerator", params: {broken: true}}
classifier: {recipe: digits-small, overrides: {epochs: 4, milestones: [3]}}
augmentation_ratios: [0.5]
"""


@pytest.mark.slow
def test_reduced_quickstart_end_to_end_and_resume(ray_local, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "mini.yaml", CONFIG)
    store = tmp_path / "store"
    code = main(["sweep", str(config), "--store", str(store)])
    out, err = capsys.readouterr()
    assert code == 1  # the broken plugin's cells failed; everything else is kept
    run = Path(out.strip().splitlines()[-1])
    assert run.parent == store / "runs" and run.name.startswith("mini-")
    assert "[sample]" in err and "[train]" in err and "trials" in err

    records = json.loads((run / "results.json").read_text())
    assert [(r["generator"], r["mode"], r["truncation"], r["augmentation_ratio"]) for r in records] == [
        ("real", "real", None, None),
        ("cvae", "cas", 0.2, None), ("cvae", "nas", 0.2, 0.5),
        ("cvae", "cas", 1.0, None), ("cvae", "nas", 1.0, 0.5),
        ("stripes", "cas", None, None), ("stripes", "nas", None, 0.5)]
    ok = {(r["generator"], r["mode"], r["truncation"]): r for r in records if r["status"] == "ok"}
    assert len(ok) == 5
    for r in ok.values():
        assert {"generator", "truncation", "seed", "top1", "top5", "per_class_accuracy", "n_train", "recipe"} <= set(r)
        assert 0 <= r["top1"] <= r["top5"] <= 1 and len(r["per_class_accuracy"]) == 10 and r["recipe"] == "digits-small"
    assert ok[("real", "real", None)]["top1"] > 0.9
    for r in ok.values():  # domain features for 8×8 digits: the real-data classifier's penultimate layer
        assert r["feature_extractors"] == ["domain"] and r["is_extractor"] == "domain"
        assert r["extractor_names"]["domain"].startswith("domain-resnet-tiny-")
        assert "x / 127.5 - 1" in r["preprocessing"]["domain"] and len(r["extractor_weights"]["domain"]) == 64
        assert r["fd_domain"] >= 0 and r["is_mean"] >= 1 and 0 <= r["precision_domain"] <= 1
        assert 0 <= r["recall_domain"] <= 1 and r["kid_domain_std"] >= 0
        # IS/FD on every row of these sets (fewer than the 50,000 of FID-50K), KID/P-R on up to 10,000
        assert r["metrics_below_num_samples"] and r["metrics_num_samples_requested"] == 50_000
    assert ok[("real", "real", None)]["metrics_num_samples"] == 360 == ok[("real", "real", None)]["n_val"]
    assert ok[("cvae", "cas", 1.0)]["metrics_num_samples"] == 1437
    # NAS cells share their sample set's metrics with the CAS cell.
    assert ok[("cvae", "nas", 0.2)]["fd_domain"] == ok[("cvae", "cas", 0.2)]["fd_domain"]
    assert ok[("cvae", "cas", 1.0)]["n_train"] == 1437
    counts = (142, 146, 142, 146, 145, 145, 145, 143, 139, 144)  # the digits train split's histogram
    assert ok[("cvae", "nas", 1.0)]["n_train"] == 1437 + sum(round(0.5 * c) for c in counts)  # real + 0.5·|real|
    broken = [r for r in records if r["generator"] == "stripes"]
    assert all(r["status"] == "failed" and "generator 'stripes'" in r["error"] and "dtype" in r["error"]
               for r in broken)

    rows = list(csv.DictReader((run / "results.csv").open()))
    assert len(rows) == 7 and rows[0]["generator"] == "real" and "acc_9" in rows[0]
    assert float(rows[0]["top1"]) == pytest.approx(records[0]["top1"])
    for name in ("report.md", "report.html", "config.yaml", "run.json"):
        assert (run / name).stat().st_size > 0
    report = (run / "report.md").read_text()
    assert "| cvae | 0.2 | samples (CAS) |" in report and "domain-resnet-tiny-" in report
    assert "τ" in out and "FD (domain)" in out  # the CAS table is the only thing on stdout besides the run folder
    assert "[train" not in out and "Configuration for experiment" not in out

    # A second run finds every sample set and every trained cell in the store.
    code = main(["sweep", str(config), "--store", str(store)])
    out, err = capsys.readouterr()
    assert "[sample] 3 sample sets: 2 complete in the store, 1 to make" in err  # the broken one is retried
    assert "[train] 7 cells: 5 already trained in the store, 2 to train" in err
    assert err.count("left out, its sample set was not made") == 2  # the broken one failed again
    assert "[features] 4 sets" in err and "4 cached in the store, 0 to extract" in err
    again = json.loads((Path(out.strip().splitlines()[-1]) / "results.json").read_text())
    assert [r.get("top1") for r in again] == [r.get("top1") for r in records]
