"""Sampling knobs a generator kind or plugin declares (name, inclusive range, default)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    name: str
    low: float
    high: float
    default: float | None
    integer: bool = False
    doc: str = ""
