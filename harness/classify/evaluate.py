"""Top-1, Top-5, per-class accuracy and the confusion matrix on the real validation split."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.classify.preprocess import to_model_input


@torch.no_grad()
def confusion_and_top5(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                       batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts that add up across workers: the confusion matrix (true × predicted) and Top-5 hits."""
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    top5 = torch.zeros((), dtype=torch.long, device=device)
    k = min(5, num_classes)
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start:start + batch_size].to(device, non_blocking=True))
        y = labels[start:start + batch_size].to(device, non_blocking=True)
        logits = model(x)
        pred = logits.argmax(1)
        confusion += torch.bincount(y * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
        top5 += (logits.topk(k, dim=1).indices == y[:, None]).any(1).sum()
    return confusion, top5


def accuracy_summary(confusion: np.ndarray, top5_hits: int) -> dict[str, Any]:
    """The CAS numbers from pooled counts."""
    total = int(confusion.sum())
    per_class_n = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), per_class_n, out=np.full(len(confusion), np.nan),
                          where=per_class_n > 0)
    return {"top1": float(np.trace(confusion) / total), "top5": float(top5_hits / total),
            "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
            "confusion": confusion.astype(int).tolist(), "n_val": total}
