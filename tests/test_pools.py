"""Fixed sample pools (npz, folder) drawn without replacement across a whole sample stream,
refused before sampling when a class runs short, and read lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import ConfigError, GeneratorConfig
from harness.config_file import parse_config
from harness.data.readers import open_npz_batch
from harness.generators import GeneratorError, build_generator, check_samples
from harness.generators.pools import PoolGenerator, class_positions
from harness.plan import SampleSet, plan_cells, plan_sample_set


def draw(gen: PoolGenerator, s: SampleSet, batch_size: int = 64) -> np.ndarray:
    """A sample set drawn as the sampler draws it: shard by shard, each in batches, through the pool's shard view."""
    out = []
    for index, chunk in enumerate(s.shards()):
        shard = gen.shard(s.stream_seed, chunk, s.pool_positions(index))
        for start in range(0, len(chunk), batch_size):
            labels = torch.from_numpy(chunk[start:start + batch_size])
            out.append(check_samples("pool", shard.sample(labels, None, torch.Generator()), labels, (1, 8, 8)).numpy())
    return np.concatenate(out)


def distinct_pool(path: Path, counts: np.ndarray, seed: int = 0) -> np.ndarray:
    """An npz pool of ``counts[c]`` images of class c, every image different (random 8×8 noise); its labels."""
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 8, 8, 1), dtype=np.uint8)
    np.savez(path, images, labels)
    return labels


def pool_generator(folder: Path, digits_store, counts: np.ndarray) -> tuple[Path, GeneratorConfig, PoolGenerator]:
    """An ``npz`` generator over ``folder/pool.npz``, a :func:`distinct_pool` of ``counts``: path, spec, generator."""
    store, real = digits_store
    path = folder / "pool.npz"
    distinct_pool(path, counts)
    spec = GeneratorConfig(name="pool", kind="npz", params={"path": str(path)})
    return path, spec, build_generator(spec, real, store)


def label_of(images: np.ndarray, path: Path) -> np.ndarray:
    """The pool label of each drawn image, found by its content."""
    pool, labels = open_npz_batch(path, "pool")
    where = {im.tobytes(): i for i, im in enumerate(np.asarray(pool).transpose(0, 3, 1, 2))}
    return labels[[where[im.tobytes()] for im in images]]


def test_class_positions() -> None:
    assert class_positions(np.array([2, 0, 2, 2, 0, 1]), 3).tolist() == [0, 0, 1, 2, 1, 0]


def test_a_pool_as_large_as_the_set_yields_distinct_images_over_shards_and_blocks(tmp_path: Path,
                                                                                     digits_store) -> None:
    _, real = digits_store
    path, spec, gen = pool_generator(tmp_path, digits_store, 2 * np.asarray(real.train_counts))
    knobs = ()
    block0 = plan_sample_set(spec, knobs, 0, real, block=0, shard_size=100)
    block1 = plan_sample_set(spec, knobs, 0, real, block=1, shard_size=100)
    first, second = draw(gen, block0), draw(gen, block1)
    assert len(block0.shards()) == 15
    both = np.concatenate([first, second])
    assert len({im.tobytes() for im in both}) == 2 * real.n_train  # every pool image once, none twice
    labels = np.concatenate([np.concatenate(s.shards()) for s in (block0, block1)])
    assert np.array_equal(label_of(both, path), labels)  # each sample is an image of its class
    # the set's content depends on its stream only, not on how it is cut into shards and batches
    again = draw(gen, plan_sample_set(spec, knobs, 0, real, block=0, shard_size=1000), batch_size=7)
    assert np.array_equal(again, first)
    other_seed = draw(gen, plan_sample_set(spec, knobs, 1, real, block=0, shard_size=1000))
    assert len({im.tobytes() for im in other_seed}) == real.n_train and not np.array_equal(other_seed, first)


def test_the_old_per_call_permutation_repeats_images(tmp_path: Path, digits_store) -> None:
    """What the shard view fixes: ``sample()`` calls are streams of their own, so separate calls repeat images."""
    _, real = digits_store
    _, spec, gen = pool_generator(tmp_path, digits_store, np.asarray(real.train_counts))
    labels = torch.from_numpy(np.concatenate(plan_sample_set(spec, (), 0, real).shards()))
    rng = torch.Generator().manual_seed(0)
    per_call = np.concatenate([gen.sample(labels[i:i + 100], None, rng).numpy() for i in range(0, len(labels), 100)])
    assert len({im.tobytes() for im in per_call}) < 0.8 * len(labels)
    whole = draw(gen, plan_sample_set(spec, (), 0, real, shard_size=100))
    assert len({im.tobytes() for im in whole}) == len(labels)


