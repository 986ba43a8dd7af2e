"""The classifier: per-image augmentation, recipes, training from streamed shards with its predictions
kept, resuming from a checkpoint after SIGKILL, and a 2-worker DDP run on CPUs."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import layout
from harness.classify.augment import random_crop_flip
from harness.classify.evaluate import accuracy_summary
from harness.classify.models import build_model
from harness.classify.recipes import recipe_record, resolve_recipe
from harness.classify.train import TrainTask, train_classifier, train_loop
from harness.config import ConfigError
from harness.plan import TrainSource
from harness.report.predictions import correct_from_predictions, decode_predictions
from harness.store import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training in this process on one thread, as a trial holding one CPU does (two threads on a
    busy 2-core machine spin against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_augmentation_is_per_image() -> None:
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    out = random_crop_flip(images, pad=1, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 8  # one random draw per batch would give a single variant
    # Every output is a shifted (and maybe mirrored) window of the zero-padded input.
    padded = torch.nn.functional.pad(images[0], (1, 1, 1, 1))
    windows = {tuple(w.flatten().tolist()) for dy in range(3) for dx in range(3)
               for w in (padded[:, dy:dy + 4, dx:dx + 4], padded[:, dy:dy + 4, dx:dx + 4].flip(2))}
    assert distinct <= windows
    assert torch.equal(random_crop_flip(images, pad=0, flip=False), images)


def test_accuracy_summary() -> None:
    confusion = np.array([[8, 2, 0], [0, 5, 5], [0, 0, 0]])
    summary = accuracy_summary(confusion, top5_hits=20)
    assert summary["top1"] == pytest.approx(13 / 20) and summary["top5"] == 1.0
    assert summary["per_class_accuracy"] == [0.8, 0.5, None] and summary["n_val"] == 20


@pytest.mark.parametrize("name", ["resnet-tiny", "resnet56", "resnet50"])
def test_models_give_logits_and_features(name: str) -> None:
    model = build_model(name, 3, 7).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert model.body(x).shape[0] == 2 and model.head.out_features == 7


@pytest.mark.slow
def test_two_worker_cpu_torchtrainer(ray_local, digits_store, tmp_path) -> None:
    store, real = digits_store
    recipe = resolve_recipe("digits-small", {"epochs": 6, "milestones": [5]})
    task = TrainTask(label="ddp", store=store.root, sources=(TrainSource(real.train.folder),),
                     val_folder=real.val.folder, num_classes=10, image_shape=real.image_shape, recipe=recipe, seed=0,
                     folder="trials/ddp")
    result = train_classifier(task, num_workers=2, cpus_per_worker=1, storage_path=str(tmp_path))
    assert result["world_size"] == 2
    assert result["n_train"] == real.n_train and result["n_val"] == 360
    assert result["steps_per_epoch"] == (real.n_train // 2) // 32
    assert result["top1"] > 0.85 and result["top5"] >= result["top1"]
    assert len(result["per_class_accuracy"]) == 10
    assert np.array(result["confusion"]).sum() == 360
    pred = decode_predictions(store.read_bytes(result["predictions"]))  # the two workers' parts, in test order
    assert correct_from_predictions(pred, _test_labels(real), 1).mean() == pytest.approx(result["top1"])


def test_recipe_fields_and_overrides() -> None:
    imagenet = resolve_recipe("paper-imagenet", {})
    assert imagenet.input_size == 224 and not imagenet.decay_bn_and_bias and imagenet.checkpoint_every == 5
    assert resolve_recipe("paper-imagenet", {"input_size": 128}).input_size == 128
    assert resolve_recipe("paper-imagenet", {"input_size": None}).input_size is None
    assert resolve_recipe("digits-small", {"compile": True, "checkpoint_every": 2}).compile
    with pytest.raises(ConfigError, match=r"overrides.input_size: expected a whole number of pixels ≥ 1 or null, "
                                          r"got 'big'"):
        resolve_recipe("paper-imagenet", {"input_size": "big"})
    with pytest.raises(ConfigError, match=r"overrides.checkpoint_every: expected epochs ≥ 0"):
        resolve_recipe("paper-cifar", {"checkpoint_every": -1})
    # checkpoints change no number: a trial's key does not depend on them
    assert "checkpoint_every" not in recipe_record(imagenet) and recipe_record(imagenet)["input_size"] == 224


def _task(store: Store, real, folder: str | None, epochs: int, checkpoint_every: int, **fields) -> TrainTask:
    recipe = resolve_recipe("digits-small", {"epochs": epochs, "milestones": [epochs - 1],
                                             "checkpoint_every": checkpoint_every})
    return TrainTask(label="t", store=store.root, sources=(TrainSource(real.train.folder),),
                     val_folder=real.val.folder, num_classes=10, image_shape=real.image_shape, recipe=recipe, seed=3,
                     folder=folder, **fields)


def _test_labels(real) -> np.ndarray:
    """The test split's labels in the order its manifest lists the shards."""
    return real.val.read()[1]


