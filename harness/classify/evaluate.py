"""Testing a classifier on the real test split: counts that add up across workers, and its predictions.

Each data-parallel worker tests a contiguous part of the test split (in the order its
manifest lists the shards, and each shard's own order); the confusion matrices and Top-5
hits add up to those of the whole split, and the workers' top-5 predictions, put one after
another by rank, are in test-split order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.classify.step import model_view


@dataclass
class Evaluation:
    """One worker's part of the test: confusion matrix (true × predicted), Top-5 hits, and its
    images' top-k class indices (k = min(5, classes), best first), all on the device."""

    confusion: torch.Tensor
    top5: torch.Tensor
    top_k: torch.Tensor


@torch.no_grad()
def evaluate_batches(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                     num_classes: int, device: torch.device, input_size: int | None = None,
                     channels_last: bool | None = None, autocast: bool | None = None) -> Evaluation:
    """Test ``model`` on uint8 batches already on ``device``, seen as at evaluation (``model_view``)."""
    cuda = device.type == "cuda"
    channels_last = cuda if channels_last is None else channels_last
    model.eval()
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    top5 = torch.zeros((), dtype=torch.long, device=device)
    k = min(5, num_classes)
    top_k = []
    for images, labels in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda if autocast is None else autocast):
            logits = model(model_view(images, input_size, channels_last))
        best = logits.float().topk(k, dim=1).indices
        confusion += torch.bincount(labels * num_classes + best[:, 0], minlength=num_classes ** 2)
        top5 += (best == labels[:, None]).any(1).sum()
        top_k.append(best)
    top_k_all = torch.cat(top_k) if top_k else torch.zeros((0, k), dtype=torch.long, device=device)
    return Evaluation(confusion.view(num_classes, num_classes), top5, top_k_all)


def accuracy_summary(confusion: np.ndarray, top5_hits: int) -> dict[str, Any]:
    """The CAS numbers from pooled counts."""
    total = int(confusion.sum())
    per_class_n = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), per_class_n, out=np.full(len(confusion), np.nan),
                          where=per_class_n > 0)
    return {"top1": float(np.trace(confusion) / total), "top5": float(top5_hits / total),
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
            "confusion": confusion.astype(int).tolist(), "n_val": total}
