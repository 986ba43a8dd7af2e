"""The diffusers kind on a tiny randomly initialised DiT pipeline the test builds and saves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness.config import GeneratorConfig
from harness.generators import GeneratorError
from harness.generators.diffusion import KNOBS, DiffusersGenerator, build
from tests.diffusion_support import save_tiny_dit

LATENT = 4  # latent side; the two-block VAE doubles it
IMAGE = 2 * LATENT


@dataclass
class FakeReal:
    num_classes: int = 1000
    image_shape: tuple[int, int, int] = (3, IMAGE, IMAGE)


@pytest.fixture(scope="module")
def tiny_dit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_dit(tmp_path_factory.mktemp("tiny-dit"), LATENT)


def spec(folder: Path, **params: object) -> GeneratorConfig:
    return GeneratorConfig(name="tiny-dit", kind="diffusers", params={"model": str(folder), **params})


@pytest.fixture(scope="module")
def generator(tiny_dit: Path) -> DiffusersGenerator:
    return build(spec(tiny_dit, device="cpu"), FakeReal(), None)


def sample(gen: DiffusersGenerator, seed: int, **knobs: float) -> torch.Tensor:
    labels = torch.tensor([0, 1, 2, 999])
    return gen.sample(labels, None, torch.Generator().manual_seed(seed), num_steps=3, **knobs)


def test_declares_guidance_and_steps(generator: DiffusersGenerator) -> None:
    assert [k.name for k in generator.knobs] == ["guidance_scale", "num_steps"]
    assert KNOBS[1].integer and (KNOBS[0].low, KNOBS[0].high) == (1.0, 20.0)
    assert (generator.num_classes, generator.image_size) == (1000, IMAGE)


def test_shapes_dtype_and_determinism_per_seed(generator: DiffusersGenerator) -> None:
    images = sample(generator, 7, guidance_scale=2.0)
    assert images.shape == (4, 3, IMAGE, IMAGE) and images.dtype == torch.uint8 and images.device.type == "cpu"
    assert int(images.max()) > int(images.min())
    assert torch.equal(images, sample(generator, 7, guidance_scale=2.0))
    assert not torch.equal(images, sample(generator, 8, guidance_scale=2.0))


def test_two_guidance_scales_give_different_images(generator: DiffusersGenerator) -> None:
    unguided, guided = sample(generator, 7, guidance_scale=1.0), sample(generator, 7, guidance_scale=4.0)
    assert (unguided.int() - guided.int()).abs().float().mean() > 1.0


def test_truncation_is_refused(generator: DiffusersGenerator) -> None:
    with pytest.raises(GeneratorError, match="tiny-dit.*truncation"):
        generator.sample(torch.tensor([0]), 0.5, torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("real", "message"), [
    (FakeReal(num_classes=10), "1000 classes .* dataset has 10 classes"),
    (FakeReal(image_shape=(3, 32, 32)), f"{IMAGE}×{IMAGE} .* 32×32"),
])
def test_wrong_classes_or_size_name_the_generator(tiny_dit: Path, real: FakeReal, message: str) -> None:
    with pytest.raises(GeneratorError, match=f"generator 'tiny-dit': .*{message}"):
        build(spec(tiny_dit, device="cpu"), real, None)


@pytest.mark.parametrize(("params", "message"), [
    ({"dtype": "float16", "device": "cpu"}, "float16 needs a GPU"),
    ({"dtype": "float64"}, "params.dtype is 'float64'"),
])
def test_bad_params_name_the_generator(tiny_dit: Path, params: dict, message: str) -> None:
    with pytest.raises(GeneratorError, match=f"generator 'tiny-dit': .*{message}"):
        build(spec(tiny_dit, **params), FakeReal(), None)


def test_unknown_params_are_a_config_error(tiny_dit: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown params \['steps'\] for generator kind 'diffusers'"):
        spec(tiny_dit, steps=3)


def test_missing_model_folder_names_the_generator(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="generator 'tiny-dit': cannot load diffusers pipeline"):
        build(spec(tmp_path / "absent", device="cpu"), FakeReal(), None)


@pytest.mark.parametrize(("document", "section"), [("docs/GENERATORS.md", "## A complete plugin"),
                                                  ("README.md", "### Sampling knobs")])
def test_the_documented_plugin_runs(document: str, section: str) -> None:
    text = (Path(__file__).parents[1] / document).read_text()
    code = text.split(section)[1].split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(code, document, "exec"), namespace)
    gen = namespace["GuidedColours"](num_classes=10, image_size=8)
    assert [k.name for k in gen.knobs] == ["guidance_scale", "temperature"]
    labels = torch.arange(10)
    weak, strong = (gen.sample(labels, None, torch.Generator().manual_seed(0), guidance_scale=g) for g in (1.0, 3.0))
    assert weak.shape == (10, 3, 8, 8) and weak.dtype == torch.uint8
    assert torch.equal(weak, gen.sample(labels, None, torch.Generator().manual_seed(0)))
    assert (strong.float() - 127.5).abs().mean() > (weak.float() - 127.5).abs().mean()
