"""Sampling: Ray actors turn (generator, knob values, seed) sample sets into shards.

A sample set holds one sample per real training image, of the same class, so the real
train split's label histogram is kept. Its labels are fixed by its seed and split into
shards; each shard is drawn with a torch generator seeded from the set's key and the
shard's index, so a shard's content does not depend on which actor made it. Actors (one
per GPU, or CPU actors where there is none) load a generator once and keep it while they
work through that generator's shards. A set whose manifest is complete is reused; shards
left by an interrupted run are kept when they read back whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch

from harness.config import GeneratorConfig, SamplerConfig
from harness.data import RealData
from harness.generators import GeneratorError, build_generator, check_samples
from harness.generators.pools import PoolGenerator
from harness.plan import SampleSet
from harness.progress import Progress, status
from harness.ray_env import error_text, num_actors
from harness.shards import ShardSet, class_counts
from harness.store import Store, spec_key


def shard_seed(set_key: str, index: int) -> int:
    return int(spec_key({"set": set_key, "shard": index}), 16) % (2**63)


@ray.remote
class Sampler:
    """Holds one generator at a time and writes shards of its samples."""

    def __init__(self, store_root: str, real: RealData) -> None:
        self.store, self.real = Store(store_root), real
        self.loaded: tuple[str, Any] | None = None

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

    def sample_shard(self, sample_set: SampleSet, index: int, labels: np.ndarray, batch_size: int) -> dict[str, Any]:
        gen = self._generator(sample_set.generator)
        if isinstance(gen, PoolGenerator):
            gen = gen.shard(sample_set.stream_seed, labels, sample_set.pool_positions(index))
        rng = torch.Generator().manual_seed(shard_seed(sample_set.key, index))
        y = torch.from_numpy(np.array(labels))
        knobs = dict(sample_set.knobs)
        truncation = knobs.pop("truncation", None)
        parts = []
        for start in range(0, len(y), batch_size):
            batch = y[start:start + batch_size]
            try:
                images = gen.sample(batch, truncation, rng, **knobs)
            except GeneratorError as err:
                raise GeneratorError(f"generator {sample_set.generator.name!r}: {err}") from err
            parts.append(check_samples(sample_set.generator.name, images, batch, self.real.image_shape).numpy())
        return ShardSet(self.store, sample_set.folder).write_shard(index, np.concatenate(parts), labels,
                                                                  self.real.num_classes)


@dataclass
class SamplingOutcome:
    done: list[SampleSet]
    failed: dict[str, str]


def _actor_options(cfg: SamplerConfig) -> dict[str, Any]:
    return {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus, "resources": dict(cfg.resources)}


def run_sampling(sets: list[SampleSet], real: RealData, store: Store, cfg: SamplerConfig) -> SamplingOutcome:
    """Bring every sample set to a complete manifest; failures are reported per generator."""
    todo: list[tuple[SampleSet, int, np.ndarray]] = []
    partial: dict[str, list[dict[str, Any]]] = {}
    pending_sets = [s for s in sets if not ShardSet(store, s.folder).is_complete()]
    for s in pending_sets:
        shards = ShardSet(store, s.folder)
        partial[s.key] = []
        for index, chunk in enumerate(s.shards()):
            entry = shards.existing_shard_entry(index, real.num_classes)
            if entry and entry["counts"] == class_counts(chunk, real.num_classes):
                partial[s.key].append(entry)
            else:
                todo.append((s, index, chunk))
    reused = len(sets) - len(pending_sets)
    status(f"[sample] {len(sets)} sample sets: {reused} complete in the store, {len(pending_sets)} to make "
           f"({len(todo)} shards)")
    failed: dict[str, str] = {}
    if todo:
        _run_shards(todo, real, store, cfg, partial, failed)
    for s in pending_sets:
        if s.key not in failed:
            ShardSet(store, s.folder).write_manifest(s.spec, partial[s.key], real.num_classes, real.image_shape)
    return SamplingOutcome(done=[s for s in sets if s.key not in failed], failed=failed)


def _run_shards(todo: list[tuple[SampleSet, int, np.ndarray]], real: RealData, store: Store, cfg: SamplerConfig,
                partial: dict[str, list[dict[str, Any]]], failed: dict[str, str]) -> None:
    """Hand the shards out to sampler actors as they start.

    Work goes only to actors that run, so actors waiting minutes for a node (or never
    getting one) hold nothing up. Each generator is first prepared (built, and for
    embedded kinds trained and cached) on one actor before its shards go to any actor.
    """
    queue = sorted(todo, key=lambda t: (t[0].generator.name, t[0].key, t[1]))
    needs = {"CPU": cfg.num_cpus, "GPU": cfg.num_gpus, **cfg.resources}
    actors = [Sampler.options(**_actor_options(cfg)).remote(store.root, real)
              for _ in range(num_actors(cfg.num_actors, needs, len(queue)))]
    calls: dict[ray.ObjectRef, tuple[str, Any, Any]] = {a.ready.remote(): ("start", a, None) for a in actors}
    unprepared = list({t[0].generator.name: t[0].generator for t in queue}.values())
    prepared: set[str] = set()
    free: list[Any] = []
    progress = Progress("sample", total=len(queue), unit="shards")
    images_done, started, lost = 0, time.monotonic(), ""

    def fail(keys: set[str], text: str) -> None:
        failed.update({key: text for key in keys})
        kept = [t for t in queue if t[0].key not in keys]
        progress.total -= len(queue) - len(kept)
        queue[:] = kept

    while queue or any(kind != "start" for kind, _, _ in calls.values()):
        while free and (unprepared or any(t[0].generator.name in prepared for t in queue)):
            actor = free.pop()
            if unprepared:
                g = unprepared.pop(0)
                calls[actor.prepare.remote(g)] = ("prepare", actor, g)
                continue
            task = queue.pop(next(i for i, t in enumerate(queue) if t[0].generator.name in prepared))
            calls[actor.sample_shard.remote(task[0], task[1], task[2], cfg.batch_size)] = ("shard", actor, task)
        if not calls:
            text = f"no sampler actor is left to run it ({lost})"
            fail({t[0].key for t in queue}, text)
            status(f"[sample] {text}")
            break
        [ref], _ = ray.wait(list(calls), num_returns=1)
        kind, actor, item = calls.pop(ref)
        try:
            value = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - reported per generator or sample set, the rest go on
            text = error_text(err)
            if kind == "start" or isinstance(err, ray.exceptions.RayActorError):
                lost = text
            else:
                free.append(actor)
            if kind == "prepare":
                fail({t[0].key for t in queue if t[0].generator.name == item.name}, text)
                status(f"[sample] generator {item.name!r} failed: {text}")
            elif kind == "shard":
                fail({item[0].key}, text)
                status(f"[sample] {item[0].label} failed: {text}")
                progress.advance()
            continue
        free.append(actor)
        if kind == "prepare":
            prepared.add(item.name)
        elif kind == "shard":
            partial[item[0].key].append(value)
            images_done += len(item[2])
            progress.advance(note=f"{images_done / max(time.monotonic() - started, 1e-9):.0f} images/s")
    for actor in actors:
        ray.kill(actor)

