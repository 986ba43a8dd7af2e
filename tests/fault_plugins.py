"""Generators that misbehave in time, for the fault tests: one whose ``sample()`` never
returns, and one that is slow enough for a test to act while it samples."""

from __future__ import annotations

import threading
import time

import torch

from tests.plugin_generator import StripeGenerator


class HangingGenerator(StripeGenerator):
    """``sample()`` blocks forever, as a generator stuck on a lock or a dead device would."""

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        threading.Event().wait()
        raise AssertionError("unreachable")


class SlowGenerator(StripeGenerator):
    """Stripes, ``seconds`` per ``sample()`` call."""

    def __init__(self, seconds: float = 1.0, **params: object) -> None:
        super().__init__(**params)
        self.seconds = seconds

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        time.sleep(self.seconds)
        return super().sample(labels, truncation, generator)
