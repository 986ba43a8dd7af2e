"""The report's figures (the paper's Table 2 as curves, Figures 2, 3 and 5), as HTML fragments.

Every figure is drawn by matplotlib on a ``Figure`` of its own (Agg canvas, no pyplot state, no display)
and returned as inline SVG markup, or as an ``<img>`` with a base64 PNG where SVG would be large (image
grids). Colours are the Okabe-Ito palette, which stays distinguishable under the common colour-vision
deficiencies; series beyond its length also differ by marker and line style.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
REAL_STYLE = {"color": "#555555", "linestyle": "--", "linewidth": 1.2}
THUMBNAIL_PX = 64
MIN_SHOWN_PX = 32
MAX_TICK_LABELS = 30


def _series_style(i: int) -> dict[str, Any]:
    cycle = len(OKABE_ITO)
    return {"color": OKABE_ITO[i % cycle], "marker": MARKERS[(i // cycle + i) % len(MARKERS)],
            "linestyle": ("-", "--", ":", "-.")[(i // cycle) % 4]}


def _svg(fig: Figure, title: str) -> str:
    """The figure as inline ``<svg>`` markup: text kept as text (small, searchable), no date stamp or
    RDF metadata block."""
    out = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "cas-report"}):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    svg = out.getvalue()
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg[svg.index("<svg"):], count=1, flags=re.S)
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{html.escape(title)}" ', svg, count=1)


def _png_img(fig: Figure, title: str, dpi: int) -> str:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return png_img_tag(out.getvalue(), title)


def png_img_tag(png: bytes, title: str) -> str:
    """An ``<img>`` carrying the PNG inline as a base64 data URI, so the page stays one file."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'


def figure_block(content: str, caption: str) -> str:
    """A figure fragment wrapped for the page: ``<figure class="figure">`` (the marker the browser test
    looks for) with its caption."""
    return f'<figure class="figure">{content}<figcaption>{html.escape(caption)}</figcaption></figure>'


def knob_label(knobs: Mapping[str, Any]) -> str:
    """``truncation=0.5, guidance_scale=2`` — knob values as a row or legend shows them (unset ones left out)."""
    return ", ".join(f"{k}={_num(v)}" for k, v in sorted(knobs.items()) if v is not None)


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _fid_key(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """``fid`` where rows carry it, else the first ``fd_<extractor>`` key (Fréchet distance in that
    extractor's features)."""
    keys = {k for r in rows for k in r if (k == "fid" or k.startswith("fd_")) and r[k] is not None}
    return next((k for k in ("fid", "fd_inception") if k in keys), min(keys, default=None))


def _fid_label(key: str) -> str:
    return "FID" if key == "fid" else f"FD ({key[3:]})"


def _interval(rows: list[Mapping[str, Any]], key: str) -> tuple[float, float] | None:
    """``<key>_ci`` (low, high) of a point made from a single row; averaged points have none."""
    if len(rows) == 1 and rows[0].get(f"{key}_ci") is not None:
        low, high = rows[0][f"{key}_ci"]
        return float(low), float(high)
    return None


def _real_value(rows: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get("mode") == "real" and r.get(key) is not None]
    return statistics.fmean(values) if values else None


def _series(rows: Sequence[Mapping[str, Any]], mode: str, x_of: Any) -> dict[str, dict[float, list]]:
    """Rows of ``mode`` with a result, grouped by legend label (generator and the knobs not on the x axis),
    then by x value."""
    out: dict[str, dict[float, list]] = {}
    for r in rows:
        if r.get("mode") != mode or r.get("status", "ok") != "ok" or r.get("top1") is None:
            continue
        x, rest = x_of(r)
        if x is None:
            continue
        label = r["generator"] + (f" ({text})" if (text := knob_label(rest)) else "")
        out.setdefault(label, {}).setdefault(float(x), []).append(r)
    return out


def _plot_series(ax: Any, points: dict[float, list], key: str, style: dict[str, Any], label: str,
                 scale: float = 1.0, spread_key: str | None = None) -> None:
    """One curve with error bars: the row's ``<key>_ci`` interval, else ± its ``spread_key`` (IS std)."""
    xs = sorted(x for x, rs in points.items() if any(r.get(key) is not None for r in rs))
    if not xs:
        return
    ys, below, above = [], [], []
    for x in xs:
        rs = points[x]
        y = statistics.fmean([r[key] for r in rs if r.get(key) is not None])
        bounds = _interval(rs, key)
        if bounds is None and spread_key and len(rs) == 1 and rs[0].get(spread_key) is not None:
            bounds = (y - rs[0][spread_key], y + rs[0][spread_key])
        ys.append(scale * y)
        below.append(scale * (y - bounds[0]) if bounds else 0.0)
        above.append(scale * (bounds[1] - y) if bounds else 0.0)
    errors = [below, above] if any(below) or any(above) else None
    ax.errorbar(xs, ys, yerr=errors, label=label, markersize=4, linewidth=1.5, capsize=2.5, **style)


def _finish(fig: Figure, axes: Sequence[Any], title: str, legend_rows: int) -> None:
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06 * legend_rows, 1, 1))


