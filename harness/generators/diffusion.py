"""Class-conditional ``diffusers`` pipelines (DiT and any pipeline taking class labels).

``params.model`` is a hub name (``facebook/DiT-XL-2-256`` or ``-512``, downloaded once
by ``diffusers`` into its cache) or a folder written by ``save_pretrained``; it is loaded
with ``DiffusionPipeline.from_pretrained``. ``params.dtype`` is ``float32`` (default),
``float16`` or ``bfloat16`` (half precision on a GPU only); ``params.device`` defaults to
CUDA when available.

The quality/diversity knobs are the classifier-free guidance scale and the number of
denoising steps. The initial latents are drawn from the harness's ``torch.Generator``
(passed to the pipeline), and any noise a stochastic scheduler draws from the global RNG
is seeded from it too, so a shard's images depend on its seed only. diffusers' DiT
guides all four latent channels where the original DiT code guides three: see
docs/GENERATORS.md before comparing with the DiT paper's numbers.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.generators import GeneratorError
from harness.knobs import GUIDANCE_SCALE, NUM_STEPS

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store

KNOBS = (GUIDANCE_SCALE, NUM_STEPS)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CALL_ARGUMENTS = ("class_labels", "guidance_scale", "num_inference_steps", "generator", "output_type")


class DiffusersGenerator:
    """A class-conditional ``diffusers`` pipeline behind the generator contract."""

    knobs = KNOBS

    def __init__(self, name: str, pipeline: Any, device: torch.device) -> None:
        self.name = name
        self.pipeline = pipeline
        self.device = device
        self.num_classes = _num_classes(name, pipeline)
        self.image_size = _image_size(name, pipeline)

    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator,
               guidance_scale: float = KNOBS[0].default, num_steps: int = KNOBS[1].default) -> torch.Tensor:
        """uint8 [N, C, H, W] images on the CPU; ``truncation`` does not apply and must be None."""
        if truncation is not None:
            raise GeneratorError(f"generator {self.name!r}: a diffusion pipeline has no latent truncation "
                                 f"(got truncation={truncation}); sweep guidance_scale instead")
        global_seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(global_seed)
            (images,) = self.pipeline(class_labels=labels.tolist(), guidance_scale=float(guidance_scale),
                                      num_inference_steps=int(num_steps), generator=generator,
                                      output_type="np", return_dict=False)
        return self._to_uint8(images, len(labels))

    def _to_uint8(self, images: Any, n: int) -> torch.Tensor:
        """Float NHWC images in [0, 1] (the pipelines' ``output_type="np"``) as uint8 NCHW, rounded as
        diffusers' own ``numpy_to_pil`` rounds."""
        if not isinstance(images, np.ndarray) or images.ndim != 4 or len(images) != n or images.shape[-1] not in (1, 3):
            raise GeneratorError(f"generator {self.name!r}: the pipeline returned "
                                 f"{type(images).__name__} {getattr(images, 'shape', '')} for {n} labels, "
                                 f"expected a float array ({n}, H, W, 3) in [0, 1]")
        if not np.isfinite(images).all():
            raise GeneratorError(f"generator {self.name!r}: the pipeline returned NaN or infinite pixels "
                                 f"(half precision overflow? try params.dtype: float32 or bfloat16)")
        low, high = float(images.min()), float(images.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise GeneratorError(f"generator {self.name!r}: the pipeline returned pixels in [{low:.3g}, {high:.3g}], "
                                 f"expected [0, 1]")
        if images.shape[1:3] != (self.image_size, self.image_size):
            raise GeneratorError(f"generator {self.name!r}: the pipeline returned {images.shape[1]}×{images.shape[2]} "
                                 f"images, expected {self.image_size}×{self.image_size}")
        pixels = torch.from_numpy(np.clip(images, 0.0, 1.0) * 255).round().to(torch.uint8)
        return pixels.permute(0, 3, 1, 2).contiguous()


def _denoiser(pipeline: Any) -> Any:
    return getattr(pipeline, "transformer", None) or getattr(pipeline, "unet", None)


def _num_classes(name: str, pipeline: Any) -> int:
    """Classes the denoiser's label embedding holds: DiT's ``num_embeds_ada_norm`` (its extra
    row is the null class that guidance feeds as label ``num_classes``), else ``num_class_embeds``."""
    config = getattr(_denoiser(pipeline), "config", {})
    for key in ("num_embeds_ada_norm", "num_class_embeds"):
        if config.get(key):
            return int(config[key])
    raise GeneratorError(f"generator {name!r}: cannot tell how many classes the pipeline "
                         f"{type(pipeline).__name__} makes: its transformer/unet config has neither "
                         f"num_embeds_ada_norm nor num_class_embeds")


def _image_size(name: str, pipeline: Any) -> int:
    """Latent size times the VAE's downsampling factor, 2^(number of VAE blocks - 1)."""
    config = getattr(_denoiser(pipeline), "config", {})
    vae = getattr(pipeline, "vae", None)
    if not config.get("sample_size") or vae is None:
        raise GeneratorError(f"generator {name!r}: cannot tell the image size of pipeline "
                             f"{type(pipeline).__name__}: it needs a transformer or unet with sample_size and a vae")
    return int(config["sample_size"]) * 2 ** (len(vae.config.block_out_channels) - 1)


def _check_params(spec: GeneratorConfig) -> tuple[str, torch.dtype, torch.device]:
    params = spec.params
    if params["dtype"] not in DTYPES:
        raise GeneratorError(f"generator {spec.name!r}: params.dtype is {params['dtype']!r}, expected one of "
                             f"{', '.join(DTYPES)}")
    try:
        device = torch.device(params.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        raise GeneratorError(f"generator {spec.name!r}: params.device {params['device']!r} is not a torch "
                             f"device ({err})") from None
    dtype = DTYPES[params["dtype"]]
    if dtype != torch.float32 and device.type != "cuda":
        raise GeneratorError(f"generator {spec.name!r}: params.dtype {params['dtype']} needs a GPU, but the "
                             f"device is {device}; use float32")
    return str(params["model"]), dtype, device


def build(spec: GeneratorConfig, real: RealData, store: Store) -> DiffusersGenerator:
    """Load ``spec.params.model`` and check it against the dataset it must imitate."""
    from diffusers import DiffusionPipeline

    model, dtype, device = _check_params(spec)
    try:
        pipeline = DiffusionPipeline.from_pretrained(model, dtype=dtype)
    except (OSError, ValueError) as err:
        raise GeneratorError(f"generator {spec.name!r}: cannot load diffusers pipeline {model!r} ({err})") from err
    missing = [a for a in CALL_ARGUMENTS if a not in inspect.signature(pipeline.__call__).parameters]
    if missing:
        raise GeneratorError(f"generator {spec.name!r}: {type(pipeline).__name__} from {model!r} is not "
                             f"class-conditional: its __call__ lacks {', '.join(missing)}")
    pipeline.set_progress_bar_config(disable=True)
    gen = DiffusersGenerator(spec.name, pipeline.to(device), device)
    channels, height, width = real.image_shape
    if gen.num_classes != real.num_classes or (gen.image_size, gen.image_size) != (height, width) or channels != 3:
        raise GeneratorError(
            f"generator {spec.name!r}: {model!r} makes {gen.num_classes} classes of RGB {gen.image_size}×"
            f"{gen.image_size} images, but the dataset has {real.num_classes} classes of {channels}-channel "
            f"{height}×{width} images")
    return gen
