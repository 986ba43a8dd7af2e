"""Progress lines for long work: stage, done of total, rate and time left."""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def status(message: str) -> None:
    """A progress or status line: on stderr, so stdout carries only the results. One write per line, so
    the lines of stages that run at once (sampling and training) do not run into each other."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class Progress:
    """Prints ``[stage] done/total unit · rate · ETA`` at most every ``interval`` seconds."""

    def __init__(self, stage: str, total: int, unit: str, interval: float = 2.0) -> None:
        self.stage, self.total, self.unit, self.interval = stage, total, unit, interval
        self.done = 0
        self.start = time.monotonic()
        self._last = float("-inf")

    def line(self, note: str = "") -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"[{self.stage}] {self.done}/{self.total} {self.unit}"]
        if self.done:
            parts.append(f"{rate:.2f} {self.unit}/s" if rate < 10 else f"{rate:.0f} {self.unit}/s")
        if 0 < self.done < self.total and rate > 0:
            parts.append(f"ETA {format_seconds((self.total - self.done) / rate)}")
        elif self.done >= self.total:
            parts.append(f"done in {format_seconds(elapsed)}")
        if note:
            parts.append(note)
        return " · ".join(parts)

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self.done >= self.total or now - self._last >= self.interval:
            self._last = now
            status(self.line(note))
