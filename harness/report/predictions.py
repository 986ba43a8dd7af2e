"""A cell's predictions kept compactly, so any two cells can be compared after the fact.

Per test image the classifier's top-k class indices (k = 5, or fewer with fewer classes), in
the test split's order. Stored as an ``.npz`` of one uint16 array (int32 above 65,535 classes),
compressed and readable without pickle: 50,000 ImageNet validation images take well under 500 kB.
"""

from __future__ import annotations

import io

import numpy as np

_KEY = "top_k"


def encode_predictions(top_k: np.ndarray) -> bytes:
    """Bytes of an ``.npz`` holding ``top_k`` (int array [N, k], best class first)."""
    pred = np.asarray(top_k)
    if pred.ndim != 2 or pred.shape[1] == 0 or not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"predictions must be an integer array [N, k] of class indices, got {pred.dtype} "
                         f"{pred.shape}")
    if pred.size and pred.min() < 0:
        raise ValueError(f"predictions hold a negative class index ({pred.min()})")
    dtype = np.uint16 if pred.size == 0 or pred.max() <= np.iinfo(np.uint16).max else np.int32
    buf = io.BytesIO()
    np.savez_compressed(buf, **{_KEY: pred.astype(dtype)})
    return buf.getvalue()


def decode_predictions(data: bytes) -> np.ndarray:
    """The int64 array [N, k] that :func:`encode_predictions` stored."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        if _KEY not in npz.files:
            raise ValueError(f"not a predictions file: expected array {_KEY!r}, found {npz.files}")
        return npz[_KEY].astype(np.int64)


def correct_from_predictions(pred: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Per test image, whether its label is among the first ``k`` predictions (Top-k correct)."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if not 1 <= k <= pred.shape[1]:
        raise ValueError(f"k must be between 1 and the {pred.shape[1]} predictions kept per image, got {k}")
    if labels.shape != (len(pred),):
        raise ValueError(f"labels: expected one per predicted image ({len(pred)}), got shape {labels.shape}")
    return (pred[:, :k] == labels[:, None]).any(1)
