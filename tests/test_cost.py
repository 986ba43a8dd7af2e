"""``harness plan``: the arithmetic of cells, samples, bytes, steps and GPU-hours, without data or Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cost
from harness.cli import main
from harness.config import ConfigError
from harness.config_file import load_config
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = 1_281_167


def test_imagenet128_biggan_deep_plan_without_imagenet_or_ray(tmp_path: Path, capsys) -> None:
    import ray

    config = load_config(ROOT / "configs" / "imagenet128-biggan-deep.yaml", store=str(tmp_path))
    plan = cost.plan_cost(config, gpus=64)
    assert not Path(config.dataset.params["root"]).exists() and not ray.is_initialized()

    assert (plan.data.n_train, plan.data.n_val, plan.data.image_shape) == (IMAGENET, 50_000, (3, 128, 128))
    assert [c.mode for c in plan.cells].count("real") == 1
    assert [c.mode for c in plan.cells].count("cas") == 8 and [c.mode for c in plan.cells].count("nas") == 24
    assert plan.sample_sets == 8 and plan.images_to_sample == 8 * IMAGENET
    # 8 workers: each takes 1024 // 8 = 128 images a step, (n // 8) // 128 steps an epoch, 90 epochs
    expected_n = {"real": IMAGENET, "cas": IMAGENET, 0.25: IMAGENET + 320_292, 0.5: IMAGENET + 640_584,
                  1.0: 2 * IMAGENET}
    for c in plan.cells:
        n = expected_n[c.ratio if c.mode == "nas" else c.mode]
        assert c.n_train == n and c.steps_per_epoch == (n // 8) // 128 and c.steps == 90 * c.steps_per_epoch
    assert plan.cells[0].steps_per_epoch == 1251

    raw = 3 * 128 * 128
    assert plan.store_bytes["real data"] == pytest.approx(0.69 * raw * (IMAGENET + 50_000))
    assert plan.store_bytes["sample sets"] == pytest.approx(0.69 * raw * 8 * IMAGENET)

    # training at 224 px on A100s: 2,470 img/s per GPU; testing 50,000 images at three times that
    assert plan.train_size == 224 and plan.throughput.images_per_second == 2470
    gpu_s = [90 * c.steps_per_epoch * 1024 / 2470 + 50_000 / (3 * 2470) for c in plan.cells]
    assert plan.gpu_hours == pytest.approx(sum(gpu_s) / 3600)
    assert plan.trials_at_once == 8
    # 33 cells on 8 slots of 8 GPUs, longest first: the busiest slot holds 5 cells' time
    slots = [0.0] * 8
    for s in sorted(gpu_s, reverse=True):
        slots[slots.index(min(slots))] += s / 8
    assert plan.wall_hours == pytest.approx(max(slots) / 3600)
    assert sum(gpu_s) / 3600 / 64 < plan.wall_hours < 1.2 * sum(gpu_s) / 3600 / 64

    assert main(["plan", str(ROOT / "configs" / "imagenet128-biggan-deep.yaml"), "--store", str(tmp_path),
                 "--gpus", "64"]) == 0
    out = capsys.readouterr().out
    assert "33 cells: 1 real, 8 CAS, 24 NAS" in out and "10,249,336 images to sample" in out
    assert f"{plan.gpu_hours:,.1f} GPU-hours" in out and "on 64 GPUs (8 trials at once)" in out


def test_sizes_from_the_store_manifest(digits_store, tmp_path: Path) -> None:
    store, real = digits_store
    config = load_config(write_config(tmp_path / "d.yaml", """
name: d
dataset: {kind: digits}
generators: [{name: real, kind: real}, {name: cvae, kind: cvae, truncations: [0.5]}]
classifier: {recipe: digits-small, images_per_second: 1000}
augmentation_ratios: [0.5]
"""), store=store.root)
    plan = cost.plan_cost(config)
    manifest = real.train.manifest()
    assert plan.data.source.startswith("manifest") and plan.data.n_train == real.n_train == 1437
    assert plan.data.bytes_per_image == sum(s["bytes"] for s in manifest["shards"]) / 1437
    nas = next(c for c in plan.cells if c.mode == "nas")
    assert nas.n_train == 1437 + sum(round(0.5 * c) for c in manifest["counts"])  # per class, as the sweep does
    assert plan.throughput.source == "classifier.images_per_second" and plan.unit == "worker"
    assert plan.cells[0].train_gpu_s == pytest.approx(30 * (1437 // 64) * 64 / 1000)


def test_bench_result_hints_and_errors(tmp_path: Path) -> None:
    bench = tmp_path / "bench.txt"
    bench.write_text("| table |\n" + json.dumps({"model": "resnet50", "size": 128, "harness_img_s": 3000.0,
                                                 "device_name": "NVIDIA H100"}) + "\n")
    throughput = cost.read_bench_result(str(bench))
    config = load_config(ROOT / "configs" / "imagenet128-biggan-deep.yaml", store=str(tmp_path))
    plan = cost.plan_cost(config, bench=throughput)
    assert plan.throughput.images_per_second == pytest.approx(3000 * (128 / 224) ** 2)
    assert "NVIDIA H100" in plan.throughput.source and plan.gpus == 8

    folder = """
name: f
dataset: {kind: folder, params: {root: /nowhere, image_size: 64}%s}
generators: [{name: real, kind: real}]
classifier: {recipe: paper-imagenet, use_gpu: true}
"""
    hinted = cost.plan_cost(load_config(write_config(tmp_path / "h.yaml", folder % ", size: {train: 1000, val: 100}"),
                                        store=str(tmp_path)), accelerator="v100")
    assert (hinted.data.n_train, hinted.data.n_val, hinted.data.image_shape) == (1000, 100, (3, 64, 64))
    assert hinted.throughput.images_per_second == 1200
    unsized = write_config(tmp_path / "u.yaml", folder % "")
    with pytest.raises(ConfigError, match=r"u.yaml: dataset: cannot size the folder dataset .*give dataset.size"):
        cost.plan_cost(load_config(unsized, store=str(tmp_path)), str(unsized))
    with pytest.raises(ConfigError, match=r"dataset.size: unknown dataset 'imagenet21k'"):
        cost.plan_cost(load_config(write_config(tmp_path / "n.yaml", folder % ", size: imagenet21k"),
                                   store=str(tmp_path)))
    none = cost.plan_cost(load_config(write_config(tmp_path / "c.yaml", folder % ", size: imagenet"),
                                      store=str(tmp_path)), accelerator="tpu")
    assert none.gpu_hours is None and "no throughput figure for resnet50 at 224 px on tpu" in "\n".join(
        cost.summary(none))
    with pytest.raises(ConfigError, match="--throughput .*harness_img_s"):
        cost.read_bench_result(str(tmp_path / "h.yaml"))
