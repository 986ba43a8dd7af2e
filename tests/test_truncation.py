"""The two truncation conventions: BigGAN's ``scaled`` and the footnote's ``resample``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from harness.generators.truncation import truncated_normal, truncation_std
from harness.knobs import TRUNCATION_MODES


def _reference(mode: str, tau: float) -> stats.rv_continuous:
    """scipy's truncated normal for each convention."""
    if mode == "scaled":
        return stats.truncnorm(-2, 2, scale=tau)
    return stats.truncnorm(-2 * tau, 2 * tau)


def _draw(mode: str, tau: float, seed: int = 0, n: int = 100_000) -> torch.Tensor:
    return truncated_normal((n, 4), tau, torch.Generator().manual_seed(seed), mode)


def test_modes_are_named() -> None:
    assert TRUNCATION_MODES == ("scaled", "resample")
    with pytest.raises(ValueError, match=r"truncation mode must be one of \('scaled', 'resample'\), got 'clip'"):
        truncated_normal((2,), 1.0, torch.Generator(), "clip")
    with pytest.raises(ValueError, match="truncation must be > 0"):
        truncated_normal((2,), -1.0, torch.Generator(), "scaled")


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
def test_analytic_std_matches_scipy(mode: str) -> None:
    for tau in (0.1, 0.5, 1.0, 1.5, 2.0, 3.0):
        assert truncation_std(mode, tau) == pytest.approx(_reference(mode, tau).std(), rel=1e-12)
    assert truncation_std(mode, None) == 1.0
    assert truncation_std("scaled", 1.0) == pytest.approx(0.8796, abs=1e-4)


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
@pytest.mark.parametrize("tau", [0.5, 1.5, 2.0])
def test_empirical_std_and_distribution(mode: str, tau: float) -> None:
    z = _draw(mode, tau)
    assert z.abs().max().item() <= 2 * tau
    per_dim_std = z.double().std(dim=0)
    assert torch.allclose(per_dim_std, torch.full((4,), truncation_std(mode, tau), dtype=torch.double), rtol=0.01)
    ks = stats.kstest(z[:, 0].numpy(), _reference(mode, tau).cdf)
    assert ks.pvalue > 1e-3, ks
    if mode == "scaled":
        assert per_dim_std.mean().item() == pytest.approx(0.8796 * tau, rel=0.01)


def test_resample_makes_tau_1_5_and_2_0_nearly_the_same_and_scaled_does_not() -> None:
    grid = np.linspace(-4, 4, 2001)
    resample_gap = np.abs(_reference("resample", 1.5).cdf(grid) - _reference("resample", 2.0).cdf(grid)).max()
    scaled_gap = np.abs(_reference("scaled", 1.5).cdf(grid) - _reference("scaled", 2.0).cdf(grid)).max()
    assert resample_gap < 0.002 and scaled_gap > 0.07
    # Share of dimensions the resample rule touches: 0.27% at τ = 1.5, 0.006% at τ = 2.0.
    assert 2 * stats.norm.sf(3.0) == pytest.approx(0.0027, abs=1e-4)
    assert 2 * stats.norm.sf(4.0) == pytest.approx(0.00006, abs=1e-5)

    assert truncation_std("resample", 2.0) / truncation_std("resample", 1.5) < 1.015
    assert truncation_std("scaled", 2.0) / truncation_std("scaled", 1.5) == pytest.approx(4 / 3)
    resample = stats.ks_2samp(_draw("resample", 1.5, seed=1)[:, 0], _draw("resample", 2.0, seed=2)[:, 0])
    scaled = stats.ks_2samp(_draw("scaled", 1.5, seed=1)[:, 0], _draw("scaled", 2.0, seed=2)[:, 0])
    assert resample.statistic < 0.01 and scaled.statistic > 0.05 and scaled.pvalue < 1e-100


def test_scaled_is_bigans_own_sampler() -> None:
    from pytorch_pretrained_biggan import truncated_noise_sample

    for tau in (0.4, 1.5):
        theirs = truncated_noise_sample(batch_size=5000, dim_z=8, truncation=tau, seed=0)
        ours = _draw("scaled", tau, n=10_000)
        assert stats.ks_2samp(ours.flatten().numpy(), theirs.flatten()).pvalue > 1e-3


@pytest.mark.parametrize("mode", TRUNCATION_MODES)
def test_seeded_and_untruncated(mode: str) -> None:
    a = truncated_normal((50, 4), 0.3, torch.Generator().manual_seed(7), mode)
    assert torch.equal(a, truncated_normal((50, 4), 0.3, torch.Generator().manual_seed(7), mode))
    z = truncated_normal((20000,), None, torch.Generator().manual_seed(0), mode)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3


def test_generator_kinds_default_modes() -> None:
    """Every latent kind draws z BigGAN's way (scaled) unless its config says resample."""
    from harness.config import GeneratorConfig
    from harness.generators import embedded
    from harness.generators.embedded import ConditionalMLP, EmbeddedGenerator

    for kind, params in (("cvae", {}), ("cgan", {}), ("biggan-deep", {"model": "x"})):
        assert GeneratorConfig(name="g", kind=kind, params=params).truncation_mode == "scaled"
        chosen = GeneratorConfig(name="g", kind=kind, params=params, truncation_mode="resample")
        assert chosen.truncation_mode == "resample"
    torch.manual_seed(0)
    decoder = ConditionalMLP(3, 2, 8, 4, torch.nn.ReLU)
    labels = torch.tensor([0, 1, 1])
    images = {}
    for mode in TRUNCATION_MODES:
        images[mode] = EmbeddedGenerator(decoder, 3, (1, 2, 2), mode).sample(labels, 0.5,
                                                                            torch.Generator().manual_seed(3))
        z = truncated_normal((3, 3), 0.5, torch.Generator().manual_seed(3), mode)
        with torch.no_grad():
            assert torch.equal(images[mode], embedded.to_uint8(torch.tanh(decoder(z, labels)).view(3, 1, 2, 2)))
    assert not torch.equal(images["scaled"], images["resample"])


def test_biggan_tau_1_5_and_2_0_differ_only_when_scaled() -> None:
    from harness.generators.biggan import BigGANDeep
    from tests.test_generators import _tiny_biggan

    model = _tiny_biggan(16)
    labels = torch.tensor([0, 3, 9, 9])
    same = {}
    for mode in TRUNCATION_MODES:
        gen = BigGANDeep(model, torch.device("cpu"), mode)
        a, b = (gen.sample(labels, tau, torch.Generator().manual_seed(0)) for tau in (1.5, 2.0))
        same[mode] = torch.equal(a, b)
    assert same == {"resample": True, "scaled": False}