def test_a_shard_view_takes_its_labels_in_order(tmp_path: Path, digits_store) -> None:
    _, real = digits_store
    _, spec, gen = pool_generator(tmp_path, digits_store, np.asarray(real.train_counts))
    s = plan_sample_set(spec, (), 0, real, shard_size=100)
    shard = gen.shard(s.stream_seed, s.shards()[2], s.pool_positions(2))
    with pytest.raises(GeneratorError, match=r"'pool': labels 0..9 of the shard are not the ones planned"):
        shard.sample(torch.from_numpy(s.shards()[2][1:11]), None, torch.Generator())


def sweep(path: Path, extra: str = "", params: str = "") -> object:
    text = f"""
name: pools
dataset: {{kind: digits}}
generators:
  - {{name: real, kind: real}}
  - {{name: pool, kind: npz, params: {{path: {path}{params}}}}}
classifier: {{recipe: digits-small}}
{extra}
"""
    import yaml

    return parse_config(yaml.safe_load(text), "pools.yaml")


def test_a_short_pool_is_refused_before_sampling(tmp_path: Path, digits_store) -> None:
    store, real = digits_store
    counts = np.asarray(real.train_counts)
    short = counts.copy()
    short[3] -= 1
    path = tmp_path / "short.npz"
    distinct_pool(path, short)
    with pytest.raises(ConfigError, match=rf"generator 'pool' \(npz\): class 3 \('3'\) holds {counts[3] - 1} images, "
                                          rf"but the sweep draws {counts[3]} of it without replacement.*1 classes are "
                                          r"short.*params.allow_reuse: true"):
        plan_cells(sweep(path), real)
    enough = tmp_path / "enough.npz"
    distinct_pool(enough, counts)
    cells = plan_cells(sweep(enough), real)
    assert [c.distinct_fraction for c in cells] == [None, 1.0]
    with pytest.raises(ConfigError, match=rf"class 0 \('0'\) holds {counts[0]} images, but the sweep draws "
                                          rf"{2 * counts[0]} of it .*\(2× its"):
        plan_cells(sweep(enough, "augmentation_ratios: [0.5, 1.5]"), real)


def test_allow_reuse_draws_again_and_records_the_distinct_fraction(tmp_path: Path, digits_store) -> None:
    store, real = digits_store
    counts = np.asarray(real.train_counts)
    half = counts // 2
    path = tmp_path / "half.npz"
    distinct_pool(path, half)
    config = sweep(path, "sample_multiplier: 2", ", allow_reuse: true")
    cells = plan_cells(config, real)
    cas = cells[1]
    assert cas.mode == "cas" and cas.sample_multiplier == 2 and len(cas.sample_sets) == 2
    assert cas.distinct_fraction == pytest.approx(half.sum() / (2 * counts.sum()))
    gen = build_generator(config.generators[1], real, store)
    drawn = np.concatenate([draw(gen, s) for s in cas.sample_sets])
    assert len({im.tobytes() for im in drawn}) == half.sum()  # every pool image, each drawn about four times
    assert np.array_equal(label_of(drawn, path), np.concatenate([np.concatenate(s.shards()) for s in cas.sample_sets]))
    refused = build_generator(sweep(path).generators[1], real, store)
    with pytest.raises(GeneratorError, match=r"class \d holds \d+ images, but sample \d+ of that class is asked for"):
        draw(refused, cas.sample_sets[0])


def test_npz_pools_are_memory_mapped_where_stored_uncompressed(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (30, 5, 4, 3), dtype=np.uint8)
    labels = np.arange(30) % 3
    np.savez(tmp_path / "plain.npz", images, labels)
    np.savez_compressed(tmp_path / "packed.npz", images, labels)
    mapped, mapped_labels = open_npz_batch(tmp_path / "plain.npz", "x")
    loaded, _ = open_npz_batch(tmp_path / "packed.npz", "x")
    assert isinstance(mapped, np.memmap) and not isinstance(loaded, np.memmap)
    assert np.array_equal(mapped, images) and np.array_equal(loaded, images)
    assert np.array_equal(mapped_labels, labels)


def test_a_folder_pool_reads_only_the_files_it_draws(tmp_path: Path, digits_store) -> None:
    from PIL import Image, UnidentifiedImageError

    store, real = digits_store
    for c in real.class_names:
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((16, 16), 10 * int(c) + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    (tmp_path / "7" / "9.png").write_bytes(b"not an image")  # never read unless drawn
    gen = build_generator(GeneratorConfig(name="f", kind="folder", params={"root": str(tmp_path)}), real, store)
    labels = np.array([2, 5, 2, 2])
    out = gen.shard(0, labels, class_positions(labels, 10)).sample(torch.from_numpy(labels), None, torch.Generator())
    assert out.shape == (4, 1, 8, 8)
    assert sorted(int(round(out[i].float().mean().item())) for i in (0, 2, 3)) == [20, 21, 22]
    assert int(round(out[1].float().mean().item())) in (50, 51, 52)
    sevens = np.full(4, 7)
    with pytest.raises(UnidentifiedImageError, match="9.png"):
        gen.shard(0, sevens, class_positions(sevens, 10)).sample(torch.from_numpy(sevens), None, torch.Generator())