def test_streamed_nas_training_keeps_predictions_in_test_order(digits_store) -> None:
    store, real = digits_store
    task = _task(store, real, "trials/nas", epochs=2, checkpoint_every=0)
    task = TrainTask(**{**task.__dict__, "sources": (TrainSource(real.train.folder), TrainSource(real.val.folder,
                                                                                                 0.5))})
    result = train_loop(task)
    n_half_val = sum(int(round(0.5 * c)) for c in real.val.manifest()["counts"])
    assert result["n_train"] == real.n_train + n_half_val and result["world_size"] == 1
    assert result["steps_per_epoch"] == (real.n_train + n_half_val) // 64
    assert result["predictions"] == "trials/nas/predictions.npz"
    pred = decode_predictions(store.read_bytes(result["predictions"]))
    labels = _test_labels(real)
    assert pred.shape == (len(labels), 5) == (result["n_val"], 5)
    assert correct_from_predictions(pred, labels, 1).mean() == pytest.approx(result["top1"])
    assert correct_from_predictions(pred, labels, 5).mean() == pytest.approx(result["top5"])
    assert not store.exists("trials/nas", layout.TRIAL_CHECKPOINT)


def _train_in_subprocess(task: TrainTask, tmp_path: Path) -> subprocess.Popen:
    (tmp_path / "task.pkl").write_bytes(pickle.dumps(task))
    code = ("import pickle, sys; from harness.classify.train import train_loop; "
            f"train_loop(pickle.loads(open({str(tmp_path / 'task.pkl')!r}, 'rb').read()))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_result(digits_store, tmp_path: Path, capsys) -> None:
    """4 epochs, a checkpoint every 2: killed during epoch 3, the rerun resumes after epoch 2 and ends
    where a run without checkpoints ends, to the last bit of the model."""
    store, real = digits_store
    reference = train_loop(_task(store, real, "trials/plain", 4, 0, save_model_to="trials/plain/model.pt"))

    task = _task(store, real, "trials/killed", 4, 2, save_model_to="trials/killed/model.pt")
    proc = _train_in_subprocess(task, tmp_path)
    deadline = time.monotonic() + 120
    while not store.exists("trials/killed", layout.TRIAL_CHECKPOINT) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(store.path("trials/killed", layout.TRIAL_CHECKPOINT), weights_only=True)["epoch"] == 2
    assert not store.exists("trials/killed", layout.TRIAL_PREDICTIONS)

    resumed = train_loop(task)
    assert "resuming after epoch 2 from its checkpoint" in capsys.readouterr().err
    same = ("top1", "top5", "per_class_accuracy", "confusion", "n_train", "n_val", "steps_per_epoch")
    assert {k: resumed[k] for k in same} == {k: reference[k] for k in same}
    assert store.read_bytes(resumed["predictions"]) == store.read_bytes(reference["predictions"])
    models = [torch.load(store.path(r["model"]), weights_only=True) for r in (reference, resumed)]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
    final = torch.load(store.path("trials/killed", layout.TRIAL_CHECKPOINT), weights_only=True)
    assert final["epoch"] == 4 and final["resumes"] == [2]


def test_a_corrupt_checkpoint_is_trained_anew(digits_store, capsys) -> None:
    store, real = digits_store
    store.write_bytes(b"not a checkpoint", "trials/corrupt", layout.TRIAL_CHECKPOINT)
    result = train_loop(_task(store, real, "trials/corrupt", 1, 1))
    err = capsys.readouterr().err
    assert "trials/corrupt/checkpoint.pt is unusable" in err and "training from epoch 0" in err
    assert result["top1"] > 0.3
    assert torch.load(store.path("trials/corrupt", layout.TRIAL_CHECKPOINT), weights_only=True)["epoch"] == 1
