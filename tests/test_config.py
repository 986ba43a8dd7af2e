"""The sweep schema: every shipped config loads, and every kind of mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import plan
from harness.classify.recipes import resolve_recipe
from harness.config import ConfigError
from harness.config_file import load_config
from harness.registry import RECIPES
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parents[1]
BASE = """
name: t
dataset: {kind: digits}
generators:
  - {name: real, kind: real}
  - {name: g, kind: cvae, truncations: [0.5, 1.0]}
classifier: {recipe: digits-small}
"""


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    config = load_config(ROOT / "configs" / name)
    plan.check(config, name)


def test_quickstart_is_the_issue_grid() -> None:
    config = load_config(ROOT / "configs" / "quickstart.yaml")
    assert config.dataset.kind == "digits"
    kinds = {g.kind: g for g in config.generators}
    assert {"real", "cvae", "cgan"} <= set(kinds)
    for kind in ("cvae", "cgan"):
        assert kinds[kind].sweep == {"truncation": [0.2, 0.5, 1.0, 1.5, 2.0]}


def test_store_override(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.yaml", BASE), store="s3://bucket/x")
    assert config.store == "s3://bucket/x"


@pytest.mark.parametrize(("edit", "expected"), [
    (BASE + "colour: blue\n", ["colour: unknown field", "'blue'"]),
    (BASE.replace("{kind: digits}", "{kind: digits, val_fraction: 1.5}"),
     ["dataset.val_fraction", "less than 1", "1.5"]),
    (BASE.replace("{kind: digits}", "{kind: imagenet-tfds}"),
     ["dataset.kind", "expected one of digits, mnist", "imagenet-tfds"]),
    (BASE.replace("truncations: [0.5, 1.0]", "truncations: [0, 1.0]"),
     ["generators[1] (g): generator 'g' knob truncation: 0.0 lies outside [0.01, 10]"]),
    (BASE.replace("truncations: [0.5, 1.0]", "truncations: fast"), ["generators[1] (g).truncations", "'fast'"]),
    (BASE.replace("{recipe: digits-small}", "{recipe: digits-small, num_workers: -1}"),
     ["classifier.num_workers", "greater than or equal to 0", "-1"]),
    (BASE.replace("{recipe: digits-small}", "{recipe: resnet}"),
     ["classifier.recipe", "expected one of digits-small, paper-cifar, paper-imagenet", "'resnet'"]),
    (BASE + "augmentation_ratios: [0.5, 12.0]\n", ["augmentation_ratios", "(0, 10]", "12.0"]),
    (BASE + "seeds: [1, 1]\n", ["seeds must be unique"]),
    (BASE.replace("{name: g,", "{name: real,"), ["generator names must be unique", "real"]),
    (BASE.replace("name: t\n", ""), ["name: Field required"]),
    (BASE.replace("{name: g, kind: cvae", "{name: g, knd: cvae"), ["generators[1] (g).knd: unknown field",
                                                                     "generators[1] (g).kind: Field required"]),
])
def test_errors_name_file_field_value(tmp_path: Path, edit: str, expected: list[str]) -> None:
    path = write_config(tmp_path / "bad.yaml", edit)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write_config(tmp_path / "y.yaml", "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write_config(tmp_path / "l.yaml", "- a\n- b\n"))


def test_generator_kind_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", BASE.replace("kind: cvae", "kind: stylegan9"))
    with pytest.raises(ConfigError, match=r"(?s)c.yaml: .*generators\[1\] \(g\)\.kind: expected one of real, "
                                          r"npz.*cgan.* or 'package\.module:attr' \(given: 'stylegan9'\)"):
        load_config(path)
    path = write_config(tmp_path / "c.yaml", BASE.replace("kind: cvae", "kind: npz, params: {path: x.npz}"))
    with pytest.raises(ConfigError, match="generator 'g' \\(npz\\) has no knob 'truncation'; it takes no knobs"):
        load_config(path)
    path = write_config(tmp_path / "c.yaml", BASE.replace("kind: cvae", "kind: cvae, params: {step: 3}"))
    with pytest.raises(ConfigError, match=r"generators\[1\] \(g\): unknown params \['step'\] for generator kind "
                                          r"'cvae'; allowed: \['hidden', 'latent_dim', 'seed', 'steps'\]"):
        load_config(path)


def test_recipe_overrides() -> None:
    recipe = resolve_recipe("paper-cifar", {"epochs": 2, "lr": 1, "milestones": [1]})
    assert (recipe.epochs, recipe.lr, recipe.milestones, recipe.model) == (2, 1.0, (1,), "resnet56")
    with pytest.raises(ConfigError, match=r"classifier.overrides: unknown \['epoch'\]"):
        resolve_recipe("paper-cifar", {"epoch": 2})
    with pytest.raises(ConfigError, match="classifier.overrides.epochs: expected int, got 'ten'"):
        resolve_recipe("paper-cifar", {"epochs": "ten"})
    with pytest.raises(ConfigError, match="classifier.overrides.augment"):
        resolve_recipe("paper-cifar", {"augment": "mixup"})


def test_paper_recipes_follow_the_paper() -> None:
    from harness.classify.recipes import learning_rate

    imagenet, cifar = RECIPES.load("paper-imagenet"), RECIPES.load("paper-cifar")
    assert (imagenet.model, imagenet.epochs, imagenet.warmup_epochs, imagenet.milestones) == \
        ("resnet50", 90, 5, (30, 60, 80))
    assert (cifar.model, cifar.epochs, cifar.batch_size, cifar.milestones) == ("resnet56", 182, 128, (91, 136))
    assert learning_rate(imagenet, 2.5) == pytest.approx(imagenet.lr * 2.5 / 5, rel=1e-3)
    assert learning_rate(imagenet, 45) == pytest.approx(imagenet.lr * 0.1)
    assert learning_rate(imagenet, 85) == pytest.approx(imagenet.lr * 0.001)
    assert learning_rate(cifar, 136) == pytest.approx(cifar.lr * 0.01)


@pytest.mark.parametrize(("metrics", "expected"), [
    ("{extractors: [inception, dinov2]}", ("inception", "dinov2")),
    ("{extractors: dinov2}", ("dinov2",)),
    ("{extractors: none}", "none"),
    ("{}", "auto"),
])
def test_metrics_extractors(tmp_path: Path, metrics: str, expected: object) -> None:
    config = load_config(write_config(tmp_path / "m.yaml", BASE + f"metrics: {metrics}\n"))
    extractors = config.metrics.extractors
    assert (tuple(extractors) if isinstance(extractors, list) else extractors) == expected
    assert config.metrics.num_samples == 50_000 and config.metrics.max_samples == 10_000


@pytest.mark.parametrize(("metrics", "expected"), [
    ("{extractors: [inception, clip]}", "metrics.extractors: expected one of inception, domain, dinov2 (given: "
                                        "['inception', 'clip'])"),
    ("{extractors: []}", "list at least one extractor, or write 'none'"),
    ("{extractors: [dinov2, dinov2]}", "extractors must be unique"),
    ("{dinov2_architecture: {depth: 2}}", "dinov2_architecture changes the network's size, so it needs "
                                          "dinov2_weights: random"),
    ("{dinov2_weights: random, dinov2_architecture: {layers: 2}}",
     "metrics: dinov2_architecture: settings ['depth', 'embed_dim', 'num_heads'] in [1, 4096] only; got {'layers': 2}"),
    ("{dinov2_weights: random, dinov2_architecture: {depth: 0}}", "in [1, 4096] only; got {'depth': 0}"),
    ("{num_samples: 5}", "metrics.num_samples: Input should be greater than or equal to 10"),
])
def test_metrics_errors(tmp_path: Path, metrics: str, expected: str) -> None:
    path = write_config(tmp_path / "m.yaml", BASE + f"metrics: {metrics}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_domain_features_need_a_real_generator(tmp_path: Path) -> None:
    text = BASE.replace("  - {name: real, kind: real}\n", "") + "metrics: {extractors: [domain]}\n"
    with pytest.raises(ConfigError, match="'domain' uses the classifier trained on real data"):
        load_config(write_config(tmp_path / "d.yaml", text))


def test_imagenet256_dit_is_the_issue_grid() -> None:
    config = load_config(ROOT / "configs" / "imagenet256-dit.yaml")
    dit = next(g for g in config.generators if g.kind == "diffusers")
    assert dit.params["model"] == "facebook/DiT-XL-2-256" and config.classifier.recipe == "paper-imagenet"
    assert dit.sweep == {"guidance_scale": [1.0, 1.5, 2.0, 3.0, 4.0]}
    assert [k["guidance_scale"] for k in dit.knob_grid()] == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert config.metrics.extractors == ["inception", "dinov2"] and config.metrics.num_samples == 50_000
