"""Sampling: Ray actors turn (generator, knob values, seed) sample sets into shards.

A sample set holds one sample per real training image, of the same class, so the real
train split's label histogram is kept. Its labels are fixed by its seed and split into
shards, which :class:`harness.sampler.Sampler` actors draw (one per GPU, or CPU actors
where there is none); an actor loads a generator once and keeps it while it works through
that generator's shards.

A set whose manifest is complete is reused once every shard matches its checksum (a broken
shard is removed and redone); shards left by an interrupted run are kept when they read
back whole. A set's manifest is written as soon as its last shard lands, and
:class:`SetsReady` tells a grid that trains in another thread which sets are whole, so
that a cell's trial starts while other sets are still being drawn. A sweep takes a lease
on each set it makes, so a concurrent sweep of the same store waits and reuses it. A
``sample()`` call that takes longer than ``sampler.batch_timeout_s`` fails that
generator's sets, and its actor is replaced; an actor lost with its node is replaced and
only its unfinished shard is redone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from harness.config import SamplerConfig
from harness.data import RealData
from harness.lease import in_turns
from harness.plan import Cell, SampleSet
from harness.progress import Progress, format_seconds, status
from harness.ray_env import error_text, num_actors
from harness.sampler import Sampler, SamplingTimeout
from harness.shards import MANIFEST, ShardSet, class_counts
from harness.store import Store
from harness.verify import repair_shard_set

#: How often a stage that waits says what it waits for.
HEARTBEAT_S = 30.0
#: How many times a shard (or a generator's preparation) is tried on actors that died under it.
MAX_ATTEMPTS = 3
#: How often the sampling loop looks whether it was asked to stop.
STOP_POLL_S = 1.0


@dataclass
class SamplingTimes:
    """Where sampling's time went, for what this process made: each generator's preparation (built,
    loaded, or for embedded kinds trained) in seconds, and per sample set the images drawn and the
    actor-seconds spent drawing, checking and writing them."""

    prepare_seconds: dict[str, float] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    actor_seconds: dict[str, float] = field(default_factory=dict)

    def add_shard(self, key: str, images: int, seconds: float) -> None:
        self.images[key] = self.images.get(key, 0) + images
        self.actor_seconds[key] = self.actor_seconds.get(key, 0.0) + seconds

    def summary(self, sets: list[SampleSet]) -> list[str]:
        """A line per generator: how long its preparation took, and how fast its sets were drawn."""
        lines = []
        for name in dict.fromkeys(s.generator.name for s in sets):
            keys = [s.key for s in sets if s.generator.name == name and s.key in self.images]
            prepared = self.prepare_seconds.get(name)
            parts = [] if prepared is None else [f"prepared in {format_seconds(prepared)}"]
            if keys:
                images, seconds = sum(self.images[k] for k in keys), sum(self.actor_seconds[k] for k in keys)
                parts.append(f"{len(keys)} sets, {images:,} images at {images / max(seconds, 1e-9):,.0f} images/s "
                             f"per actor")
            if parts:
                lines.append(f"{name}: {'; '.join(parts)}")
        return lines

    def to_dict(self, sets: list[SampleSet]) -> dict[str, Any]:
        """For run.json: generators by name; sample sets by folder, with their images/s per actor."""
        drawn = {s.folder: {"label": s.label, "images": self.images[s.key],
                            "actor_seconds": float(f"{self.actor_seconds[s.key]:.4g}"),  # a fast set takes ms
                            "images_per_second_per_actor": round(self.images[s.key] / max(self.actor_seconds[s.key],
                                                                                          1e-9), 1)}
                 for s in sets if s.key in self.images}
        return {"generator_prepare_seconds": {k: round(v, 2) for k, v in self.prepare_seconds.items()},
                "sample_sets": drawn}


class SamplingStopped(Exception):
    """Sampling was asked to stop (:attr:`SetsReady.stop`): the sweep around it was interrupted."""


class SetsReady:
    """Which sample sets are whole in the store while sampling runs in another thread: a set is
    ready once its manifest is written (found complete, made here, or made by a concurrent sweep of
    the store), and failed once sampling has ended without it. ``stop`` asks sampling to end early."""

    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._ended = threading.Event()
        self.stop = threading.Event()

    def mark(self, folder: str) -> None:
        self._ready.add(folder)

    def end(self) -> None:
        self._ended.set()

    def state(self, folder: str) -> bool | None:
        """True once the set is whole, False once it never will be (this run), None while it may yet be."""
        ended = self._ended.is_set()  # read first: every mark comes before the end
        if folder in self._ready:
            return True
        return False if ended else None

    def cell(self, cell: Cell) -> bool | None:
        """Whether a cell's training data is whole (a Real cell's always is), in :meth:`state`'s terms."""
        states = [self.state(s.folder) for s in cell.sample_sets]
        if all(states):
            return True
        return False if False in states else None


