"""Sweeping sampling knobs other than truncation, end to end on a local Ray: a plugin that declares a guidance
scale on the digits, and a tiny diffusers DiT with IS/FD in Inception and DINOv2 feature space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import ray

from harness.cli import main
from harness.shards import ShardSet
from harness.store import Store
from tests.conftest import write_config
from tests.diffusion_support import save_tiny_dit

GUIDED = """
name: guided
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: guided, kind: "tests.plugin_guided:GuidedStripes", sweep: {guidance_scale: [1.0, 3.0]}}
classifier: {recipe: digits-small, overrides: {epochs: 2, milestones: [1]}}
"""


@pytest.mark.parametrize(("generator", "message"), [
    ('{name: stripes, kind: "tests.plugin_generator:StripeGenerator", sweep: {guidance_scale: [2.0]}}',
     "generators[1] (stripes).sweep: generator 'stripes' (tests.plugin_generator:StripeGenerator) has no knob "
     "'guidance_scale'; it takes truncation (number in [0.01, 10])"),
    ('{name: guided, kind: "tests.plugin_guided:GuidedStripes", sweep: {guidance_scale: [20.0]}}',
     "generator 'guided' knob guidance_scale: 20.0 lies outside [1, 10]"),
    ("{name: cvae, kind: cvae, sweep: {guidance_scale: [2.0]}}",
     "generator 'cvae' (cvae) has no knob 'guidance_scale'; it takes truncation"),
])
def test_an_undeclared_knob_exits_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    generator: str, message: str) -> None:
    assert not ray.is_initialized()
    text = GUIDED.replace('{name: guided, kind: "tests.plugin_guided:GuidedStripes", sweep: {guidance_scale: '
                          '[1.0, 3.0]}}', generator)
    config = write_config(tmp_path / "knob.yaml", text)
    assert main(["sweep", str(config), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {config}: ") and message in err
    assert not ray.is_initialized() and not (tmp_path / "store").exists()


@pytest.mark.slow
def test_a_plugin_guidance_scale_sweep_gives_per_scale_rows(ray_local, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "guided.yaml", GUIDED)
    assert main(["sweep", str(config), "--store", str(tmp_path / "store")]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    records = json.loads((run / "results.json").read_text())
    assert [(r["generator"], r["mode"], r["knobs"]) for r in records] == [
        ("real", "real", {}), ("guided", "cas", {"guidance_scale": 1.0}), ("guided", "cas", {"guidance_scale": 3.0})]
    weak, strong = records[1:]
    assert all(r["status"] == "ok" and r["feature_extractors"] == ["domain"] for r in records)
    assert weak["sample_set"] != strong["sample_set"] and weak["fd_domain"] != strong["fd_domain"]
    assert strong["top1"] >= weak["top1"] - 0.05  # plainer class patterns are no harder to learn
    summary = (run / "report.md").read_text().split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert summary.count("| guided | 1 | samples (CAS) |") == summary.count("| guided | 3 | samples (CAS) |") == 1


@pytest.fixture(scope="module")
def dit_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1,000-class RGB 16×16 dataset of ten train and ten test images (DiT's classes are ImageNet's
    1,000; ten of them hold images) and a tiny DiT swept over two guidance scales."""
    folder = tmp_path_factory.mktemp("dit")
    rng = np.random.default_rng(0)
    labels = np.linspace(0, 999, 10).astype(np.int64)
    for split in ("train", "test"):
        np.savez(folder / f"{split}.npz", rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8), labels)
    model = save_tiny_dit(folder / "tiny-dit", latent=8)
    return write_config(folder / "dit.yaml", f"""
name: dit
dataset: {{kind: npz, params: {{train: {folder / 'train.npz'}, test: {folder / 'test.npz'}}}}}
generators:
  - {{name: real, kind: real}}
  - name: tiny-dit
    kind: diffusers
    params: {{model: {model}, device: cpu}}
    sweep: {{guidance_scale: [1.0, 4.0], num_steps: [2]}}
classifier: {{recipe: digits-small, overrides: {{epochs: 1, milestones: []}}}}
sampler: {{num_actors: 1}}
metrics:
  extractors: [inception, dinov2]
  inception_weights: random
  dinov2_weights: random
  dinov2_architecture: {{depth: 1, embed_dim: 32, num_heads: 2}}
  num_samples: 10
  max_samples: 10
  batch_size: 10
  num_actors: 1
""")


@pytest.mark.slow
def test_a_diffusers_guidance_sweep_end_to_end(ray_local, dit_config: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    assert main(["sweep", str(dit_config), "--store", str(store)]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    records = json.loads((run / "results.json").read_text())
    assert [(r["generator"], r["knobs"]) for r in records] == [
        ("real", {}), ("tiny-dit", {"guidance_scale": 1.0, "num_steps": 2}),
        ("tiny-dit", {"guidance_scale": 4.0, "num_steps": 2})]
    for r in records:
        assert r["status"] == "ok" and "metrics_error" not in r
        assert r["feature_extractors"] == ["inception", "dinov2"] and r["is_extractor"] == "inception"
        assert r["extractor_names"] == {"inception": "fid-inception-v3-tf-2015-12-05", "dinov2": "dinov2-vitl14"}
        assert r["extractor_weights"] == {"inception": None, "dinov2": None}  # random weights claim no checkpoint
        assert r["metrics_num_samples"] == 10 and not r["metrics_below_num_samples"]
        assert all(np.isfinite(r[k]) for k in ("fd_inception", "fd_dinov2", "kid_dinov2_mean", "is_mean"))
    unguided, guided = records[1:]
    assert unguided["fd_dinov2"] != guided["fd_dinov2"] and unguided["fd_inception"] != guided["fd_inception"]
    report = (run / "report.md").read_text()
    assert "fid-inception-v3-tf-2015-12-05" in report and "dinov2-vitl14" in report

    def shards(root: Path) -> dict[str, list[str]]:
        s = Store(str(root))
        return {r["sample_set"]: [e["sha256"] for e in ShardSet(s, r["sample_set"]).manifest()["shards"]]
                for r in records[1:]}

    made = shards(store)
    assert len(made) == 2 and len(set(map(tuple, made.values()))) == 2  # the two scales: different images
    assert main(["sample", str(dit_config), "--store", str(tmp_path / "again")]) == 0
    assert shards(tmp_path / "again") == made  # the same seed draws the same images in a fresh store
