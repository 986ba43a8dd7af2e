"""A run folder in the store: what a sweep writes there, how its report is (re)built, and the store's
leaderboard over every run folder.

A run folder ``runs/<name>-<time>/`` holds ``run.json`` (the run's info: dataset and split, class names,
protocol fields, provenance, time per stage, and ``status``: ``incomplete`` from the start, ``complete``
once everything is written), ``results.json`` (the records), ``config.yaml``, and the views made from them:
``results.csv``, ``per_class.csv``, ``report.md`` and ``report.html``. :func:`build_report` makes the views
from run.json, results.json and (for image grids and comparisons) shards and predictions in the store, and
nothing else, so rebuilding a report recomputes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from harness.data.readers import cas_split_name
from harness.progress import format_seconds
from harness.report.aggregate import class_extremes, per_class_csv, results_csv, summarize, table_lines
from harness.report.compare import correctness, mark_ties
from harness.report.leaderboard import (
    PROTOCOL_FIELDS,
    leaderboard,
    leaderboard_csv,
    leaderboard_html,
    leaderboard_markdown,
)
from harness.report.provenance import collect_provenance, stage_wall
from harness.report.records import Record
from harness.report.render import render_html, render_markdown
from harness.runs import update_state
from harness.shards import ShardError, ShardSet
from harness.store import Store

if TYPE_CHECKING:
    from harness.classify.recipes import Recipe
    from harness.config import SweepConfig
    from harness.data import RealData
    from harness.plan import Cell

RUN_INFO = "run.json"
RESULTS = "results.json"
LEADERBOARD_FILES = ("leaderboard.html", "leaderboard.md", "leaderboard.csv")
GRID_IMAGES = 3


def now() -> str:
    """The local time in ISO 8601 with its UTC offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def split_run(run: str) -> tuple[Store, str]:
    """A run folder given as a path or URI (``<store>/runs/<name>``) → its store and its folder in the store."""
    text = run.rstrip("/") if "://" in run else str(Path(run).expanduser().resolve())
    root, sep, name = text.rpartition("/runs/")
    if not sep or not name or "/" in name:
        raise ValueError(f"{run}: expected a run folder, <store>/runs/<name> (as `harness sweep` prints it)")
    return Store.open(root), f"runs/{name}"


def load_run(store: Store, folder: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A run's records (checked to be of this harness's record version) and its info."""
    where = store.path(folder)
    for name in (RUN_INFO, RESULTS):
        if not store.exists(folder, name):
            raise FileNotFoundError(f"{where}/{name} does not exist: not a run folder, or a run that stopped "
                                    f"before writing its results")
    try:
        records = [Record.from_dict(d).to_dict() for d in store.read_json(folder, RESULTS)]
    except ValueError as err:
        raise ValueError(f"{where}/{RESULTS}: {err}") from None
    return records, store.read_json(folder, RUN_INFO)


def run_info(store: Store, folder: str, config: SweepConfig, real: RealData) -> dict[str, Any]:
    """What every view of the run needs to know besides the records (dataset, test split and its size,
    class names, generator specs); its status is ``harness.runs``' to keep."""
    info = {"run": store.path(folder), "name": config.name, "date": now(),
            "dataset": real.key, "class_names": list(real.class_names), "image_shape": list(real.image_shape),
            "n_train": real.n_train, "train_folder": real.train.folder, "test_folder": real.val.folder,
            "test_split": cas_split_name(config.dataset), "n_val": int(real.val.manifest()["n"]),
            "recipe": config.classifier.recipe, "seeds": list(config.seeds),
            "augmentation_ratios": list(config.augmentation_ratios),
            "metrics_max_samples": config.metrics.max_samples,
            "generators": {g.name: {"kind": g.kind, "params": g.params, "truncation_mode": g.truncation_mode}
                           for g in config.generators}}
    return info


