"""Generators: truncation, the built-in kinds, plugins, and the contract checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from harness.config import GeneratorConfig
from harness.generators import GeneratorError, build_generator, check_samples, to_uint8
from harness.generators.biggan import model_truncation
from harness.generators.truncation import truncated_normal


@pytest.mark.parametrize("tau", [0.2, 0.5, 1.0, 2.0])
def test_truncation_bounds_and_distribution(tau: float) -> None:
    z = truncated_normal((4000, 16), tau, torch.Generator().manual_seed(1), "resample")
    assert z.abs().max().item() <= 2 * tau
    bound = 2 * tau
    ks = stats.kstest(z.flatten().numpy(), stats.truncnorm(-bound, bound).cdf)
    assert ks.pvalue > 1e-3, ks
    # Each dimension is resampled on its own: dims stay uncorrelated.
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.1


def test_truncation_none_is_standard_normal_and_seeded() -> None:
    z = truncated_normal((20000,), None, torch.Generator().manual_seed(0), "resample")
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    a = truncated_normal((50, 4), 0.3, torch.Generator().manual_seed(7), "resample")
    b = truncated_normal((50, 4), 0.3, torch.Generator().manual_seed(7), "resample")
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="truncation must be > 0"):
        truncated_normal((2,), 0.0, torch.Generator(), "resample")


def test_biggan_truncation_lands_exactly_on_the_models_grid() -> None:
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    bn = BigGANBatchNorm(1, n_stats=51, conditional=False)
    bn.running_means = torch.arange(51, dtype=torch.float32).view(51, 1)
    bn.weight.data.fill_(1)
    bn.bias.data.zero_()
    picked = {}
    for k in range(1, 51):
        value = model_truncation(k / 50)
        assert 0 < value <= 1
        # With unit variance and zero input, the output is -running_mean: the grid index used.
        picked[k] = -bn(torch.zeros(1, 1, 1, 1), value).item() * math.sqrt(1 + bn.eps)
    assert picked == pytest.approx({k: float(k) for k in range(1, 51)}, abs=1e-4)
    assert model_truncation(1.5) == model_truncation(2.0) == model_truncation(1.0) == 1.0
    assert model_truncation(0.001) == model_truncation(0.02)
    assert model_truncation(0.429) == model_truncation(0.42)
    assert model_truncation(None) == 1.0


def _tiny_biggan(output_dim: int) -> torch.nn.Module:
    """A small BigGAN-deep of the package's own architecture, with random weights."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    upsample = {8: [True, False], 16: [True, True]}[output_dim]
    config = BigGANConfig(output_dim=output_dim, z_dim=8, class_embed_dim=8, channel_width=4, num_classes=10,
                          layers=[(upsample[0], 16, 8), (upsample[1], 8, 4), (False, 4, 2), (False, 2, 1)],
                          attention_layer_position=1)
    model = BigGAN(config)
    model.generator.bn.weight.data.fill_(1.0)  # the package leaves these two uninitialised
    model.generator.bn.bias.data.zero_()
    return model


def _tiny_biggan_folder(folder: Path, output_dim: int) -> None:
    """A BigGAN-deep checkpoint folder as the package publishes them, with random weights."""
    model = _tiny_biggan(output_dim)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.__dict__))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def test_biggan_deep_from_a_folder_with_random_weights(tmp_path: Path) -> None:
    from harness.config import DatasetConfig
    from harness.data import materialize
    from harness.store import Store

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        np.savez(tmp_path / f"{split}.npz", rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), np.arange(n) % 10)
    store = Store(str(tmp_path / "store"))
    real = materialize(DatasetConfig(kind="npz", params={"train": str(tmp_path / "train.npz"),
                                                         "test": str(tmp_path / "test.npz")}), store)
    assert real.image_shape == (3, 16, 16) and real.num_classes == 10
    _tiny_biggan_folder(tmp_path / "biggan", 16)
    spec = GeneratorConfig(name="big", kind="biggan-deep", params={"model": str(tmp_path / "biggan")},
                           truncations=[0.5])
    gen = build_generator(spec, real, store)
    labels = torch.tensor([1, 2, 3])
    images = check_samples("big", gen.sample(labels, 0.5, torch.Generator().manual_seed(0)), labels, real.image_shape)
    assert images.dtype == torch.uint8 and images.float().std() > 0

    _tiny_biggan_folder(tmp_path / "small", 8)
    small = GeneratorConfig(name="small", kind="biggan-deep", params={"model": str(tmp_path / "small")})
    with pytest.raises(GeneratorError, match="'small': makes 10 classes at 8×8, but the dataset has 10 classes at 16"):
        build_generator(small, real, store)