def knob_curves(rows: Sequence[Mapping[str, Any]], knob: str, fid_key: str | None = None) -> str:
    """CAS Top-1, IS and FID of each generator against one swept sampling knob, as three small multiples
    (the paper's Table 2 as a figure: Top-1 falls where IS rises).

    ``rows``: records or summary rows with ``generator``, ``mode``, ``knobs`` (name → value), ``top1``,
    and where measured ``top1_ci`` (low, high), ``is_mean``, ``is_std``, ``fid`` or ``fd_<extractor>``.
    Only ``mode == "cas"`` rows with ``knob`` among their knobs are plotted; rows that differ in another knob
    are separate curves; rows at the same point (seeds) are averaged. A ``mode == "real"`` row gives the
    Real Top-1 line. Returns ``<svg>`` markup.
    """
    fid_key = fid_key or _fid_key(rows)
    series = _series(rows, "cas", lambda r: ((r.get("knobs") or {}).get(knob),
                                             {k: v for k, v in (r.get("knobs") or {}).items() if k != knob}))
    panels = [("CAS Top-1 (%)", "top1", 100.0, None), ("Inception Score", "is_mean", 1.0, "is_std")]
    if fid_key:
        panels.append((_fid_label(fid_key) + "\nlower is better", fid_key, 1.0, None))
    fig = Figure(figsize=(3.2 * len(panels), 3.0 + 0.25 * math.ceil(len(series) / 4)))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ylabel, key, scale, spread) in zip(axes, panels, strict=True):
        for i, (label, points) in enumerate(series.items()):
            _plot_series(ax, points, key, _series_style(i), label, scale, spread)
        if key == "top1" and (real := _real_value(rows, "top1")) is not None:
            ax.axhline(100 * real, label="Real", **REAL_STYLE)
        ax.set_xlabel(knob)
        ax.set_ylabel(ylabel)
        if not ax.has_data():
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="#888888")
    title = f"CAS, IS and FID against {knob}"
    _finish(fig, axes, title, math.ceil((len(series) + 1) / 4))
    return _svg(fig, title)


def nas_curves(rows: Sequence[Mapping[str, Any]]) -> str:
    """NAS Top-1 and Top-5 against the augmentation ratio (synthetic samples per real training image),
    one curve per generator and knob values, Real-only as a horizontal line (the paper's Figure 5).

    ``rows``: records or summary rows with ``generator``, ``mode``, ``knobs``, ``augmentation_ratio``,
    ``top1``, ``top5`` (and optionally ``top1_ci``/``top5_ci``); ``mode == "nas"`` rows are the curves,
    ``mode == "real"`` rows the baseline. Returns ``<svg>`` markup.
    """
    series = _series(rows, "nas", lambda r: (r.get("augmentation_ratio"), r.get("knobs") or {}))
    fig = Figure(figsize=(7.0, 3.2 + 0.25 * math.ceil(len(series) / 4)))
    axes = fig.subplots(1, 2)
    for ax, (name, key) in zip(axes, (("Top-1", "top1"), ("Top-5", "top5")), strict=True):
        for i, (label, points) in enumerate(series.items()):
            _plot_series(ax, points, key, _series_style(i), label, 100.0)
        if (real := _real_value(rows, key)) is not None:
            ax.axhline(100 * real, label="Real only", **REAL_STYLE)
        ax.set_xlabel("augmentation ratio (synthetic / real)")
        ax.set_ylabel(f"NAS {name} (%)")
    title = "Naive Augmentation Score: real data plus samples"
    _finish(fig, axes, title, math.ceil((len(series) + 1) / 4))
    return _svg(fig, title)


