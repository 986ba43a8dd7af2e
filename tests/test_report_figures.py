"""The report's figures, provenance and leaderboard, on synthetic records; pages opened in headless Chromium.

Synthetic sweep: Real, three generators (biggan, vqvae, cvae) over a truncation sweep, NAS ratios for two
of them; per-class accuracies built so the counts are known: at τ = 1 biggan matches or beats Real on every
5th class, vqvae on every 10th, and cvae never produces class 3 (0% there, the only class at 0%).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.report.figures import (
    best_and_worst_classes,
    class_counts,
    class_image_grid,
    figure_block,
    knob_curves,
    nas_curves,
    per_class_curves,
)
from harness.report.leaderboard import leaderboard, leaderboard_csv, leaderboard_html, leaderboard_markdown, spec_key
from harness.report.provenance import collect_provenance, git_commit, provenance_html, provenance_markdown
from tests.browser import render, require_chromium

GENERATORS = ("biggan", "vqvae", "cvae")
TRUNCATIONS = (0.2, 0.5, 1.0, 1.5, 2.0)
RATIOS = (0.5, 1.0, 2.0)
PROTOCOL = {"dataset": "digits", "test_split": "test", "recipe": "small-cnn", "recipe_settings": {"epochs": 5},
            "feature_extractors": ["inception"], "n_val": 500, "metrics_num_samples": 1000}


def real_accuracy(n: int) -> list[float]:
    return [0.95 - 0.05 * (i % 10) for i in range(n)]


def generator_accuracy(generator: str, n: int, truncation: float = 1.0) -> list[float]:
    """Per-class accuracy at τ; at τ = 1 the counts in the module docstring hold."""
    scale = min(1.0, 0.6 + 0.4 * truncation)
    out = []
    for i, real in enumerate(real_accuracy(n)):
        if generator == "biggan":
            acc = real + 0.02 if i % 5 == 0 else real - 0.2
        elif generator == "vqvae":
            acc = real if i % 10 == 9 else real - 0.1
        else:
            acc = 0.0 if i == 3 else real - 0.3
        out.append(min(1.0, acc * scale))
    return out


def record(generator: str, mode: str, seed: int, n: int, knobs: dict, ratio: float | None = None,
           **fields: object) -> dict:
    per_class = real_accuracy(n) if mode == "real" else generator_accuracy(generator, n, knobs.get("truncation", 1.0))
    if mode == "nas":
        per_class = [min(1.0, a + 0.3 - 0.05 * ratio) for a in real_accuracy(n)]
    top1 = float(np.mean(per_class)) + 0.004 * seed
    tau, offset = knobs.get("truncation", 1.0), len(generator) % 3
    return {"generator": generator, "kind": "real" if mode == "real" else "npz", "mode": mode, "knobs": knobs,
            "truncation_mode": "biggan", "augmentation_ratio": ratio, "seed": seed, "status": "ok", "error": None,
            "top1": top1, "top5": min(1.0, top1 + 0.2), "per_class_accuracy": per_class, "n_train": 5000,
            "is_mean": 10.0 / tau + offset if mode == "cas" else 9.0,
            "is_std": 0.3, "fd_inception": 5.0 + 3.0 / tau + offset if mode == "cas" else 1.0,
            "kid_inception_mean": 0.002, "precision_inception": 0.7, "recall_inception": 0.5,
            "sample_set": f"samples/{generator}", "params": {} if mode == "real" else {"path": f"{generator}.npz"},
            **PROTOCOL, **fields}


def sweep_records(n: int) -> list[dict]:
    records = [record("real", "real", s, n, {}) for s in (0, 1)]
    records += [record(g, "cas", s, n, {"truncation": t}) for g in GENERATORS for t in TRUNCATIONS for s in (0, 1)]
    records += [record(g, "nas", 0, n, {"truncation": 1.0}, r) for g in GENERATORS[:2] for r in RATIOS]
    return records


def class_images(classes: list[int], per_class: int, size: int, seed: int) -> dict[int, np.ndarray]:
    """Smooth class-coloured images with noise: compress like photographs rather than like pure noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size)[None, :, None] * np.linspace(0, 1, size)[None, None, :]
    out = {}
    for c in classes:
        colour = np.array([(37 * c) % 256, (91 * c) % 256, (173 * c) % 256], np.float64)[:, None, None]
        base = colour * (0.4 + 0.6 * ramp)
        noise = rng.normal(0, 12, (per_class, 3, size, size))
        out[c] = np.clip(base[None] + noise, 0, 255).astype(np.uint8)
    return out


