"""Image-generation metrics: FID, KID, Inception Score and precision/recall.

Features come from the extractors of :mod:`harness.metrics.features` (the standard FID
Inception, a domain classifier) and :mod:`harness.metrics.dinov2` (DINOv2 ViT-L/14); the
metrics themselves work on plain feature arrays.
"""

from harness.metrics.features import (
    DomainExtractor,
    InceptionExtractor,
    exact_float32,
    extract,
)
from harness.metrics.inception import FEATURE_EXTRACTOR, PREPROCESSING, fid_inception_v3
from harness.metrics.scores import inception_score, kid, precision_recall
from harness.metrics.stats import (
    FeatureStats,
    frechet_distance,
    load_fid_stats,
    save_fid_stats,
)

__all__ = [
    "FEATURE_EXTRACTOR",
    "PREPROCESSING",
    "DomainExtractor",
    "FeatureStats",
    "InceptionExtractor",
    "exact_float32",
    "extract",
    "fid_inception_v3",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_fid_stats",
    "precision_recall",
    "save_fid_stats",
]
