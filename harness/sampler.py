"""The sampler actor: holds one generator at a time and writes shards of its samples.

Each shard is drawn with a torch generator seeded from its sample set's key and its index
(:func:`shard_seed`), so a shard's content does not depend on which actor made it. Which
actor draws what is decided by :mod:`harness.sample`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np
import ray
import torch

from harness.config import GeneratorConfig
from harness.data import RealData
from harness.generators import GeneratorError, build_generator, check_samples
from harness.generators.pools import PoolGenerator
from harness.plan import SampleSet
from harness.progress import format_seconds
from harness.shards import ShardSet
from harness.store import Store, spec_key


class SamplingTimeout(GeneratorError):
    """A generator's ``sample()`` did not return within ``sampler.batch_timeout_s``."""


def shard_seed(set_key: str, index: int) -> int:
    return int(spec_key({"set": set_key, "shard": index}), 16) % (2**63)


@ray.remote
class Sampler:
    """Holds one generator at a time and writes shards of its samples.

    ``sample()`` runs in a thread of its own, so that a call that never returns is noticed
    after ``batch_timeout_s``; the driver then kills this actor, the only way to stop it.
    """

    def __init__(self, store_root: str, real: RealData, batch_timeout_s: float) -> None:
        self.store, self.real, self.batch_timeout_s = Store(store_root), real, batch_timeout_s
        self.loaded: tuple[str, Any] | None = None
        self.calls = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample")

    def _generator(self, cfg: GeneratorConfig) -> Any:
        key = spec_key({"kind": cfg.kind, "params": cfg.params, "truncation_mode": cfg.truncation_mode})
        if self.loaded is None or self.loaded[0] != key:
            self.loaded = None
            self.loaded = (key, build_generator(cfg, self.real, self.store))
        return self.loaded[1]

    def ready(self) -> None:
        """Returns once the actor runs: work goes only to actors that have a node."""

    def prepare(self, cfg: GeneratorConfig) -> str:
        """Build (and for embedded kinds, train and cache) a generator."""
        self._generator(cfg)
        return cfg.name

    def _sample(self, gen: Any, name: str, batch: torch.Tensor, truncation: float | None, rng: torch.Generator,
                knobs: dict[str, Any]) -> torch.Tensor:
        call = self.calls.submit(gen.sample, batch, truncation, rng, **knobs)
        try:
            return call.result(timeout=self.batch_timeout_s)
        except FutureTimeout:
            raise SamplingTimeout(f"generator {name!r}: sample() of a batch of {len(batch)} did not return in "
                                  f"{format_seconds(self.batch_timeout_s)} (sampler.batch_timeout_s = "
                                  f"{self.batch_timeout_s:g}); its sample sets are left out") from None
        except GeneratorError as err:
            raise GeneratorError(f"generator {name!r}: {err}") from err

    def sample_shard(self, sample_set: SampleSet, index: int, labels: np.ndarray, batch_size: int) -> dict[str, Any]:
        gen = self._generator(sample_set.generator)
        name = sample_set.generator.name
        if isinstance(gen, PoolGenerator):
            gen = gen.shard(sample_set.stream_seed, labels, sample_set.pool_positions(index))
        rng = torch.Generator().manual_seed(shard_seed(sample_set.key, index))
        y = torch.from_numpy(np.array(labels))
        knobs = dict(sample_set.knobs)
        truncation = knobs.pop("truncation", None)
        parts = []
        for start in range(0, len(y), batch_size):
            batch = y[start:start + batch_size]
            images = self._sample(gen, name, batch, truncation, rng, knobs)
            parts.append(check_samples(name, images, batch, self.real.image_shape).numpy())
        return ShardSet(self.store, sample_set.folder).write_shard(index, np.concatenate(parts), labels,
                                                                  self.real.num_classes)
