"""The training step, from uint8 batches already on the device.

One step: uint8 → float (:func:`harness.classify.preprocess.to_model_input`) → per-image
augmentation drawn on the device (a crop after padding and a flip, or at ``input_size`` an
Inception-style random-resized crop and a flip) → ``channels_last`` → forward under bf16
autocast (CUDA) → cross-entropy → backward → SGD step. Nothing in it reads a value back to
the host: the loss stays a device tensor, so the host queues steps ahead of the accelerator.
The train loop and ``bench/bench_train.py`` run this same step.
"""

from __future__ import annotations

import torch

from harness.classify.augment import center_crop_resize, random_crop_flip, random_resized_crop
from harness.classify.preprocess import to_model_input


def model_view(images: torch.Tensor, input_size: int | None, channels_last: bool) -> torch.Tensor:
    """What a classifier sees at evaluation: ``to_model_input``, then at ``input_size`` the resize and
    0.875 centre crop, in ``channels_last`` where asked."""
    x = to_model_input(images)
    if input_size is not None:
        x = center_crop_resize(x, input_size)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class TrainStep:
    """A model, its optimizer and the randomness of augmentation: call it with a batch.

    ``augment`` is a recipe's (``crop-flip``, ``crop`` or ``none``) with its ``pad`` and
    ``input_size`` (see :class:`harness.classify.recipes.Recipe`). Crop offsets and flips are
    drawn on the device; random-resized-crop boxes on the CPU (torchvision's rule, in float64),
    from a generator of their own. ``channels_last`` and bf16 autocast default to on for
    CUDA, off for CPU. ``compile`` wraps the model in ``torch.compile``. The caller puts the
    model in training mode.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *,
                 augment: str = "none", pad: int = 0, input_size: int | None = None, seed: int = 0,
                 channels_last: bool | None = None, autocast: bool | None = None, compile: bool = False) -> None:
        cuda = device.type == "cuda"
        self.channels_last = cuda if channels_last is None else channels_last
        self.autocast = cuda if autocast is None else autocast
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        self.optimizer, self.device = optimizer, device
        self.augment, self.pad, self.input_size = augment, pad, input_size
        self.generator = torch.Generator(device=device)
        self.box_generator = torch.Generator()
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start the augmentation's random streams from ``seed`` (the train loop does so every epoch)."""
        self.generator.manual_seed(seed)
        self.box_generator.manual_seed(seed)

    def augmented(self, images: torch.Tensor) -> torch.Tensor:
        """A uint8 batch as the model trains on it."""
        x = to_model_input(images)
        flip = self.augment == "crop-flip"
        if self.input_size is not None:
            if self.augment == "none":
                x = center_crop_resize(x, self.input_size)
            else:
                x = random_resized_crop(x, self.input_size, generator=self.box_generator)
                x = random_crop_flip(x, 0, flip, self.generator)
        elif self.augment != "none":
            x = random_crop_flip(x, self.pad, flip, self.generator)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One SGD step on a uint8 batch on the device; returns the batch's loss (detached, on the device)."""
        x = self.augmented(images)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = torch.nn.functional.cross_entropy(self.model(x), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
