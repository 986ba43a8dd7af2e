"""The training and evaluation steps, from uint8 batches already on the device.

One step: uint8 → float ``x / 127.5 - 1`` → per-image crop/flip drawn on the device →
``channels_last`` → forward under bf16 autocast (CUDA) → cross-entropy → backward → SGD
step. Nothing in it reads a value back to the host: the loss stays a device tensor, so
the host queues steps ahead of the accelerator. The train loop and ``bench/bench_train.py``
run this same step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from harness.classify.augment import random_crop_flip


def to_model_input(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 N×C×H×W → float in [-1, 1] (the classifiers' and the domain extractor's convention)."""
    x = images.float() / 127.5 - 1
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class TrainStep:
    """A model, its optimizer and the device-side randomness of augmentation: call it with a batch.

    ``augment`` is a recipe's (``crop-flip``, ``crop`` or ``none``) with its ``pad``.
    ``channels_last`` and bf16 autocast default to on for CUDA, off for CPU. ``compile``
    wraps the model in ``torch.compile``. The caller puts the model in training mode.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *,
                 augment: str = "none", pad: int = 0, seed: int = 0, channels_last: bool | None = None,
                 autocast: bool | None = None, compile: bool = False) -> None:
        cuda = device.type == "cuda"
        self.channels_last = cuda if channels_last is None else channels_last
        self.autocast = cuda if autocast is None else autocast
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        self.optimizer, self.device, self.augment, self.pad = optimizer, device, augment, pad
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One SGD step on a uint8 batch on the device; returns the batch's loss (detached, on the device)."""
        x = to_model_input(images, channels_last=False)
        if self.augment != "none":
            x = random_crop_flip(x, self.pad, self.augment == "crop-flip", self.generator)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = torch.nn.functional.cross_entropy(self.model(x), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


@torch.no_grad()
def eval_counts(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                device: torch.device, channels_last: bool | None = None,
                autocast: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Confusion matrix (true × predicted) and Top-5 hits over uint8 batches on ``device``: counts that add up
    across workers."""
    cuda = device.type == "cuda"
    channels_last = cuda if channels_last is None else channels_last
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    top5 = torch.zeros((), dtype=torch.long, device=device)
    k = min(5, num_classes)
    for images, labels in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda if autocast is None else autocast):
            logits = model(to_model_input(images, channels_last))
        confusion += torch.bincount(labels * num_classes + logits.argmax(1), minlength=num_classes ** 2)
        top5 += (logits.topk(k, dim=1).indices == labels[:, None]).any(1).sum()
    return confusion.view(num_classes, num_classes), top5