@dataclass
class SamplingOutcome:
    done: list[SampleSet]
    failed: dict[str, str]
    #: Sets that another sweep of the same store made while this one waited.
    reused: list[SampleSet] = field(default_factory=list)
    times: SamplingTimes = field(default_factory=SamplingTimes)


def _actor_options(cfg: SamplerConfig) -> dict[str, Any]:
    return {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus, "resources": dict(cfg.resources)}


def run_sampling(sets: list[SampleSet], real: RealData, store: Store, cfg: SamplerConfig,
                 ready: SetsReady | None = None, reserve: dict[str, float] | None = None) -> SamplingOutcome:
    """Bring every sample set to a complete, checked manifest; failures are reported per generator.

    Sets are made under leases: a set that a concurrent sweep is making is waited for and
    reused, not made twice. Each set whole in the store is marked in ``ready`` as soon as it is.
    ``reserve``: resources to leave to a trial that can train at once, when ``sampler.num_actors``
    is unset (at least one actor starts).
    """
    ready = ready or SetsReady()
    pending = [s for s in sets if not repair_shard_set(ShardSet(store, s.folder))]
    for s in sets:
        if s not in pending:
            ready.mark(s.folder)
    status(f"[sample] {len(sets)} sample sets: {len(sets) - len(pending)} complete in the store, "
           f"{len(pending)} to make")
    by_folder = {s.folder: s for s in pending}
    failed: dict[str, str] = {}
    made: set[str] = set()
    times = SamplingTimes()
    for owned in in_turns(store, list(by_folder), done=lambda folder: store.exists(folder, MANIFEST)):
        batch = [by_folder[folder] for folder in owned]
        failed.update(_make_sets(batch, real, store, cfg, times, ready, reserve))
        made.update(s.key for s in batch)
    reused = [s for s in pending if s.key not in made]
    for s in reused:
        ready.mark(s.folder)
        status(f"[sample] {s.label}: made by another sweep of this store meanwhile; reused")
    for line in times.summary(pending):
        status(f"[sample] {line}")
    return SamplingOutcome(done=[s for s in sets if s.key not in failed], failed=failed, reused=reused, times=times)


def _make_sets(sets: list[SampleSet], real: RealData, store: Store, cfg: SamplerConfig, times: SamplingTimes,
               ready: SetsReady, reserve: dict[str, float] | None) -> dict[str, str]:
    """Draw the missing shards of ``sets`` and write each set's manifest once its shards are in; the failed
    sets' errors. The time it took is added to ``times``."""
    todo: list[tuple[SampleSet, int, np.ndarray]] = []
    partial: dict[str, list[dict[str, Any]]] = {}
    for s in sets:
        shards = ShardSet(store, s.folder)
        partial[s.key] = []
        for index, chunk in enumerate(s.shards()):
            entry = shards.existing_shard_entry(index, real.num_classes)
            if entry and entry["counts"] == class_counts(chunk, real.num_classes):
                partial[s.key].append(entry)
            else:
                todo.append((s, index, chunk))
    kept = sum(len(p) for p in partial.values())
    status(f"[sample] making {len(sets)} sample sets: {len(todo)} shards to draw"
           + (f", {kept} kept from an interrupted run" if kept else ""))
    failed: dict[str, str] = {}
    drawn = {t[0].key for t in todo}

    def whole(s: SampleSet) -> None:
        ShardSet(store, s.folder).write_manifest(s.spec, partial[s.key], real.num_classes, real.image_shape)
        ready.mark(s.folder)

    for s in sets:
        if s.key not in drawn:
            whole(s)
    if todo:
        _run_shards(todo, real, store, cfg, partial, failed, times, whole, ready.stop, reserve)
    return failed


