"""Training recipes: the paper's protocols and a small one for the embedded data."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.config import ConfigError
from harness.registry import MODELS, RECIPES


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained: SGD with momentum, linear warm-up, step decay.

    ``lr`` is for the global ``batch_size``; ``milestones`` are epochs at which the rate
    is multiplied by ``gamma``.

    ``input_size`` None trains and tests at the data's own size: ``augment`` is
    ``crop-flip`` (random crop after zero padding of ``pad`` pixels, then horizontal flip),
    ``crop`` (no flip: digits are not mirror-symmetric) or ``none``, and evaluation sees
    the whole image. With ``input_size`` set (Goyal et al.'s ImageNet recipe), training
    takes an Inception-style random-resized crop of that size (flipped for ``crop-flip``;
    ``none`` takes the evaluation crop) and evaluation resizes the shorter side to
    ``input_size / 0.875`` and takes the centre ``input_size`` square; ``pad`` is unused.

    ``decay_bn_and_bias`` False exempts batch-norm parameters and biases from weight decay.
    ``compile`` runs the model under ``torch.compile``. ``checkpoint_every`` epochs (0:
    never) the trial's state goes to the store, and a restarted trial resumes from it;
    it changes no number, so it is not part of the trial's key.
    """

    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    warmup_epochs: float
    milestones: tuple[int, ...]
    gamma: float = 0.1
    augment: str = "crop-flip"
    pad: int = 4
    eval_batch_size: int = 1024
    input_size: int | None = None
    decay_bn_and_bias: bool = True
    compile: bool = False
    checkpoint_every: int = 5


#: Fields that change how a trial runs but no number it gives: left out of store keys.
NOT_IN_KEY = ("checkpoint_every",)
#: Fields that may be None; the others take their default's type.
OPTIONAL_INT = ("input_size",)

#: Ravuri & Vinyals 2019, ImageNet: ResNet-50, 90 epochs, warm-up 5, ×0.1 at 30/60/80, Goyal et al.'s
#: 224-px random-resized crops, 0.875 centre-crop evaluation, no decay on batch norm and biases
#: (docs/PROTOCOLS.md lists where it differs from the paper).
PAPER_IMAGENET = Recipe(model="resnet50", epochs=90, batch_size=1024, lr=0.4, momentum=0.9,
                        weight_decay=1e-4, warmup_epochs=5, milestones=(30, 60, 80), pad=0, input_size=224,
                        decay_bn_and_bias=False)
#: CIFAR-10: ResNet-56, 182 epochs, batch 128, ×0.1 at 91 and 136 (He et al. 2016).
PAPER_CIFAR = Recipe(model="resnet56", epochs=182, batch_size=128, lr=0.1, momentum=0.9,
                     weight_decay=1e-4, warmup_epochs=0, milestones=(91, 136))
#: The embedded 8×8 digits: a 2-stage ResNet that trains in seconds on a CPU.
DIGITS_SMALL = Recipe(model="resnet-tiny", epochs=30, batch_size=64, lr=0.05, momentum=0.9,
                      weight_decay=5e-4, warmup_epochs=1, milestones=(20, 27), augment="crop", pad=1,
                      eval_batch_size=512, checkpoint_every=0)


def resolve_recipe(name: str, overrides: dict[str, Any]) -> Recipe:
    """A registered recipe with the config's overrides applied and checked."""
    base = RECIPES.load(name)
    fields = {f.name: f.type for f in dataclasses.fields(Recipe)}
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ConfigError(f"classifier.overrides: unknown {sorted(unknown)}; allowed: {sorted(fields)}")
    values = dataclasses.asdict(base)
    for key, value in overrides.items():
        expected = type(values[key])
        if key in OPTIONAL_INT:
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"classifier.overrides.{key}: expected a whole number of pixels ≥ 1 or null, "
                                  f"got {value!r}")
        elif expected is tuple:
            if not isinstance(value, list | tuple) or not all(isinstance(v, int) for v in value):
                raise ConfigError(f"classifier.overrides.{key}: expected a list of epochs, got {value!r}")
            value = tuple(value)
        elif expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise ConfigError(f"classifier.overrides.{key}: expected {expected.__name__}, got {value!r}")
        values[key] = value
    recipe = Recipe(**values)
    if recipe.augment not in ("crop-flip", "crop", "none"):
        raise ConfigError(f"classifier.overrides.augment: expected crop-flip, crop or none, got {recipe.augment!r}")
    if recipe.model not in MODELS:
        raise ConfigError(f"classifier.overrides.model: expected one of {', '.join(MODELS.names())}, "
                          f"got {recipe.model!r}")
    if recipe.epochs < 1 or recipe.batch_size < 1:
        raise ConfigError("classifier.overrides: epochs and batch_size must be ≥ 1")
    if recipe.checkpoint_every < 0:
        raise ConfigError(f"classifier.overrides.checkpoint_every: expected epochs ≥ 0 (0: no checkpoints), "
                          f"got {recipe.checkpoint_every}")
    return recipe


def recipe_record(recipe: Recipe) -> dict[str, Any]:
    """The recipe as it enters store keys and records: the fields that decide its numbers."""
    return {k: v for k, v in dataclasses.asdict(recipe).items() if k not in NOT_IN_KEY}


def learning_rate(recipe: Recipe, epoch: float) -> float:
    """The rate at a fractional epoch: linear warm-up, then ×gamma at each milestone."""
    if recipe.warmup_epochs and epoch < recipe.warmup_epochs:
        return recipe.lr * (epoch + 1e-3) / recipe.warmup_epochs
    return recipe.lr * recipe.gamma ** sum(epoch >= m for m in recipe.milestones)
