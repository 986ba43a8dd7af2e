"""Where everything lives in the store, and the keys that name it.

Every stage output sits under a key that hashes the spec that made it together with
``STORE_FORMAT``. A change that alters any number the harness computes bumps
``STORE_FORMAT``, so results of old and new code are never mixed: old outputs are simply
not found and are made again.

```
datasets/<key>/{train,val}/        the real train split (less a monitoring split, where val_fraction carves one), and
                                   the split CAS is measured on: the official held-out split, or one carved from the
                                   train data (the digits); records name which (data.readers.cas_split_name)
samples/<key>/                     one block of a generator's sample stream (shards + manifest)
generators/<kind>-<key>/model.pt   generators trained by the harness (cvae, cgan)
trials/<key>/result.json, model.pt, checkpoint.pt, predictions.npz
                                   one trained and tested classifier
features/<key>.npz                 pooled features of one shard set under one extractor
runs/<name>-<time>/                one sweep: config, results, report
```
"""

from __future__ import annotations

import time
from typing import Any

from harness.store import spec_key

STORE_FORMAT = 3

TRIAL_RESULT = "result.json"
TRIAL_MODEL = "model.pt"
TRIAL_CHECKPOINT = "checkpoint.pt"
TRIAL_PREDICTIONS = "predictions.npz"


def content_key(spec: dict[str, Any]) -> str:
    """The key of a stage output: its spec and the store format, hashed."""
    return spec_key({"store_format": STORE_FORMAT, **spec})


def dataset_split(key: str, split: str) -> str:
    return f"datasets/{key}/{split}"


def sample_set(key: str) -> str:
    return f"samples/{key}"


def generator_model(kind: str, key: str) -> str:
    return f"generators/{kind}-{key}/model.pt"


def trial(key: str) -> str:
    return f"trials/{key}"


def features(key: str) -> str:
    return f"features/{key}.npz"


def run(name: str) -> str:
    """A new run folder for a sweep named ``name``, stamped with the local time."""
    return f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}"
