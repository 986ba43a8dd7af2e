"""Run folders: a sweep's state in its ``run.json``, and cleaning up after killed sweeps.

A sweep writes ``runs/<name>-<time>/run.json`` when it starts (``status: running`` and the
stage it is in, updated as it goes) and holds a lease on the folder while it runs. It ends
``complete``, or ``incomplete`` with ``interrupted_at_stage`` and ``reason`` when it was
interrupted or failed part-way (its results and report then cover what finished). A sweep
killed outright cannot say so; its folder still reads ``running`` while its lease goes
stale, and :func:`killed_runs` (called by every sweep and by ``harness clean``) marks it
``incomplete``.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from harness.lease import Lease, current_lease
from harness.progress import format_seconds
from harness.store import Store

RUNS = "runs"
RUN_JSON = "run.json"


def read_state(store: Store, folder: str) -> dict[str, Any]:
    """A run folder's ``run.json`` ({} when missing or unreadable)."""
    try:
        state = store.read_json(folder, RUN_JSON)
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def update_state(store: Store, folder: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the run's ``run.json`` (whoever else writes it keeps their fields)."""
    state = {**read_state(store, folder), **fields}
    store.write_json(state, folder, RUN_JSON)
    return state


def start_run(store: Store, folder: str) -> tuple[str, Lease]:
    """Claim a new run folder (``folder``, or ``folder-2``… when a sweep of the same name
    started in the same second) and mark it running; returns the folder and its lease."""
    for n in range(1, 1000):
        name = folder if n == 1 else f"{folder}-{n}"
        if current_lease(store, name) is not None or store.exists(name, RUN_JSON):
            continue
        lease = Lease.try_acquire(store, name)
        if lease is None:
            continue
        if lease.generation == 0:
            update_state(store, name, status="running", stage="prepare", started=time.time(),
                         host=socket.gethostname(), pid=os.getpid())
            return name, lease
        lease.release(note="another sweep took this name")
    raise RuntimeError(f"no free run folder name near {store.path(folder)}")


def _now() -> str:
    """The local time in ISO 8601 with its UTC offset, as run.json's ``date`` is written."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def set_stage(store: Store, folder: str, stage: str) -> None:
    update_state(store, folder, stage=stage)


def finish_run(store: Store, folder: str, lease: Lease, *, stage: str | None = None, reason: str | None = None,
               earlier: dict[str, Any] | None = None, stage_seconds: dict[str, float] | None = None,
               stage_starts: dict[str, float] | None = None, sampling: dict[str, Any] | None = None) -> None:
    """Mark the run complete (written last, after every other file), or incomplete at ``stage``
    for ``reason``, with its time per stage, when each started (seconds after the sweep began;
    sampling and training overlap) and where sampling's time went
    (:meth:`harness.sample.SamplingTimes.to_dict`), and release its lease.

    ``earlier`` is the state read before the report rewrote ``run.json``: its start time,
    host and process are kept."""
    kept = {k: v for k, v in (earlier or {}).items() if k in ("started", "host", "pid")}
    seconds = {k: round(float(v), 2) for k, v in (stage_seconds or {}).items()}
    starts = {k: round(float(v), 2) for k, v in (stage_starts or {}).items()}
    timing = {"stage_seconds": seconds, "stage_starts": starts, **({"sampling": sampling} if sampling else {})}
    if stage is None:
        update_state(store, folder, **kept, **timing, status="complete", finished=_now())
    else:
        update_state(store, folder, **kept, **timing, status="incomplete", interrupted_at_stage=stage,
                     reason=reason, finished=_now())
    lease.release(note=reason or "")


@dataclass(frozen=True)
class RunInfo:
    """A run folder as ``harness clean`` sees it."""

    folder: str
    status: str
    stage: str | None
    started: float | None

    def describe(self, now: float | None = None) -> str:
        age = "" if self.started is None else f", started {format_seconds((now or time.time()) - self.started)} ago"
        at = f" at stage {self.stage}" if self.stage else ""
        return f"{self.folder}: {self.status}{at}{age}"


def list_runs(store: Store) -> list[RunInfo]:
    """Every run folder with its status; a ``running`` one whose lease is gone or stale is
    reported (not yet marked) as ``killed``."""
    out = []
    for name in store.list(RUNS):
        folder = f"{RUNS}/{name}"
        state = read_state(store, folder)
        status = state.get("status") or ("complete" if store.exists(folder, "results.json") else "incomplete")
        stage = None if status == "complete" else state.get("interrupted_at_stage") or state.get("stage")
        if status == "running":
            lease = current_lease(store, folder)
            if lease is None or lease.is_free():
                status = "killed"
        started = state.get("started")
        started = float(started) if isinstance(started, int | float) else _stamp(name)
        out.append(RunInfo(folder, status, stage, started))
    return out


def _stamp(name: str) -> float | None:
    """The start time in a run folder's name (``<name>-%Y%m%d-%H%M%S``, local time), if any."""
    match = re.search(r"-(\d{8}-\d{6})(?:-\d+)?$", name)
    try:
        return time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S")) if match else None
    except ValueError:
        return None


def killed_runs(store: Store) -> list[RunInfo]:
    """Mark every run whose sweep was killed ``incomplete`` (at the stage it had reached)."""
    killed = [r for r in list_runs(store) if r.status == "killed"]
    for run in killed:
        update_state(store, run.folder, status="incomplete", interrupted_at_stage=run.stage,
                     reason="killed: its sweep stopped without finishing")
    return killed


def remove_run(store: Store, folder: str) -> None:
    """Delete a run folder and its lease."""
    for path in (folder, f"leases/{folder}"):
        if store.exists(path):
            store.fs.rm(store._fs_path(path), recursive=True)