def extractor_weights(records: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """SHA-256 of each feature extractor's weights by extractor name, as the records carry them (None for
    random test weights; for the domain extractor, the checksum of the real-data classifier)."""
    out: dict[str, str | None] = {}
    for r in records:
        names = r.get("extractor_names") or {}
        for kind, sha in (r.get("extractor_weights") or {}).items():
            out[names.get(kind, kind)] = sha
    return dict(sorted(out.items()))


def store_keys(real: RealData, cells: Sequence[Cell], recipe: Recipe) -> dict[str, str]:
    """What the run read and wrote, by store key: the dataset, every sample set and every trial."""
    sets = {c.sample_set.key: c.sample_set for c in cells if c.sample_set}
    return {"dataset": real.key, **{f"samples {s.label}": key for key, s in sets.items()},
            **{f"trial {c.label}": c.trial_key(real, recipe) for c in cells}}


def describe_run(info: Mapping[str, Any], store: Store, records: Sequence[Mapping[str, Any]], config: SweepConfig,
                 config_text: str, keys: Mapping[str, str], stage_seconds: Mapping[str, float],
                 stage_starts: Mapping[str, float]) -> dict[str, Any]:
    """The run's info with what the grid produced: sizes of the measured sample sets and the provenance
    (config, code, libraries, hardware, seeds, store keys, extractor weights' checksums, time per stage so
    far). The extractors and their checksums, protocol fields of the leaderboard, are in every record."""
    folders = sorted({r["sample_set"] for r in records if r.get("sample_set")})
    sizes = {}
    for folder in folders:
        with contextlib.suppress(ShardError, FileNotFoundError):
            sizes[folder] = int(ShardSet(store, folder).manifest()["n"])
    weights = extractor_weights(records)
    provenance = collect_provenance(config_text, keys, weights, stage_seconds, config.seeds, stage_starts)
    return {**info, "set_sizes": sizes, "feature_extractors": sorted(weights), "extractor_weights": weights,
            "provenance": provenance}


class StageTimer:
    """Wall-clock seconds per named stage and when each first started (seconds after the timer was made).
    Stages may run at once (sampling and training do), each timed in its own thread."""

    def __init__(self) -> None:
        self.origin = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.starts: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        self.starts.setdefault(name, start - self.origin)
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - start


def stage_table(seconds: Mapping[str, float], starts: Mapping[str, float]) -> list[str]:
    """When each stage started, its time and its share of the wall, as lines of a table."""
    wall = stage_wall(seconds, starts) or 1.0
    lines = [f"{'stage':<10} {'starts':>8} {'time':>8} {'share':>6}"]
    lines += [f"{name:<10} {format_seconds(starts[name]):>8} {format_seconds(s):>8} {100 * s / wall:>5.0f}%"
              for name, s in sorted(seconds.items(), key=lambda kv: starts[kv[0]])]
    spans = sorted((starts[name], starts[name] + s) for name, s in seconds.items())
    overlap = any(later[0] < earlier[1] - 1 for earlier, later in zip(spans, spans[1:], strict=False))
    note = " (the wall: stages that overlap ran at once)" if overlap else ""
    return lines + [f"{'total':<10} {'':>8} {format_seconds(wall):>8}{note}"]


def shard_labels(store: Store, folder: str) -> np.ndarray:
    """The labels of a shard set in its order (the order predictions are kept in), read without the images,
    each shard's label histogram checked against its manifest."""
    shards = ShardSet(store, folder)
    out = []
    for entry in shards.manifest()["shards"]:
        with fsspec.open(store.path(folder, entry["name"]), "rb") as f, np.load(f, allow_pickle=False) as npz:
            labels = npz["labels"]
        if np.bincount(labels, minlength=len(entry["counts"])).tolist() != entry["counts"]:
            raise ShardError(f"shard {shards.uri}/{entry['name']}: its labels do not match the class counts in its "
                             f"manifest")
        out.append(labels)
    return np.concatenate(out)


def class_images(store: Store, folder: str, classes: Sequence[int], per_class: int) -> dict[int, np.ndarray]:
    """Up to ``per_class`` images of each class from a shard set, reading only shards that hold a class still
    short of images (the manifest's per-shard counts say which)."""
    shards = ShardSet(store, folder)
    need = {c: per_class for c in classes}
    got: dict[int, list[np.ndarray]] = {c: [] for c in classes}
    for entry in shards.manifest()["shards"]:
        if not any(n > 0 and entry["counts"][c] > 0 for c, n in need.items()):
            continue
        images, labels = shards.read_shard(entry)
        for c, n in need.items():
            if n > 0:
                picked = images[labels == c][:n]
                got[c].append(picked)
                need[c] -= len(picked)
        if not any(need.values()):
            break
    return {c: np.concatenate(parts) for c, parts in got.items() if parts and sum(map(len, parts))}


def image_grids(store: Store, rows: Sequence[Mapping[str, Any]], info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """:func:`class_extremes` with a few real train images and samples of each class shown; ``error`` instead
    where the shards are no longer in the store."""
    grids = class_extremes(rows, len(info["class_names"]))
    for grid in grids:
        classes = grid["best"] + grid["worst"]
        try:
            grid["real_images"] = class_images(store, info["train_folder"], classes, GRID_IMAGES)
            grid["sample_images"] = class_images(store, grid["row"]["sample_set"], classes, GRID_IMAGES)
        except (ShardError, FileNotFoundError, OSError) as err:
            grid["error"] = f"images not read: {err}"
    return grids


def build_report(store: Store, folder: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write results.csv, per_class.csv, report.md and report.html of a run from its stored records and info;
    returns the summary rows and the records. Reads shards (image grids) and predictions; trains and measures
    nothing."""
    records, info = load_run(store, folder)
    rows = summarize(records, info)
    if any(r.get("predictions") for r in rows):
        labels = shard_labels(store, info["test_folder"])
        mark_ties(rows, lambda row: correctness(store, row["predictions"], labels), labels)
    else:
        mark_ties(rows, None, None)
    names = info["class_names"]
    store.write_text(results_csv(records, names), folder, "results.csv")
    store.write_text(per_class_csv(rows, names), folder, "per_class.csv")
    store.write_text(render_markdown(rows, records, info), folder, "report.md")
    store.write_text(render_html(rows, records, info, image_grids(store, rows, info)), folder, "report.html")
    return rows, records


def write_report(store: Store, folder: str, records: Sequence[Mapping[str, Any]], info: Mapping[str, Any]
                 ) -> list[dict[str, Any]]:
    """Store the run's records and info, then build every view from what was stored (so a sweep's report
    and a rebuilt one are the same) and print the CAS table on stdout."""
    store.write_json(list(records), folder, RESULTS)
    update_state(store, folder, **info)
    rows, stored = build_report(store, folder)
    print("\n".join(["", *table_lines(rows, stored), ""]), flush=True)
    return rows


def collect_runs(store: Store) -> list[dict[str, Any]]:
    """Every run folder under ``runs/`` as the leaderboard reads it: complete runs with their records and
    protocol fields; runs that are incomplete, unreadable or of another record version as incomplete."""
    runs = []
    for name in store.list("runs"):
        folder = f"runs/{name}"
        entry: dict[str, Any] = {"run": store.path(folder), "status": "incomplete", "records": []}
        try:
            info = store.read_json(folder, RUN_INFO)
        except (FileNotFoundError, ValueError):
            runs.append(entry)
            continue
        started = info.get("started")
        entry["date"] = info.get("date") or (datetime.datetime.fromtimestamp(started).astimezone().isoformat(
            timespec="seconds") if isinstance(started, int | float) else "")
        if info.get("status") == "complete":
            try:
                records, info = load_run(store, folder)
            except (FileNotFoundError, ValueError):
                runs.append(entry)
                continue
            filled = [_with_protocol(r, records) for r in records]
            entry.update({k: info.get(k) for k in ("test_split", "image_shape", "generators")},
                         status="complete", records=filled)
        runs.append(entry)
    return runs


def _with_protocol(record: dict[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A failed cell with the protocol fields it never got to measure (training-set size, extractors, sample
    counts) taken from a successful cell of the same mode in its run, so it is listed, as failed, in the
    table of the protocol it was run under."""
    if record["status"] == "ok":
        return record
    like = next((r for r in records if r["status"] == "ok" and r["mode"] == record["mode"]),
                next((r for r in records if r["status"] == "ok"), None))
    if like is None:
        return record
    return {**record, **{k: like.get(k) for k in PROTOCOL_FIELDS if record.get(k) is None and k in like}}


def write_leaderboard(store: Store) -> dict[str, Any]:
    """Merge every run of the store into leaderboard.html, .md and .csv at the store's root."""
    board = leaderboard(collect_runs(store))
    for name, view in zip(LEADERBOARD_FILES, (leaderboard_html, leaderboard_markdown, leaderboard_csv), strict=True):
        store.write_text(view(board), name)
    return board
