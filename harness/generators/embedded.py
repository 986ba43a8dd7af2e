"""Small conditional generators trained on the fly on the real train split.

They give the quickstart generators of different quality with a truncation knob, on any
small dataset (the embedded digits, MNIST): a conditional VAE and a conditional GAN, both
MLPs over the flattened image. A trained model is cached in the store under a key of its
kind, params and dataset, with its checksum, so it is trained once per store (by one
sampler at a time: others wait and load it) and trained again when the file is broken.

``params``: ``steps`` (optimiser steps), ``latent_dim``, ``hidden`` (layer width),
``seed``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from harness import layout
from harness.classify.preprocess import to_model_input
from harness.generators import GeneratorError, to_uint8
from harness.generators.truncation import truncated_normal
from harness.lease import Lease
from harness.verify import read_checked, read_trusted, write_checked

if TYPE_CHECKING:
    from harness.config import GeneratorConfig
    from harness.data import RealData
    from harness.store import Store

BATCH_SIZE = 128
#: The convention these kinds have always drawn z with, so their numbers stay as they were.


def _mlp(sizes: list[int], act: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class ConditionalMLP(nn.Module):
    """Maps (vector, one-hot class) to a vector: the building block of both models."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int, out_dim: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = _mlp([in_dim + num_classes, hidden, hidden, out_dim], act)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, nn.functional.one_hot(labels, self.num_classes).float()], dim=1))


class EmbeddedGenerator:
    """A trained decoder (VAE) or generator (GAN) behind the generator contract."""

    def __init__(self, decoder: ConditionalMLP, latent_dim: int, image_shape: tuple[int, int, int],
                 truncation_mode: str) -> None:
        self.decoder = decoder.eval()
        self.latent_dim = latent_dim
        self.image_shape = image_shape
        self.truncation_mode = truncation_mode
        self.num_classes = decoder.num_classes
        self.image_size = image_shape[1]

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, truncation: float | None, generator: torch.Generator) -> torch.Tensor:
        z = truncated_normal((len(labels), self.latent_dim), truncation, generator, self.truncation_mode)
        return to_uint8(torch.tanh(self.decoder(z, labels)).view(len(labels), *self.image_shape))


def _train_data(real: RealData) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = real.train.read()
    x = to_model_input(torch.from_numpy(images)).flatten(1)
    return x, torch.from_numpy(labels)


def _train_cvae(real: RealData, p: dict, gen: torch.Generator) -> ConditionalMLP:
    x, y = _train_data(real)
    dim, k = x.shape[1], real.num_classes
    encoder = ConditionalMLP(dim, k, p["hidden"], 2 * p["latent_dim"], nn.ReLU)
    decoder = ConditionalMLP(p["latent_dim"], k, p["hidden"], dim, nn.ReLU)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    for _ in range(p["steps"]):
        idx = torch.randint(len(x), (BATCH_SIZE,), generator=gen)
        mu, logvar = encoder(x[idx], y[idx]).chunk(2, dim=1)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        recon = torch.tanh(decoder(z, y[idx]))
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        # Pixels in [-1, 1] treated as Gaussian with σ = 0.1 against a unit prior.
        loss = (50 * (recon - x[idx]).pow(2).sum(1) + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return decoder


def _train_cgan(real: RealData, p: dict, gen: torch.Generator) -> ConditionalMLP:
    x, y = _train_data(real)
    dim, k = x.shape[1], real.num_classes
    generator = ConditionalMLP(p["latent_dim"], k, p["hidden"], dim, nn.ReLU)
    critic = ConditionalMLP(dim, k, p["hidden"], 1, lambda: nn.LeakyReLU(0.2))
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))
    softplus = nn.functional.softplus
    for _ in range(p["steps"]):
        idx = torch.randint(len(x), (BATCH_SIZE,), generator=gen)
        labels = y[idx]
        fake = torch.tanh(generator(torch.randn(BATCH_SIZE, p["latent_dim"], generator=gen), labels))
        d_loss = softplus(-critic(x[idx], labels)).mean() + softplus(critic(fake.detach(), labels)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = softplus(-critic(fake, labels)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    return generator


_TRAINERS = {"cvae": _train_cvae, "cgan": _train_cgan}


def build(spec: GeneratorConfig, real: RealData, store: Store) -> EmbeddedGenerator:
    p = spec.params
    dim = real.image_shape[0] * real.image_shape[1] * real.image_shape[2]
    if dim > 64 * 64:
        raise GeneratorError(f"generator {spec.name!r}: {spec.kind} is an MLP for small images; "
                             f"{real.image_shape} is too large")
    path = layout.generator_model(spec.kind, layout.content_key({"kind": spec.kind, "params": p,
                                                                  "dataset": real.key}))
    decoder = ConditionalMLP(p["latent_dim"], real.num_classes, p["hidden"], dim, nn.ReLU)
    data = read_trusted(store, path)
    if data is None:
        with Lease.acquire_or_wait(store, path, done=lambda: store.exists(path)) as lease:
            if lease.owned:
                torch.manual_seed(p["seed"])
                decoder = _TRAINERS[spec.kind](real, p, torch.Generator().manual_seed(p["seed"]))
                buf = io.BytesIO()
                torch.save(decoder.state_dict(), buf)
                write_checked(store, buf.getvalue(), path)
            else:
                data = read_checked(store, path)
    if data is not None:
        decoder.load_state_dict(torch.load(io.BytesIO(data), weights_only=True))
    return EmbeddedGenerator(decoder, p["latent_dim"], real.image_shape, spec.truncation_mode)


