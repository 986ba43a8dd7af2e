"""Shard formats at 128 px: bytes per image and decode throughput per core, all lossless.

Run: ``PYTHONPATH=. .venv/bin/python bench/bench_shard_format.py [--n 512] [--size 128]``

The images are synthetic but shaped like natural photographs and generator samples: a
1/f-like sum of smooth random colour fields (octaves at 4, 8, 16 and 32 px upsampled
bicubically to the image size, amplitude halving per octave), a few hard-edged shapes
(ellipses and rectangles) and Gaussian pixel noise of standard deviation σ (σ = 2: clean
renderings; σ = 6: grainy, like GAN texture or high-ISO photographs), clipped to uint8.

Every codec decodes a whole shard (``--n`` images) to uint8 N×C×H×W, the array the
trainer takes; the decoded pixels must equal the originals. Throughput is images per
second of CPU time of this single thread (``time.thread_time``), so it is per core and
does not depend on what else the (shared) machine runs; best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import time
from collections.abc import Callable

import numpy as np
import zstandard
from PIL import Image, ImageDraw

from harness.shards import ZSTD_LEVEL, decode_shard, encode_shard


def synthetic_images(n: int, size: int, noise: float, seed: int) -> np.ndarray:
    """n images (uint8 N×3×H×W): smooth multi-octave colour fields, a few shapes, pixel noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        img = np.full((size, size, 3), 128.0)
        for octave, amplitude in ((4, 60.0), (8, 30.0), (16, 15.0), (32, 8.0)):
            field = rng.normal(0, amplitude, (octave, octave, 3)).astype(np.float32)
            layers = [np.asarray(Image.fromarray(field[..., c], mode="F").resize((size, size), Image.BICUBIC))
                      for c in range(3)]
            img += np.stack(layers, -1)
        canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(rng.integers(1, 5)):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 8, size // 2, 2)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + w, y0 + h), fill=colour)
        pixels = np.asarray(canvas, np.float32) + rng.normal(0, noise, (size, size, 3))
        out[i] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return out


def per_image(fmt: str, **options) -> tuple[Callable[[np.ndarray], list[bytes]], Callable[[list[bytes]], np.ndarray]]:
    """Encoder and decoder of a shard as one image file per image (PIL, lossless)."""
    def encode(images: np.ndarray) -> list[bytes]:
        files = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img.transpose(1, 2, 0)).save(buf, format=fmt, **options)
            files.append(buf.getvalue())
        return files

    def decode(files: list[bytes]) -> np.ndarray:
        first = np.asarray(Image.open(io.BytesIO(files[0])))
        out = np.empty((len(files), first.shape[2], *first.shape[:2]), np.uint8)
        for i, data in enumerate(files):
            with Image.open(io.BytesIO(data)) as img:
                out[i] = np.asarray(img).transpose(2, 0, 1)
        return out

    return encode, decode


def zstd_array(level: int, up: bool) -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]:
    """zstd on the whole array as one frame, optionally after the "up" filter (row minus the row above)."""
    shape: list[tuple[int, ...]] = []

    def encode(images: np.ndarray) -> bytes:
        shape[:] = [images.shape]
        residual = images.copy()
        if up:
            residual[..., 1:, :] -= images[..., :-1, :]
        return zstandard.ZstdCompressor(level=level).compress(residual.tobytes())

    def decode(data: bytes) -> np.ndarray:
        images = np.frombuffer(zstandard.ZstdDecompressor().decompress(data), np.uint8).reshape(shape[0])
        if up:
            images = images.copy()
            for row in range(1, images.shape[-2]):
                images[..., row, :] += images[..., row - 1, :]
        return images

    return encode, decode


def harness_codec(codec: str) -> tuple[Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]:
    """A codec of ``harness.shards``, through its real encoder and decoder (labels included)."""
    def encode(images: np.ndarray) -> bytes:
        return encode_shard(images, np.zeros(len(images), np.int64), codec=codec)

    def decode(data: bytes) -> np.ndarray:
        return decode_shard(data, codec)[0]

    return encode, decode


def size_of(encoded: bytes | list[bytes]) -> int:
    return len(encoded) if isinstance(encoded, bytes) else sum(len(b) for b in encoded)


def cpu_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    """Images per CPU-second of this thread, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="images per shard")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    codecs: dict[str, tuple[Callable, Callable]] = {
        "npz (uncompressed, today)": harness_codec("npz"),
        **{f"zstd-{lv} on the array": zstd_array(lv, up=False) for lv in (1, 3, 9, 19)},
        f"zstd-up, level {ZSTD_LEVEL} (harness default)": harness_codec("zstd-up"),
        **{f"zstd-up, level {lv}": zstd_array(lv, up=True) for lv in (3, 9, 19)},
        "PNG per image (level 6)": per_image("PNG", compress_level=6),
        "PNG per image (level 1)": per_image("PNG", compress_level=1),
        "WebP lossless per image (method 4)": per_image("WEBP", lossless=True, quality=100, method=4),
    }
    print(f"# {args.n} images of 3×{args.size}×{args.size} per shard; {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, zstandard {zstandard.__version__}, Pillow {Image.__version__}")
    for noise in (2.0, 6.0):
        images = synthetic_images(args.n, args.size, noise, seed=0)
        raw = images[0].nbytes
        print(f"\n## σ = {noise:g} ({raw:,} raw bytes per image)\n")
        print("| format | bytes/image | of raw | encode img/s/core | decode img/s/core | decode + SHA-256 img/s/core |")
        print("|---|---|---|---|---|---|")
        for name, (encode, decode) in codecs.items():
            start = time.thread_time()
            encoded = encode(images)
            encode_rate = args.n / (time.thread_time() - start)
            if not np.array_equal(decode(encoded), images):
                raise AssertionError(f"{name} is not lossless")
            blob = encoded if isinstance(encoded, bytes) else b"".join(encoded)
            size = size_of(encoded)
            rate = cpu_rate(lambda encoded=encoded, decode=decode: decode(encoded), args.n, args.repeats)
            checked = cpu_rate(lambda encoded=encoded, decode=decode, blob=blob: (
                hashlib.sha256(blob).digest(), decode(encoded)), args.n, args.repeats)
            print(f"| {name} | {size / args.n:,.0f} | {size / args.n / raw:.2f} | {encode_rate:,.0f} | "
                  f"{rate:,.0f} | {checked:,.0f} |")


if __name__ == "__main__":
    main()
