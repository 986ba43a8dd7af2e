"""The shared train and evaluation steps against plain reference code."""

from __future__ import annotations

import copy

import torch

from harness.classify.evaluate import confusion_and_top5
from harness.classify.models import build_model
from harness.classify.step import TrainStep, eval_counts


def _data(n: int = 24, classes: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.randint(0, classes, (n,),
                                                                                                generator=g)


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


def test_eval_counts_match_the_in_memory_evaluation() -> None:
    torch.manual_seed(0)
    model = build_model("resnet-tiny", 3, 7)
    images, labels = _data(50)
    expected = confusion_and_top5(model, images, labels, 7, 16, torch.device("cpu"))
    batches = [(images[s:s + 16], labels[s:s + 16]) for s in range(0, 50, 16)]
    confusion, top5 = eval_counts(model, batches, 7, torch.device("cpu"))
    assert torch.equal(confusion, expected[0]) and int(top5) == int(expected[1]) and int(confusion.sum()) == 50
