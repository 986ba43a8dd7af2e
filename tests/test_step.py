"""The shared train step and the streamed evaluation against plain reference code."""

from __future__ import annotations

import copy

import torch

from harness.classify.augment import center_crop_resize, random_crop_flip, random_resized_crop
from harness.classify.evaluate import evaluate_batches
from harness.classify.models import build_model
from harness.classify.step import TrainStep


def _data(n: int = 24, classes: int = 7, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
            torch.randint(0, classes, (n,), generator=g))


def test_train_step_matches_a_plain_sgd_step() -> None:
    torch.manual_seed(0)
    model = build_model("resnet-tiny", 3, 7)
    reference = copy.deepcopy(model)
    images, labels = _data()
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.device("cpu"))
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        loss = step(images, labels)
        ref_loss = torch.nn.functional.cross_entropy(reference(images.float() / 127.5 - 1), labels)
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        assert not loss.requires_grad and torch.allclose(loss, ref_loss.detach())
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_augmented_channels_last_step_is_seeded() -> None:
    images, labels = _data()
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("resnet-tiny", 3, 7)
        step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"),
                         augment="crop-flip", pad=2, seed=5, channels_last=True)
        losses.append(torch.stack([step(images, labels) for _ in range(3)]))
    assert torch.equal(losses[0], losses[1]) and losses[0][2] < losses[0][0]


def test_augmentation_at_an_input_size() -> None:
    """At ``input_size`` training sees a random-resized crop (flipped for crop-flip) drawn from the step's
    generators, ``none`` the evaluation's centre crop; reseeding repeats the draws."""
    images, _ = _data(6, size=20)
    x = images.float() / 127.5 - 1
    model = build_model("resnet-tiny", 3, 7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = TrainStep(model, optimizer, torch.device("cpu"), augment="crop", input_size=12, seed=3)
    expected = random_resized_crop(x, 12, generator=torch.Generator().manual_seed(3))
    assert torch.equal(step.augmented(images), expected)
    flipping = TrainStep(model, optimizer, torch.device("cpu"), augment="crop-flip", input_size=12, seed=3)
    flipped = random_crop_flip(expected, 0, True, torch.Generator().manual_seed(3))
    first = flipping.augmented(images)
    assert torch.equal(first, flipped) and not torch.equal(first, expected)
    flipping.reseed(3)
    assert torch.equal(flipping.augmented(images), first)
    plain = TrainStep(model, optimizer, torch.device("cpu"), augment="none", input_size=12)
    assert torch.equal(plain.augmented(images), center_crop_resize(x, 12))


def test_evaluation_matches_a_plain_loop() -> None:
    torch.manual_seed(0)
    model = build_model("resnet-tiny", 3, 7).eval()
    images, labels = _data(50)
    batches = [(images[s:s + 16], labels[s:s + 16]) for s in range(0, 50, 16)]
    tested = evaluate_batches(model, batches, 7, torch.device("cpu"))
    with torch.no_grad():
        logits = model(images.float() / 127.5 - 1)
    top5 = logits.topk(5, dim=1).indices
    confusion = torch.zeros(7, 7, dtype=torch.long)
    for y, p in zip(labels.tolist(), top5[:, 0].tolist(), strict=True):
        confusion[y, p] += 1
    assert torch.equal(tested.confusion, confusion) and int(confusion.sum()) == 50
    assert torch.equal(tested.top_k, top5) and int(tested.top5) == int((top5 == labels[:, None]).any(1).sum())


def test_evaluation_at_an_input_size_takes_the_centre_crop() -> None:
    torch.manual_seed(0)
    model = build_model("resnet-tiny", 3, 3).eval()
    images, labels = _data(10, classes=3, size=20)
    tested = evaluate_batches(model, [(images, labels)], 3, torch.device("cpu"), input_size=12)
    with torch.no_grad():
        logits = model(center_crop_resize(images.float() / 127.5 - 1, 12))
    assert tested.top_k.shape == (10, 3) and torch.equal(tested.top_k, logits.topk(3, dim=1).indices)
