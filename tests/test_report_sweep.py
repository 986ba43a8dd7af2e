"""The report of a real sweep: the reduced quickstart plus a generator that never produces class 3, run once on
a local Ray and read by every test here (its report, files, rebuild and leaderboard)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest

from harness.cli import main
from tests.browser import render, require_chromium
from tests.conftest import write_config
from tests.test_quickstart import CONFIG

NO_THREE = '  - {name: nothree, kind: "tests.plugin_missing_class:MissingClassGenerator"}\n'
REPORT_CONFIG = CONFIG.replace("name: mini", "name: report").replace("classifier:", NO_THREE + "classifier:", 1)
VIEWS = {"results.csv", "per_class.csv", "report.md", "report.html"}


@pytest.fixture(scope="module")
def swept(ray_local, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One sweep: real, cvae at τ 0.2 and 1.0, the broken stripes plugin, nothree; NAS at r = 0.5."""
    root = tmp_path_factory.mktemp("report-sweep")
    config = write_config(root / "report.yaml", REPORT_CONFIG)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["sweep", str(config), "--store", str(root / "store")])
    assert code == 1, err.getvalue()[-3000:]  # the broken plugin's cells fail; everything else is kept
    run = Path(out.getvalue().strip().splitlines()[-1])
    return {"run": run, "store": root / "store", "stdout": out.getvalue(), "stderr": err.getvalue(),
            "records": json.loads((run / "results.json").read_text())}