def build_page(n: int, thumbnail_source: int) -> tuple[str, dict[str, dict[str, int]]]:
    """The report's figures for an n-class sweep on one self-contained page."""
    records = sweep_records(n)
    names = [f"class {i}" for i in range(n)]
    real = real_accuracy(n)
    per_class = {g: generator_accuracy(g, n) for g in GENERATORS}
    curves, counts = per_class_curves(real, per_class, names)
    blocks = [figure_block(knob_curves(records, "truncation"), "CAS, IS and FID against truncation"),
              figure_block(curves, "per-class accuracy"), figure_block(nas_curves(records), "NAS")]
    for g in GENERATORS:
        best, worst = best_and_worst_classes(real, per_class[g])
        reals, samples = (class_images(best + worst, 3, thumbnail_source, seed) for seed in (0, 1))
        grid = class_image_grid(reals, samples, names, best, worst, real, per_class[g], generator=g)
        blocks.append(figure_block(grid, f"{g}: best and worst classes"))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>figures</title></head><body>"
            + "".join(blocks) + "</body></html>")
    return page, counts


@pytest.fixture(scope="module")
def page_10(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    page, counts = build_page(10, 32)
    path = tmp_path_factory.mktemp("page10") / "figures.html"
    path.write_text(page)
    return path, counts


def test_per_class_counts_at_or_above_real_and_at_zero(page_10: tuple[Path, dict]) -> None:
    _, counts = page_10
    assert counts == {"biggan": {"at_or_above_real": 2, "at_zero": 0},
                      "vqvae": {"at_or_above_real": 1, "at_zero": 0},
                      "cvae": {"at_or_above_real": 0, "at_zero": 1}}
    assert class_counts([0.5, None, 0.2], [0.5, 0.0, None]) == {"at_or_above_real": 1, "at_zero": 1}
    with pytest.raises(ValueError, match="'cvae' has 2 entries; expected one per class \\(3\\)"):
        per_class_curves([0.1, 0.2, 0.3], {"cvae": [0.1, 0.2]}, ["a", "b", "c"])


def test_figures_name_their_axes_and_series() -> None:
    records = sweep_records(10)
    svg = knob_curves(records, "truncation")
    assert svg.startswith("<svg") and "<script" not in svg
    for text in ("CAS Top-1 (%)", "Inception Score", "FD (inception)", "lower is better", "truncation", "biggan",
                 "vqvae", "cvae", "Real", "CAS, IS and FID against truncation"):
        assert f">{text}<" in svg, text
    nas = nas_curves(records)
    assert nas == nas_curves(records)  # byte-identical on rebuild: no dates, fixed SVG ids
    for text in ("NAS Top-1 (%)", "NAS Top-5 (%)", "Real only", "biggan (truncation=1)", "vqvae (truncation=1)"):
        assert f">{text}<" in nas, text
    diffusion = [{"generator": "dit", "mode": "cas", "knobs": {"guidance_scale": g, "num_steps": s}, "top1": 0.1 * g,
                  "top1_ci": (0.1 * g - 0.01, 0.1 * g + 0.02)} for g in (1.0, 2.0, 4.0) for s in (25, 50)]
    svg = knob_curves(diffusion, "guidance_scale")
    assert ">dit (num_steps=25)<" in svg and ">dit (num_steps=50)<" in svg and ">not measured<" in svg


def test_worst_classes_include_the_class_a_generator_never_produces() -> None:
    real, cvae = real_accuracy(10), generator_accuracy("cvae", 10)
    best, worst = best_and_worst_classes(real, cvae, k=3)
    assert worst[0] == 3 and not set(best) & set(worst) and len(best) == 3
    names = [f"c{i}" for i in range(10)]
    big = class_images(list(range(10)), 3, 128, 0)
    tag = class_image_grid(big, big, names, best, worst, real, cvae, generator="cvae")
    png = base64.b64decode(re.fullmatch(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', tag)[1])
    width, height = Image.open(io.BytesIO(png)).size
    assert height <= 2 * 3 * 64 + 6 + 90 and width <= 6 * (64 + 2) + 18 + 68  # 128 px sources shown at 64 px
    with pytest.raises(ValueError, match=r"class 3 \(c3\) is shown but has no samples of cvae"):
        class_image_grid(big, {0: big[0]}, names, [0], [3], generator="cvae")


def test_figures_render_in_headless_chromium(page_10: tuple[Path, dict]) -> None:
    require_chromium()
    shown = render(page_10[0])
    assert shown.console_errors == []
    assert shown.broken_images == 0
    assert len(shown.figures) == 6
    assert [f.index for f in shown.figures if f.blank] == []


def test_browser_check_catches_console_errors_and_blank_figures(tmp_path: Path) -> None:
    """The checker itself: a script error and an empty figure must both be reported."""
    require_chromium()
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><body><figure class='figure'><svg width='300' height='200'></svg>"
                    "</figure><script>console.error('drawn wrong'); undefinedFunction();</script></body></html>")
    shown = render(page)
    assert any("drawn wrong" in e for e in shown.console_errors)
    assert any("undefinedFunction" in e for e in shown.console_errors)
    assert [f.blank for f in shown.figures] == [True]


def test_thousand_class_page_renders_under_five_megabytes(tmp_path: Path) -> None:
    page, counts = build_page(1000, 64)
    assert counts["biggan"] == {"at_or_above_real": 200, "at_zero": 0}
    assert counts["cvae"] == {"at_or_above_real": 0, "at_zero": 1}
    size = len(page.encode())
    assert size < 5 * 2**20, f"{size / 2**20:.2f} MB"
    path = tmp_path / "figures.html"
    path.write_text(page)
    require_chromium()
    shown = render(path)
    assert shown.console_errors == [] and len(shown.figures) == 6
    assert not any(f.blank for f in shown.figures)


def run(name: str, date: str, records: list[dict], status: str = "complete") -> dict:
    return {"run": name, "date": date, "status": status, "records": records, "image_shape": [1, 16, 16]}


def test_leaderboard_ranks_only_within_a_protocol_and_never_ranks_incomplete_runs() -> None:
    n = 10
    short = [r for r in sweep_records(n) if r["knobs"].get("truncation", 1.0) == 1.0]
    longer = [{**r, "recipe_settings": {"epochs": 30}, "top1": r["top1"] + 0.05} for r in short if r["mode"] != "nas"]
    half = [{**record("biggan", "cas", 7, n, {"truncation": 1.0}), "top1": 0.99}]
    board = leaderboard([run("runs/a", "2025-01-02T10:00:00", short),
                         run("runs/b", "2025-01-03T10:00:00", longer),
                         run("runs/c", "2025-01-04T10:00:00", half, status="incomplete")])
    cas = [t for t in board["tables"] if t["protocol"]["score"] == "CAS"]
    nas = [t for t in board["tables"] if t["protocol"]["score"] == "NAS"]
    assert len(cas) == 2 and len(nas) == 1
    assert [t["differs_in"] for t in cas] == [{"recipe_settings": {"epochs": 30}}, {"recipe_settings": {"epochs": 5}}]
    assert nas[0]["differs_in"] == {}
    assert board["incomplete"] == [{"run": "runs/c", "date": "2025-01-04T10:00:00", "records": 1}]

    table = cas[1]
    rows = {(r["generators"][0], r["mode"]): r for r in table["rows"]}
    assert rows[("real", "real")]["rank"] is None and table["rows"][0]["mode"] == "real"
    assert [r["generators"][0] for r in table["rows"][1:]] == ["vqvae", "biggan", "cvae"]
    assert [r["rank"] for r in table["rows"][1:]] == [1, 2, 3]
    assert rows[("cvae", "cas")]["classes_at_zero"] == 1 and rows[("biggan", "cas")]["classes_at_zero"] == 0
    assert rows[("biggan", "cas")]["seeds"] == 2  # the incomplete run's seed 7 is not pooled
    assert rows[("biggan", "cas")]["top1"] == pytest.approx(np.mean(generator_accuracy("biggan", n)) + 0.002)
    assert all(r.get("top1") != 0.99 for t in board["tables"] for r in t["rows"])

    md = leaderboard_markdown(board)
    assert md.count("Differs from the other CAS tables in: recipe_settings = epochs=") == 2
    assert "## Incomplete runs (not ranked)" in md and "| runs/c | 2025-01-04T10:00:00 | 1 |" in md
    page = leaderboard_html(board)
    assert page.count('<table class="ranking">') == 3 and "classes at 0%" in page and "<script" not in page
    assert page.count('class="best"') >= 3
    rows_csv = list(csv.DictReader(io.StringIO(leaderboard_csv(board))))
    ranked = [r for r in rows_csv if r["protocol"] != "incomplete"]
    assert {r["recipe_settings"] for r in ranked} == {"epochs=5", "epochs=30"}
    assert [r["runs"] for r in rows_csv if r["protocol"] == "incomplete"] == ["runs/c (2025-01-04T10:00:00)"]
    assert {r["classes_at_zero"] for r in ranked if r["generator"] == "cvae"} == {"1"}


def test_leaderboard_pools_runs_of_one_spec_and_keeps_newest_seed() -> None:
    a = record("big", "cas", 0, 10, {"truncation": 1.0}, params={"checkpoint": "x"})
    b = {**a, "generator": "biggan-deep", "top1": 0.5}
    c = {**a, "seed": 1, "top1": 0.7}
    other = {**a, "params": {"checkpoint": "y"}, "top1": 0.1}
    board = leaderboard([run("r1", "2025-01-01", [a]), run("r2", "2025-02-01", [b, c, other])])
    [table] = board["tables"]
    first, second = table["rows"]
    assert first["generators"] == ["big", "biggan-deep"] and first["seeds"] == 2
    assert first["top1"] == pytest.approx(0.6) and first["runs"] == [("r2", "2025-02-01")]
    assert second["top1"] == pytest.approx(0.1) and second["rank"] == 2
    assert spec_key("npz", {"b": 1, "a": 2}) == spec_key("npz", {"a": 2, "b": 1}) != spec_key("npz", {"a": 3})
    unknown = [{**a, "params": None}, {**a, "params": None, "generator": "other"}]
    assert len(leaderboard([run("r4", "2025-03-01", unknown)])["tables"][0]["rows"]) == 2
    with pytest.raises(ValueError, match="run 'r3': status 'running'; expected 'complete' or 'incomplete'"):
        leaderboard([{"run": "r3", "status": "running", "records": []}])


def test_provenance_names_versions_hardware_and_no_host(tmp_path: Path) -> None:
    import importlib.metadata

    prov = collect_provenance("dataset: {kind: digits}\n", {"samples/biggan": "3fa2c1"},
                              {"inception": "f" * 64, "classifier": None}, {"sample": 12.0, "train": 75.5},
                              seeds=[0, 1])
    assert prov["libraries"]["numpy"] == importlib.metadata.version("numpy")
    assert set(prov["libraries"]) >= {"torch", "torchvision", "ray", "numpy", "scipy", "matplotlib"}
    assert prov["hardware"]["cpu_count"] >= 1 and prov["hardware"]["gpu_count"] == len(prov["hardware"]["gpus"])
    kernels = torch.backends.cpu.get_cpu_capability()
    assert prov["hardware"]["cpu_kernels"] == kernels
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert (prov["harness"]["git"] or {}).get("commit") == (head or None)
    assert git_commit(tmp_path) is None
    host = socket.gethostname()
    assert len(host) < 4 or host not in json.dumps(prov)
    md = provenance_markdown(prov)
    assert f"({kernels} kernels)" in md
    assert "- **seeds**: 0, 1" in md and "| classifier | `not pinned` |" in md and "train 1m16s" in md
    assert "```yaml\ndataset: {kind: digits}\n```" in md
    page = provenance_html(prov)
    assert "<pre>dataset: {kind: digits}\n</pre>" in page and "3fa2c1" in page
