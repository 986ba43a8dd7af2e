"""Sampling knobs: what a generator kind lets a sweep turn (truncation, guidance scale, steps, ...).

A kind or plugin declares its knobs; a config may sweep only declared knobs, within their
ranges. This module imports nothing heavy, so configs are checked without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Knob:
    """One sampling knob: its name, inclusive range, the value used when not swept, and its type."""

    name: str
    low: float
    high: float
    default: float | None
    integer: bool = False
    doc: str = ""

    def check(self, value: object) -> str | None:
        """Why ``value`` is not allowed for this knob, or None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if self.integer and not float(value).is_integer():
            return f"expected an integer, got {value!r}"
        if not (self.low <= value <= self.high) or math.isnan(value):
            return f"{value!r} lies outside [{self.low:g}, {self.high:g}]"
        return None

    def describe(self) -> str:
        kind = "integer" if self.integer else "number"
        return f"{self.name} ({kind} in [{self.low:g}, {self.high:g}])"


#: How a truncated z is drawn: BigGAN's τ·TN(-2, 2), or N(0, 1) resampled outside [-2τ, 2τ].
TRUNCATION_MODES = ("scaled", "resample")
#: The truncation trick of latent-variable GANs (τ; z ∈ [-2τ, 2τ], the paper's footnote 5).
TRUNCATION = Knob("truncation", 0.01, 10.0, None, doc="truncation τ of the latent z")
#: Classifier-free guidance of diffusion and autoregressive models.
GUIDANCE_SCALE = Knob("guidance_scale", 1.0, 20.0, 4.0,
                      doc="classifier-free guidance scale; 1 samples the conditional model without guidance")
#: Denoising steps of a diffusion sampler.
NUM_STEPS = Knob("num_steps", 1, 1000, 50, integer=True, doc="denoising steps of the pipeline's scheduler")
#: What a plugin that declares nothing takes: the generator contract's truncation argument.
DEFAULT_PLUGIN_KNOBS = (TRUNCATION,)