def summary_table(markdown: str) -> list[dict[str, str]]:
    """The report.md summary table as dicts by column header."""
    part = markdown.split("## Summary", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    return [dict(zip(headers, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


@pytest.mark.slow
def test_run_folder_holds_a_complete_run_with_its_provenance_and_stage_times(swept: dict) -> None:
    info = json.loads((swept["run"] / "run.json").read_text())
    assert info["status"] == "complete" and info["finished"] >= info["date"]
    assert set(info["stage_seconds"]) == {"prepare", "sample", "train", "features", "report"}
    prov = info["provenance"]
    assert prov["seeds"] == [0] and "nothree" in prov["config"] and prov["libraries"]["torch"]
    assert prov["store_keys"]["dataset"] == info["dataset"]
    assert {k.split(" ")[0] for k in prov["store_keys"]} == {"dataset", "samples", "trial"}
    [(extractor, checksum)] = prov["weights_sha256"].items()
    assert extractor.startswith("domain-") and re.fullmatch("[0-9a-f]{64}", checksum)
    for stage in ("prepare", "sample", "train", "features", "report"):
        assert re.search(rf"^{stage}\s+\S+\s+\S+\s+\d+%$", swept["stderr"], re.M), stage  # starts, time, share
    assert all(r["params"] is not None for r in swept["records"])
    assert next(r for r in swept["records"] if r["generator"] == "cvae")["params"]["steps"] == 300


@pytest.mark.slow
def test_run_json_says_how_long_each_generator_took_to_prepare_and_how_fast_each_set_was_drawn(swept: dict) -> None:
    from harness.shards import ShardSet
    from harness.store import Store

    sampling = json.loads((swept["run"] / "run.json").read_text())["sampling"]
    assert {"cvae", "nothree"} <= set(sampling["generator_prepare_seconds"])
    assert sampling["generator_prepare_seconds"]["cvae"] > 0.1  # trained here, for 300 steps
    drawn = {r["sample_set"] for r in swept["records"] if r["status"] == "ok" and r["sample_set"]}
    assert drawn and drawn <= set(sampling["sample_sets"])
    store = Store(str(swept["store"]))
    for folder, made in sampling["sample_sets"].items():
        assert made["images"] == ShardSet(store, folder).manifest()["n"] and made["actor_seconds"] > 0
        assert made["images_per_second_per_actor"] == pytest.approx(made["images"] / made["actor_seconds"], rel=0.05)
    assert re.search(r"^\[sample\] cvae: prepared in \d+s; \d+ sets, [\d,]+ images at [\d,]+ images/s per actor$",
                     swept["stderr"], re.M)


@pytest.mark.slow
def test_report_has_six_parts_and_renders_in_headless_chromium(swept: dict) -> None:
    page = (swept["run"] / "report.html").read_text()
    for part in ("summary", "knobs", "per-class", "classes", "nas", "provenance"):
        assert f'<section id="{part}">' in page, part
    assert "<script" not in page and not re.search(r'(src|href)="(?!data:|#)', page)  # one file, nothing fetched
    md = (swept["run"] / "report.md").read_text()
    assert "val split (360 images)" in md and "scaled" in md and "Wilson" in md and "Spearman" in md
    require_chromium()
    shown = render(swept["run"] / "report.html")
    assert shown.console_errors == [] and shown.broken_images == 0
    # knob curves, per-class curves, two image grids (cvae, nothree), NAS curves
    assert len(shown.figures) == 5 and [f.index for f in shown.figures if f.blank] == []


@pytest.mark.slow
def test_results_csv_json_report_and_terminal_agree(swept: dict) -> None:
    records = swept["records"]
    rows = list(csv.DictReader((swept["run"] / "results.csv").open()))
    table = summary_table((swept["run"] / "report.md").read_text())
    assert len(rows) == len(records) == len(table) == 9  # one seed: one summary row per cell
    for record, row, line in zip(records, rows, table, strict=True):
        assert (row["generator"], row["mode"], line["generator"]) == (record["generator"], record["mode"],
                                                                       record["generator"])
        assert row["truncation"] == ("" if record["truncation"] is None else str(record["truncation"]))
        assert line["τ"] == ("–" if record["truncation"] is None else f"{record['truncation']:g}")
        if record["status"] != "ok":
            assert row["top1"] == "" and line["Top-1 (%) [95% interval]"].startswith("failed: ")
            continue
        assert float(row["top1"]) == record["top1"] and float(row["acc_3"]) == record["per_class_accuracy"][3]
        assert line["Top-1 (%) [95% interval]"].split(" [")[0] == f"{100 * record['top1']:.2f}"
        assert line["Top-5 (%)"].split(" [")[0] == f"{100 * record['top5']:.2f}"
        assert line["FD (domain)"] == f"{record['fd_domain']:.2f}"  # Fréchet distance in the domain features
        assert line["IS ± std"] == f"{record['is_mean']:.2f} ± {record['is_std']:.2f}"
        assert line["KID×10³ (domain) ± std"] == (f"{1000 * record['kid_domain_mean']:.2f} ± "
                                                  f"{1000 * record['kid_domain_std']:.2f}")
        assert f"{100 * record['top1']:.2f} [" in swept["stdout"]


@pytest.mark.slow
def test_a_class_never_produced_is_at_zero_everywhere(swept: dict, tmp_path: Path) -> None:
    nothree = next(r for r in swept["records"] if r["generator"] == "nothree" and r["mode"] == "cas")
    assert nothree["per_class_accuracy"][3] == 0.0
    zeros = sum(1 for a in nothree["per_class_accuracy"] if a == 0)
    md = (swept["run"] / "report.md").read_text()
    grid = next(line for line in md.splitlines() if line.startswith("**nothree (CAS)**"))
    assert "worst 3 (" in grid and "/ 0)" in grid.split("worst 3 (")[1].split(",")[0]
    assert re.search(rf"^\| nothree \| – \| samples \(CAS\) \| \d+ \| {zeros} \| 3 \(0\.0\)", md, re.M)
    page = (swept["run"] / "report.html").read_text()
    assert re.search(rf">nothree \(CAS\): \d+ ≥ Real, {zeros} at 0%<", page)  # the per-class figure's legend
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["leaderboard", str(swept["store"])]) == 0
    board = list(csv.DictReader((swept["store"] / "leaderboard.csv").open()))
    [row] = [r for r in board if r["generator"] == "nothree" and r["mode"] == "cas"]
    assert int(row["classes_at_zero"]) == zeros and float(row["top1"]) == nothree["top1"]
    assert "| classes at 0% |" in (swept["store"] / "leaderboard.md").read_text()


@pytest.mark.slow
def test_report_command_rebuilds_without_recomputing(swept: dict, capsys) -> None:
    def files() -> dict[str, int]:
        return {str(p.relative_to(swept["store"])): p.stat().st_mtime_ns for p in swept["store"].rglob("*")
                if p.is_file() and not (p.parent == swept["run"] and p.name in VIEWS)
                and not p.name.startswith("leaderboard.")}

    before = files()
    views = {name: (swept["run"] / name).read_text() for name in VIEWS}
    start = time.monotonic()
    assert main(["report", str(swept["run"])]) == 0
    seconds = time.monotonic() - start
    assert files() == before  # no trial, sample set, feature or record file written or touched
    for name, text in views.items():
        assert (swept["run"] / name).read_text() == text, name
    out = capsys.readouterr().out
    assert out.rstrip().endswith("report.html") and "nothree" in out
    print(f"harness report on the reduced quickstart: {seconds:.2f} s (pid {os.getpid()})")
