"""Classifiers: ResNets for small images (He et al. 2016, CIFAR form) and ResNet-50.

Every model is a ``Classifier``: a ``body`` that gives the penultimate features and a
linear ``head``. The body of the classifier trained on real data is the domain feature
extractor for IS/FID on small datasets.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.registry import MODELS


class Classifier(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def small_resnet(in_channels: int, num_classes: int, blocks_per_stage: int, widths: tuple[int, ...]) -> Classifier:
    """A CIFAR-style ResNet: 6n+2 layers for three stages (ResNet-56 is n = 9, widths 16/32/64)."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), nn.Linear(cin, num_classes))


def resnet50(in_channels: int, num_classes: int) -> Classifier:
    """torchvision's ResNet-50 (the paper's ImageNet classifier), split into body and head."""
    from torchvision.models import resnet50 as tv_resnet50

    net = tv_resnet50(num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    body = nn.Sequential(*(m for name, m in net.named_children() if name != "fc"), nn.Flatten())
    return Classifier(body, net.fc)


def resnet56(in_channels: int, num_classes: int) -> Classifier:
    """The paper's CIFAR-10 classifier."""
    return small_resnet(in_channels, num_classes, 9, (16, 32, 64))


def resnet_tiny(in_channels: int, num_classes: int) -> Classifier:
    """Two stages of one block each: trains on the embedded digits in seconds on a CPU."""
    return small_resnet(in_channels, num_classes, 1, (32, 64))


def build_model(name: str, in_channels: int, num_classes: int) -> Classifier:
    """The registered model ``name`` (``harness.registry.MODELS``), freshly initialised."""
    return MODELS.load(name)(in_channels, num_classes)
