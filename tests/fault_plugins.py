"""Generators that misbehave in time, for the fault tests: one whose ``sample()`` never
returns, and one that is slow enough for a test to act while it samples."""

from __future__ import annotations

import os
import threading
import time

import torch

from tests.plugin_generator import StripeGenerator


class HangingGenerator(StripeGenerator):
    """``sample()`` blocks forever, as a generator stuck on a lock or a dead device would."""

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        threading.Event().wait()
        raise AssertionError("unreachable")


#: Where ``SlowGenerator`` notes each ``sample()`` call (one line, the process id), when set.
CALL_LOG_ENV = "CAS_TEST_SAMPLE_LOG"


class SlowGenerator(StripeGenerator):
    """Stripes, ``seconds`` per ``sample()`` call, each call noted in ``$CAS_TEST_SAMPLE_LOG``."""

    def __init__(self, seconds: float = 1.0, **params: object) -> None:
        super().__init__(**params)
        self.seconds = seconds

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        if os.environ.get(CALL_LOG_ENV):
            with open(os.environ[CALL_LOG_ENV], "a") as log:
                log.write(f"{os.getpid()}\n")
        time.sleep(self.seconds)
        return super().sample(labels, truncation, generator)