@dataclass
class _Call:
    """A call in flight on a sampler actor: ``start`` (its ``ready``), ``prepare`` or ``shard``."""

    kind: str
    actor: Any
    item: Any
    since: float = field(default_factory=time.monotonic)

    def describe(self, now: float) -> str:
        what = {"start": "a sampler starting",
                "prepare": f"preparing generator {getattr(self.item, 'name', '')!r}"}.get(self.kind)
        if what is None:
            what = f"{self.item[0].label} shard {self.item[1]}"
        return f"{what} ({format_seconds(now - self.since)})"


def _run_shards(todo: list[tuple[SampleSet, int, np.ndarray]], real: RealData, store: Store, cfg: SamplerConfig,
                partial: dict[str, list[dict[str, Any]]], failed: dict[str, str], times: SamplingTimes,
                whole: Callable[[SampleSet], None], stop: threading.Event, reserve: dict[str, float] | None) -> None:
    """Hand the shards out to sampler actors as they start; ``whole(set)`` once a set's last shard is in.

    Work goes only to actors that run, so actors waiting minutes for a node (or never
    getting one) hold nothing up. Each generator, in the config's order, is first prepared
    (built, and for embedded kinds trained and cached) on one actor before its shards go to
    any actor; an actor draws the shards of the generator it holds before it loads another,
    so that the first generator's sets are whole (and its cells train) early. An actor that
    dies (its node lost) is replaced and its shard goes back in the queue, up to
    ``MAX_ATTEMPTS`` times; one whose generator hangs is killed and replaced.
    """
    order = {name: i for i, name in enumerate(dict.fromkeys(t[0].generator.name for t in todo))}
    queue = sorted(todo, key=lambda t: order[t[0].generator.name])  # generators in the config's order
    needs = {"CPU": cfg.num_cpus, "GPU": cfg.num_gpus, **cfg.resources}
    calls: dict[ray.ObjectRef, _Call] = {}
    actors: list[Any] = []

    def start_actor() -> None:
        actor = Sampler.options(**_actor_options(cfg)).remote(store.root, real, cfg.batch_timeout_s)
        actors.append(actor)
        calls[actor.ready.remote()] = _Call("start", actor, None)

    for _ in range(num_actors(cfg.num_actors, needs, len(queue), reserve)):
        start_actor()
    left = {s.key: sum(t[0].key == s.key for t in queue) for s in {t[0].key: t[0] for t in queue}.values()}
    unprepared = list({t[0].generator.name: t[0].generator for t in queue}.values())
    prepared: set[str] = set()
    attempts: dict[Any, int] = {}
    free: list[Any] = []
    #: The generator each actor holds (or is loading).
    holds: dict[Any, str] = {}
    progress = Progress("sample", total=len(queue), unit="shards")
    images_done, started, news, lost = 0, time.monotonic(), time.monotonic(), ""

    def fail(keys: set[str], text: str) -> None:
        failed.update({key: text for key in keys})
        kept = [t for t in queue if t[0].key not in keys]
        progress.total -= len(queue) - len(kept)
        queue[:] = kept

    def replace(actor: Any) -> None:
        ray.kill(actor, no_restart=True)
        start_actor()

    def retry(call: _Call, text: str) -> bool:
        """Put the work of an actor that died back in line, unless it was tried too often."""
        key = call.item.name if call.kind == "prepare" else (call.item[0].key, call.item[1])
        attempts[key] = attempts.get(key, 1) + 1
        if attempts[key] > MAX_ATTEMPTS:
            return False
        if call.kind == "prepare":
            unprepared.insert(0, call.item)
        else:
            queue.insert(0, call.item)
        status(f"[sample] a sampler died ({text}); {call.describe(time.monotonic())} goes to another "
               f"(attempt {attempts[key]} of {MAX_ATTEMPTS})")
        return True

    def next_work(actor: Any) -> tuple[str, Any] | None:
        """A shard of the generator the actor holds, else a generator to prepare, else a shard of another
        prepared generator, else None: a generator is loaded as seldom as can be, and every generator is
        prepared (on one actor) before its shards go to the others."""
        unprepared[:] = [g for g in unprepared if any(t[0].generator.name == g.name for t in queue)]
        index = next((i for i, t in enumerate(queue) if t[0].generator.name == holds.get(actor)), None)
        if index is None and unprepared:
            return "prepare", unprepared.pop(0)
        if index is None:
            index = next((i for i, t in enumerate(queue) if t[0].generator.name in prepared), None)
        return None if index is None else ("shard", queue.pop(index))

    def hung(call: _Call, text: str) -> None:
        """A generator that hangs: its sets fail, and every actor running it is replaced."""
        name = call.item[0].generator.name
        fail({call.item[0].key} | {t[0].key for t in queue if t[0].generator.name == name}, text)
        for ref, other in list(calls.items()):
            if other.kind == "shard" and other.item[0].generator.name == name:
                del calls[ref]
                failed[other.item[0].key] = text
                progress.total -= 1
                replace(other.actor)
        replace(call.actor)
        status(f"[sample] {text}")

    try:
        while queue or any(c.kind != "start" for c in calls.values()):
            while free and (work := next_work(free[-1])):
                actor, (kind, item) = free.pop(), work
                ref = actor.prepare.remote(item) if kind == "prepare" else \
                    actor.sample_shard.remote(item[0], item[1], item[2], cfg.batch_size)
                calls[ref] = _Call(kind, actor, item)
                holds[actor] = item.name if kind == "prepare" else item[0].generator.name
            if not calls:
                text = f"no sampler actor is left to run it ({lost})"
                fail({t[0].key for t in queue}, text)
                status(f"[sample] {text}")
                break
            ready, _ = ray.wait(list(calls), num_returns=1, timeout=STOP_POLL_S)
            if stop.is_set():
                raise SamplingStopped("sampling stopped: the sweep was interrupted")
            if not ready and time.monotonic() - news < HEARTBEAT_S:
                continue
            news = time.monotonic()
            if not ready:
                now = time.monotonic()
                busy = sorted(calls.values(), key=lambda c: c.since)
                status(progress.line(note="waiting for " + ", ".join(c.describe(now) for c in busy[:4])
                                     + (f" and {len(busy) - 4} more" if len(busy) > 4 else "")))
                continue
            call = calls.pop(ready[0])
            set_failed = call.kind == "shard" and call.item[0].key in failed
            try:
                value = ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 - reported per generator or sample set, the rest go on
                text = error_text(err)
                if call.kind == "start":
                    lost = text
                    continue
                if isinstance(err, ray.exceptions.RayActorError):
                    lost = text
                    start_actor()
                    if set_failed or retry(call, text):
                        continue
                elif isinstance(err, SamplingTimeout):
                    hung(call, text)
                    progress.advance()
                    continue
                else:
                    free.append(call.actor)
                if call.kind == "prepare":
                    fail({t[0].key for t in queue if t[0].generator.name == call.item.name}, text)
                    status(f"[sample] generator {call.item.name!r} failed: {text}")
                else:
                    fail({call.item[0].key}, text)
                    status(f"[sample] {call.item[0].label} failed: {text}")
                    progress.advance()
                continue
            free.append(call.actor)
            if call.kind == "prepare":
                prepared.add(call.item.name)
                times.prepare_seconds[call.item.name] = time.monotonic() - call.since
            elif call.kind == "shard" and not set_failed:
                sample_set = call.item[0]
                partial[sample_set.key].append(value)
                times.add_shard(sample_set.key, len(call.item[2]), time.monotonic() - call.since)
                images_done += len(call.item[2])
                progress.advance(note=f"{images_done / max(time.monotonic() - started, 1e-9):.0f} images/s")
                left[sample_set.key] -= 1
                if not left[sample_set.key]:
                    whole(sample_set)
    finally:
        for actor in actors:
            ray.kill(actor)