def test_biggan_deep_samples() -> None:
    from harness.generators.biggan import BigGANDeep

    gen = BigGANDeep(_tiny_biggan(16), torch.device("cpu"), "scaled")
    labels = torch.tensor([0, 3, 9, 9])
    for tau in (0.2, 1.0, 1.5):  # τ > 1 reaches the model as 1.0, z is still drawn within ±2τ
        images = gen.sample(labels, tau, torch.Generator().manual_seed(0))
        assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8
    again = gen.sample(labels, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(again, gen.sample(labels, 0.2, torch.Generator().manual_seed(0)))


def test_biggan_missing_model_is_named(tmp_path: Path, digits_store) -> None:
    store, real = digits_store
    spec = GeneratorConfig(name="big", kind="biggan-deep", params={"model": str(tmp_path / "nothing")})
    with pytest.raises(GeneratorError, match="generator 'big': cannot load BigGAN model"):
        build_generator(spec, real, store)


def test_npz_pool_draws_each_class_without_repeats(tmp_path: Path, digits_store) -> None:
    store, real = digits_store
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    images = rng.integers(0, 256, (200, 8, 8, 1), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(200)  # a tag to find each image again
    np.savez(tmp_path / "s.npz", images, labels)
    gen = build_generator(GeneratorConfig(name="s", kind="npz", params={"path": str(tmp_path / "s.npz")}), real, store)
    want = torch.tensor([3] * 20 + [7] * 5)
    out = check_samples("s", gen.sample(want, None, torch.Generator().manual_seed(0)), want, real.image_shape)
    tags = out[:, 0, 0, 0].long()
    assert torch.equal(torch.from_numpy(labels)[tags], want)
    assert len(set(tags[:20].tolist())) == 20  # all 20 images of class 3, none twice


def test_npz_errors_name_generator_and_file(tmp_path: Path, digits_store) -> None:
    store, real = digits_store
    np.savez(tmp_path / "few.npz", np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 2, 3]))
    spec = GeneratorConfig(name="few", kind="npz", params={"path": str(tmp_path / "few.npz")})
    with pytest.raises(GeneratorError, match=r"'few': holds no samples of classes \[4, 5, 6, 7, 8, 9\]"):
        build_generator(spec, real, store)
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 8, 8, 1), np.uint8))
    spec = GeneratorConfig(name="bad", kind="npz", params={"path": str(tmp_path / "bad.npz")})
    with pytest.raises(Exception, match=r"generators \(bad\).params.path: .*bad.npz lacks \['arr_0', 'arr_1'\]"):
        build_generator(spec, real, store)


def test_folder_generator(tmp_path: Path, digits_store) -> None:
    from PIL import Image

    store, real = digits_store
    for c in real.class_names:
        (tmp_path / c).mkdir()
        Image.fromarray(np.full((16, 16), 10 * int(c), np.uint8)).save(tmp_path / c / "a.png")
    gen = build_generator(GeneratorConfig(name="f", kind="folder", params={"root": str(tmp_path)}), real, store)
    out = gen.sample(torch.tensor([2, 5]), None, torch.Generator())
    assert out.shape == (2, 1, 8, 8)
    assert out[0].float().mean().item() == pytest.approx(20, abs=1)
    assert out[1].float().mean().item() == pytest.approx(50, abs=1)


def test_plugin_generator_and_contract_checks(digits_store) -> None:
    store, real = digits_store
    spec = GeneratorConfig(name="stripes", kind="tests.plugin_generator:StripeGenerator")
    gen = build_generator(spec, real, store)
    labels = torch.tensor([0, 5])
    out = check_samples("stripes", gen.sample(labels, None, torch.Generator()), labels, real.image_shape)
    assert out[1, 0, 5].tolist() == [255] * 8
    broken = build_generator(GeneratorConfig(name="b", kind=spec.kind, params={"broken": True}), real, store)
    with pytest.raises(GeneratorError, match="generator 'b': sample\\(\\) returned dtype torch.float32"):
        check_samples("b", broken.sample(labels, None, torch.Generator()), labels, real.image_shape)
    with pytest.raises(GeneratorError, match=r"'x': sample\(\) returned shape \(2, 1, 8, 8\) for 3 labels"):
        check_samples("x", out, torch.tensor([0, 1, 2]), real.image_shape)
    nan = torch.full((2, 1, 8, 8), float("nan"))
    with pytest.raises(GeneratorError, match="contains NaN"):
        check_samples("n", nan, labels, real.image_shape)
    with pytest.raises(GeneratorError, match="'wrong': makes 10 classes at 16×16"):
        build_generator(GeneratorConfig(name="wrong", kind=spec.kind, params={"image_size": 16}), real, store)
    with pytest.raises(GeneratorError, match="'m': cannot import 'no_such_module'"):
        build_generator(GeneratorConfig(name="m", kind="no_such_module:G"), real, store)


def test_to_uint8() -> None:
    assert to_uint8(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist() == [0, 128, 255, 255]


def test_embedded_generators_train_once_and_are_cached(digits_store) -> None:
    store, real = digits_store
    spec = GeneratorConfig(name="v", kind="cvae", params={"steps": 50})
    first = build_generator(spec, real, store)
    cached = [p for p in store.list("generators") if p.startswith("cvae-")]
    assert len(cached) == 1
    again = build_generator(spec, real, store)
    labels = torch.arange(10)
    a = first.sample(labels, 0.5, torch.Generator().manual_seed(3))
    b = again.sample(labels, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (10, 1, 8, 8)
    with pytest.raises(ValueError, match=r"unknown params \['epochs'\] for generator kind 'cvae'"):
        GeneratorConfig(name="v", kind="cvae", params={"epochs": 3})