def class_counts(real_per_class: Sequence[float | None], per_class: Sequence[float | None]) -> dict[str, int]:
    """Classes where the generator's CAS classifier matches or beats Real, and classes it never gets
    right (0%); a class without a measurement (``None``) is in neither."""
    at_or_above = sum(1 for r, g in zip(real_per_class, per_class, strict=True)
                      if r is not None and g is not None and g >= r)
    return {"at_or_above_real": at_or_above, "at_zero": sum(1 for g in per_class if g == 0)}


def per_class_curves(real_per_class: Sequence[float | None], generators: Mapping[str, Sequence[float | None]],
                     class_names: Sequence[str]) -> tuple[str, dict[str, dict[str, int]]]:
    """Per-class accuracy of each generator's CAS classifier with classes sorted by Real's accuracy,
    one curve each and Real on top (the paper's Figure 2), and per generator the counts of classes at
    or above Real and at 0% (see ``class_counts``).

    ``real_per_class`` and each of ``generators``' values: accuracy in [0, 1] per class index, ``None``
    where the class was not measured. Returns (``<svg>`` markup, {generator: counts}).
    """
    n = len(class_names)
    for name, values in [("Real", real_per_class), *generators.items()]:
        if len(values) != n:
            raise ValueError(f"per-class accuracy of {name!r} has {len(values)} entries; expected one per "
                             f"class ({n})")
    order = sorted(range(n), key=lambda i: (real_per_class[i] is None, -(real_per_class[i] or 0.0)))
    counts = {name: class_counts(real_per_class, values) for name, values in generators.items()}
    fig = Figure(figsize=(7.5, 3.6 + 0.25 * math.ceil(len(generators) / 3)))
    ax = fig.add_subplot()
    xs = np.arange(n)
    dense = n > 60

    def curve(values: Sequence[float | None]) -> np.ndarray:
        return np.array([np.nan if values[i] is None else 100 * values[i] for i in order])

    for i, (name, values) in enumerate(generators.items()):
        style = _series_style(i)
        c = counts[name]
        label = f"{name}: {c['at_or_above_real']} ≥ Real, {c['at_zero']} at 0%"
        ax.plot(xs, curve(values), color=style["color"], linestyle=style["linestyle"], linewidth=1.0 if dense else 1.4,
                marker=None if dense else style["marker"], markersize=3, label=label, alpha=0.9)
    ax.plot(xs, curve(real_per_class), color="#222222", linewidth=2.0, label="Real")
    ax.set_ylim(-3, 103)
    ax.set_ylabel("per-class accuracy (%)")
    if n <= MAX_TICK_LABELS:
        ax.set_xticks(xs, [class_names[i] for i in order], rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("class (sorted by Real accuracy)")
    else:
        ax.set_xlabel(f"{n} classes, sorted by Real accuracy")
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", fontsize=7, frameon=True, framealpha=0.85)
    title = "Per-class accuracy: classifiers trained on samples against Real"
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return _svg(fig, title), counts


def best_and_worst_classes(real_per_class: Sequence[float | None], per_class: Sequence[float | None],
                           k: int = 5) -> tuple[list[int], list[int]]:
    """The ``k`` classes where a generator's CAS classifier is closest to (or above) Real and the ``k``
    furthest below it (0% classes first among equal gaps), by class index."""
    gaps = sorted(((g - r, g, i) for i, (r, g) in enumerate(zip(real_per_class, per_class, strict=True))
                   if r is not None and g is not None))
    worst = [i for _, _, i in gaps[:k]]
    best = [i for _, _, i in reversed(gaps[len(worst):][-k:])]
    return best, worst


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (C, H, W), (H, W, C) or (H, W) → (H, W, 3)."""
    a = np.asarray(image, dtype=np.uint8)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3): area-averaged down from a larger image, pixels repeated up from a smaller one."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(_rgb(image)))
    if img.size == (size, size):
        return np.asarray(img)
    enlarge = size > min(img.size)
    return np.asarray(img.resize((size, size), Image.Resampling.NEAREST if enlarge else Image.Resampling.BOX))


def _column(images: np.ndarray, n: int, size: int) -> np.ndarray:
    tiles = [_thumbnail(img, size) for img in list(images)[:n]]
    tiles += [np.full((size, size, 3), 255, np.uint8)] * (n - len(tiles))
    return np.concatenate(tiles, axis=0)


def class_image_grid(real_images: Mapping[int, np.ndarray], sample_images: Mapping[int, np.ndarray],
                     class_names: Sequence[str], best: Sequence[int], worst: Sequence[int],
                     real_per_class: Sequence[float | None] | None = None,
                     per_class: Sequence[float | None] | None = None, generator: str = "generator",
                     per_class_images: int = 3, thumbnail: int = THUMBNAIL_PX) -> str:
    """A generator's best and worst classes as image columns: real images above, its samples below
    (the paper's Figure 3), each column captioned with the class and, where given, Real's and the
    generator's accuracy on it.

    ``real_images``/``sample_images``: class index → uint8 images (N, C, H, W) or (N, H, W, C); the first
    ``per_class_images`` of each are shown as ``thumbnail`` px squares (at most 64, so a 1,000-class
    report stays a few MB; images under 32 px are enlarged to 32 px by repeating pixels, so 8×8 digits can be
    seen). Returns an ``<img>`` with the grid as an inline PNG.
    """
    if not 8 <= thumbnail <= THUMBNAIL_PX:
        raise ValueError(f"thumbnail size {thumbnail} px: expected 8 to {THUMBNAIL_PX}")
    columns = [("best", i) for i in best] + [("worst", i) for i in worst]
    if not columns:
        raise ValueError(f"image grid of {generator}: no classes given (best and worst are empty)")
    for _, i in columns:
        for what, images in (("real images", real_images), (f"samples of {generator}", sample_images)):
            if i not in images:
                raise ValueError(f"class {i} ({class_names[i]}) is shown but has no {what}")
    source = min(min(_rgb(images[i][0]).shape[:2]) for _, i in columns for images in (real_images, sample_images))
    size = min(thumbnail, max(source, MIN_SHOWN_PX))
    n, gap = per_class_images, 6
    white = 255
    blocks = []
    for _, i in columns:
        col = np.concatenate([_column(real_images[i], n, size), np.full((gap, size, 3), white, np.uint8),
                              _column(sample_images[i], n, size)], axis=0)
        blocks += [col, np.full((col.shape[0], 2, 3), white, np.uint8)]
    split = 2 * len(best)
    if best and worst:
        blocks.insert(split, np.full((blocks[0].shape[0], 3 * gap, 3), white, np.uint8))
    mosaic = np.concatenate(blocks[:-1], axis=1)
    height, width = mosaic.shape[:2]
    dpi, left, top, bottom = 100, 60, 28, 62
    fig = Figure(figsize=((width + left + 8) / dpi, (height + top + bottom) / dpi), dpi=dpi)
    total_w, total_h = width + left + 8, height + top + bottom
    ax = fig.add_axes((left / total_w, bottom / total_h, width / total_w, height / total_h))
    ax.imshow(mosaic, interpolation="nearest")
    centres, labels, x = [], [], 0
    for k, (_, i) in enumerate(columns):
        if k == len(best) and best:
            x += 3 * gap
        centres.append(x + size / 2)
        accuracy = ""
        if real_per_class is not None and per_class is not None:
            accuracy = f"\n{_pct(real_per_class[i])} / {_pct(per_class[i])}"
        labels.append(_short(class_names[i]) + accuracy)
        x += size + 2
    ax.set_xticks(centres, labels, fontsize=6, rotation=0 if size >= 48 else 45)
    ax.set_yticks([n * size / 2, n * size + gap + n * size / 2], ["real", generator], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for name, cols in (("best classes", columns[:len(best)]), ("worst classes", columns[len(best):])):
        if cols:
            first = centres[columns.index(cols[0])] - size / 2
            last = centres[columns.index(cols[-1])] + size / 2
            ax.text((first + last) / 2, -6, name, ha="center", va="bottom", fontsize=8)
    title = f"{generator}: best and worst classes relative to Real"
    caption = "accuracy: Real / generator (%)" if per_class is not None else ""
    fig.text(0.01, 0.01, caption, fontsize=6, color="#555555")
    return _png_img(fig, title, dpi)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}"


def _short(name: str, limit: int = 12) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
